"""A generation request from admission to its last event: backpressure, wall-time limit, shutdown.

``Admission`` counts requests between their admission and their end. Beyond ``worker.slots +
max_queue`` a request is refused before any work is done (its body is not even read), with the time
a slot usually takes to free up as ``Retry-After``. ``Call`` runs one admitted request: each phase
(body, translation, tokenization, every event) waits at most until the request's deadline, and a
shutdown ends it with an error the client can read, never a cut connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, TypeVar

from edge.core.events import Event, Finish
from edge.core.request import GenerationRequest, TextPart
from edge.errors import (
    ContextLengthExceededError, EdgeError, GenerationTimeoutError, InvalidRequestError, OverloadedError,
    ShuttingDownError,
)

if TYPE_CHECKING:
    from edge.runtime.engine import PreparedPrompt
    from edge.server.access import RequestRecord
    from edge.server.worker import GenerationWorker

log = logging.getLogger("edge.server")
T = TypeVar("T")

_EWMA_WEIGHT = 0.2  # of the newest request in the running mean of request durations


class Admission:
    def __init__(self, worker: "GenerationWorker", max_queue: int, shutdown_grace: float):
        self.worker = worker
        self.max_queue = max_queue
        self.shutdown_grace = shutdown_grace
        self.calls: set["Call"] = set()
        self.draining = False
        self._mean_seconds = 0.0

    @property
    def capacity(self) -> int:
        return self.worker.slots + self.max_queue

    @property
    def queue_depth(self) -> int:
        """Admitted requests that are not decoding: waiting for a slot, or still being read and tokenized."""
        return max(0, len(self.calls) - self.worker.running)

    def admit(self, call: "Call") -> None:
        if self.draining:
            raise ShuttingDownError("the server is shutting down; send the request again later", retry_after=1)
        if len(self.calls) >= self.capacity:
            raise OverloadedError(
                f"the server is busy: {self.worker.slots} running and {self.max_queue} waiting, the most "
                "--max-queue allows; retry after the time in Retry-After", retry_after=self.retry_after())
        self.calls.add(call)

    def release(self, call: "Call") -> None:
        if call in self.calls:
            self.calls.discard(call)
            seconds = time.perf_counter() - call.record.started
            self._mean_seconds += _EWMA_WEIGHT * (seconds - self._mean_seconds)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the running mean of request durations, at least 1."""
        return max(1, math.ceil(self._mean_seconds))

    # -- shutdown ---------------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """No new request is admitted; requests that have not produced an event yet are answered now;
        running generations get ``shutdown_grace`` seconds to finish, then every one is stopped."""
        self.draining = True
        log.info("draining: %d request(s) in flight, %.1f s grace", len(self.calls), self.shutdown_grace)
        for call in list(self.calls):
            if not call.streaming:
                call.stop()
        asyncio.get_running_loop().call_later(self.shutdown_grace, self.stop_all)

    def stop_all(self) -> None:
        if self.calls:
            log.info("shutdown grace over: stopping %d generation(s)", len(self.calls))
        for call in list(self.calls):
            call.stop()
        self.worker.cancel_all()


class Call:
    """One request's server-side state. Every await honours the deadline and a shutdown stop."""

    def __init__(self, admission: Admission, record: "RequestRecord", request_timeout: float):
        self.admission = admission
        self.record = record
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + request_timeout if request_timeout > 0 else None
        self._timeout = request_timeout
        self._pending: asyncio.Future[Any] | None = None  # a phase awaited by ``run``
        self._waiting_task: asyncio.Task[Any] | None = None  # the task waiting in ``events`` for the worker
        self._interrupted = False
        self.stopped = False  # by a shutdown
        self.streaming = False  # a first event arrived

    def stop(self) -> None:
        self.stopped = True
        self._interrupt()

    async def run(self, awaitable: Awaitable[T], on_abandon: Callable[[T], None] | None = None) -> T:
        """``awaitable``, unless the deadline or a shutdown comes first. A result that arrives after
        it was abandoned (a thread cannot be interrupted) is handed to ``on_abandon`` to be freed."""
        future = asyncio.ensure_future(awaitable)
        if await self._wait(future):
            return future.result()
        if on_abandon is not None:
            future.add_done_callback(lambda done: done.cancelled() or done.exception() or on_abandon(done.result()))
        raise self._interruption()

    async def events(self, stream: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """The worker's events for this request; a stop or the deadline ends them with an error.

        No task or timer per event (they cost ~0.5 ms each on a busy 2-core machine): one timer for the
        deadline, and a stop or the deadline cancels the consuming task only while it waits for the
        worker, never while it writes to the socket."""
        iterator = stream.__aiter__()
        remaining = self._remaining()
        timer = asyncio.get_running_loop().call_later(remaining, self._interrupt) if remaining is not None else None
        try:
            while True:
                if self.stopped or self._expired():
                    raise self._interruption()
                try:
                    event = await self._next(iterator)
                except StopAsyncIteration:
                    break
                self._observe(event[1] if isinstance(event, tuple) else event)  # (choice, event) with n > 1
                yield event
            if self.stopped:  # the worker dropped a stream it had not started
                raise self._interruption()
        finally:
            if timer is not None:
                timer.cancel()
            await _close(iterator)

    async def _next(self, iterator: Any) -> Event:
        self._waiting_task = asyncio.current_task()
        try:
            return await iterator.__anext__()
        except asyncio.CancelledError:
            if not self._interrupted:
                raise  # the client went away: not ours to turn into an error
            uncancel = getattr(self._waiting_task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise self._interruption() from None
        finally:
            self._waiting_task = None

    def _interrupt(self) -> None:
        """From a timer or a shutdown: wake the request if it is waiting, for the worker or a phase."""
        if self._waiting_task is not None:
            self._interrupted = True
            self._waiting_task.cancel()
        if self._pending is not None:
            self._pending.cancel()

    def _observe(self, event: Event) -> None:
        if not self.streaming:
            self.streaming = True
            self.record.first_event = time.perf_counter()
        if isinstance(event, Finish):
            if event.reason == "cancelled" and (self.stopped or self._expired()):
                raise self._interruption()
            self.record.finish_reason = event.reason
            self.record.usage = event.usage
            self.record.timings = dict(event.timings)

    async def _wait(self, future: asyncio.Future[Any]) -> bool:
        """True when ``future`` finished on its own; False (and it is cancelled) on a stop or the deadline."""
        if self.stopped:
            future.cancel()
            await asyncio.wait({future})
            return False
        self._pending = future
        try:
            await asyncio.wait({future}, timeout=self._remaining())
        finally:
            self._pending = None
            if not future.done():
                future.cancel()
                await asyncio.wait({future})  # let a cancelled generator run its cleanup
        return not future.cancelled() and not self.stopped

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def _expired(self) -> bool:
        return self._deadline is not None and self._remaining() == 0.0

    def _interruption(self) -> EdgeError:
        if self.stopped:
            return ShuttingDownError("the server is shutting down; the generation was stopped", retry_after=1)
        return GenerationTimeoutError(f"the request ran longer than the server's --request-timeout of "
                                      f"{self._timeout:g} s; its generation was stopped")


async def _close(iterator: Any) -> None:
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except RuntimeError:  # still running: its cancelled step is finishing the cleanup itself
            pass


# -- the cheap context check ---------------------------------------------------------------------------

def max_token_chars(token_pieces: Callable[[], list[bytes]]) -> int:
    """The most characters one token of the vocabulary can stand for: no text of C characters can
    tokenize into fewer than C / this many tokens. A piece that is part of a UTF-8 sequence counts each
    undecodable byte as a character it touches, so the bound errs on the safe side."""
    return max((len(piece.decode("utf-8", errors="replace")) for piece in token_pieces()), default=1) or 1


def prompt_characters(request: GenerationRequest) -> int:
    """Characters of client text that every prompt format renders verbatim (a template may trim the
    ends of each message, so they are not counted). Images, tool declarations and the format's
    own tokens only add to the prompt, so leaving them out keeps this a lower bound."""
    return sum(len(part.text.strip()) for message in request.messages for part in message.parts
               if isinstance(part, TextPart))


def check_prompt_fits(request: GenerationRequest, n_ctx: int, chars_per_token: int) -> None:
    """Refuses a prompt that cannot fit the context window, from its length alone, before tokenizing it
    (a 20 MB prompt would otherwise take minutes and gigabytes to reach the same answer)."""
    at_least = math.ceil(prompt_characters(request) / chars_per_token)
    needed = at_least + (request.max_tokens or 1)
    if needed > n_ctx:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {n_ctx} tokens. However, your messages hold at least "
            f"{at_least} tokens ({prompt_characters(request)} characters)"
            + (f" and you requested {request.max_tokens} in the completion" if request.max_tokens else "")
            + ". Please reduce the length of the messages or completion.", param="messages")


def as_invalid_request(error: Exception, what: str) -> InvalidRequestError:
    """A failure that is not a typed EdgeError while reading a request: the request is what made it,
    so it is the client's 400, never a 500 (and the translator should learn to name the parameter)."""
    log.warning("%s raised %s: %s; answered 400", what, type(error).__name__, str(error)[:200])
    log.debug("the traceback of that 400", exc_info=error)  # one line per hostile request, not a traceback
    detail = str(error).encode("utf-8", "backslashreplace").decode("utf-8")
    return InvalidRequestError(f"the request could not be read: {type(error).__name__}: {detail}"[:500])
