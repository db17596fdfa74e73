"""The bridge between the event loop and the engine's scheduler thread.

``prepare`` (render, tokenize, compile the grammar) runs in a worker thread so the loop stays free;
``stream`` submits the prepared prompt and hands each event back to the loop as the scheduler emits it.
When the client goes away the consumer stops and the cancel flag ends the sequence at the next step,
freeing its slot. ``slots``, ``running``, ``waiting`` and ``cancel_all`` are what the server's admission
control, shutdown and metrics build on.
"""

from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator

from edge.core.events import Event
from edge.core.request import GenerationRequest
from edge.runtime.engine import Engine, PreparedPrompt
from edge.runtime.sequence import END


class GenerationWorker:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._cancels: set[threading.Event] = set()

    @property
    def slots(self) -> int:
        return self.engine.parallel

    @property
    def running(self) -> int:
        return self.engine.running

    @property
    def waiting(self) -> int:
        return self.engine.waiting

    @property
    def cache_ram_bytes(self) -> int:
        return self.engine.cache_ram_bytes

    async def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        return await asyncio.to_thread(self.engine.prepare, request)

    async def stream(self, prepared: PreparedPrompt) -> AsyncIterator[Event]:
        async for _, event in self.stream_choices(prepared, 1):
            yield event

    async def stream_choices(self, prepared: PreparedPrompt, choices: int) -> AsyncIterator[tuple[int, Event]]:
        """(choice, event) pairs of ``choices`` sequences sharing one prompt, as they are decoded."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue()
        cancelled = threading.Event()
        self._cancels.add(cancelled)

        def emit(choice: int, item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (choice, item))
            except RuntimeError:
                pass  # the event loop is gone (shutdown): nobody is left to read this

        running = choices
        try:
            self.engine.submit(prepared, emit, cancelled, choices)
            while running:
                choice, item = await queue.get()
                if item is END:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield choice, item  # type: ignore[misc]
        finally:
            self._cancels.discard(cancelled)
            if running:
                cancelled.set()
                self.engine.wake()

    def cancel_all(self) -> None:
        """Every generation stops at its next step and ends with Finish("cancelled")."""
        for cancelled in list(self._cancels):
            cancelled.set()
        self.engine.wake()

    def close(self) -> None:
        """Stops every generation and waits for the scheduler thread to leave llama.cpp."""
        self.cancel_all()
        self.engine.stop()
