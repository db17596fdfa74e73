"""Runs the blocking generation core off the event loop, one request at a time, in arrival order.

A single worker thread owns the llama.cpp context; requests wait in its queue. Events cross back to
the event loop through an asyncio queue. When the client goes away the consumer stops, and the
generation loop sees the cancel flag before its next token.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

from edge.runtime.engine import Engine, PreparedPrompt
from edge.core.events import Event
from edge.core.request import GenerationRequest

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class GenerationWorker:
    """``slots``, ``running``, ``waiting`` and ``cancel_all`` are what the server's admission control,
    shutdown and metrics build on; a batching scheduler offers the same names."""

    slots = 1  # sequences that decode at once

    def __init__(self, engine: Engine):
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-generate")
        self._lock = threading.Lock()
        self._live: dict[threading.Event, bool] = {}  # cancel flag of every stream -> decoding now

    @property
    def running(self) -> int:
        """Sequences decoding now."""
        with self._lock:
            return sum(self._live.values())

    @property
    def waiting(self) -> int:
        """Streams admitted to the worker, waiting for a slot."""
        with self._lock:
            return len(self._live) - sum(self._live.values())

    def cancel_all(self) -> None:
        """Every generation stops at its next token (ending with Finish("cancelled")); waiting ones never start."""
        with self._lock:
            for cancelled in self._live:
                cancelled.set()

    def _mark(self, cancelled: threading.Event, decoding: bool | None) -> None:
        with self._lock:
            if decoding is None:
                self._live.pop(cancelled, None)
            else:
                self._live[cancelled] = decoding

    async def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        """Tokenizing is thread-safe and may run beside a generation in progress."""
        return await asyncio.to_thread(self.engine.prepare, request)

    async def stream(self, prepared: PreparedPrompt) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()
        self._mark(cancelled, False)

        def produce() -> None:
            try:
                if cancelled.is_set():
                    return  # the client left (or the server is stopping) while this request was queued
                self._mark(cancelled, True)
                for event in self.engine.generate(prepared, cancelled):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except BaseException as error:  # noqa: BLE001 - handed to the consumer, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, _Failure(error))
            finally:
                self._mark(cancelled, None)
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        # in a copy of the request's context, so the engine's log lines carry its request id
        future = loop.run_in_executor(self._executor, contextvars.copy_context().run, produce)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            cancelled.set()
            if not future.done() and future.cancel():  # never started: nothing will unregister it
                self._mark(cancelled, None)
            if future.done() and not future.cancelled():
                future.result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
