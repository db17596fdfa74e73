"""One choice of one request while the scheduler decodes it: its prompt cursor, sampler, parser, stop
matcher and UTF-8 state, and the events it emits.

The scheduler owns llama_decode; a ``Sequence`` only says what it needs evaluated next (a run of prompt
tokens, an image, or its last sampled token) and turns each row of logits it is given into events.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge.core.events import Finish, TextDelta, TokenLogprob, Usage
from edge.formats.base import Piece
from edge.runtime import llama
from edge.runtime.sampling import TokenSampler, is_control_token, is_end_of_generation
from edge.runtime.text import StopMatcher, Utf8Stream


@dataclass
class Job:
    """What a request hands the scheduler, once per choice (OpenAI's ``n``)."""

    prepared: object  # engine.PreparedPrompt
    choice: int
    emit: Callable[[object], None]  # receives each Event, then END (or an exception), from the scheduler thread
    cancelled: object  # threading.Event
    submitted: float = 0.0
    leader: "Job | None" = None  # choice 0 of the same request: followers copy its prompt's keys/values
    context: contextvars.Context | None = None  # the submitter's: log lines about this job carry its request id

    @property
    def deterministic(self) -> bool:
        """A seeded request must give the same text whatever else runs: it is evaluated on its own."""
        return self.prepared.request.sampling.seed is not None


END = object()  # the last thing a job's emit receives


class Sequence:
    def __init__(self, engine, job: Job, seq_id: int, start: int, sampler: TokenSampler):
        self.engine = engine
        self.job = job
        self.seq_id = seq_id
        self.prepared = job.prepared
        self.request = job.prepared.request
        self.sampler = sampler
        self.reused = start  # prompt tokens whose keys/values came from the cache
        self.position = start  # next position to evaluate
        self.next_token: int | None = None  # sampled, to be evaluated at ``position``
        self.parser = engine.chat_format.new_parser(self.request.tools)
        self.utf8 = Utf8Stream()
        self.stops = StopMatcher(self.request.stop)
        self.pending_logprobs: list[TokenLogprob] = []
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.started = time.perf_counter()
        self.prompt_done = 0.0
        self.finished = False

    # -- what to evaluate next --------------------------------------------------------------------

    @property
    def prefilling(self) -> bool:
        return self.next_token is None and not self.finished

    def next_image(self):
        """The image span starting at the cursor, if the prompt continues with an image."""
        for span in self.prepared.images:
            if span.start == self.position:
                return span
        return None

    def prompt_run(self, limit: int) -> list[int]:
        """Up to ``limit`` prompt tokens from the cursor, stopping before the next image."""
        end = len(self.prepared.tokens)
        for span in self.prepared.images:
            if span.start >= self.position:
                end = min(end, span.start)
        return list(self.prepared.tokens[self.position:min(end, self.position + limit)])

    def advance(self, count: int) -> None:
        self.position += count

    @property
    def prompt_complete(self) -> bool:
        return self.position >= len(self.prepared.tokens)

    # -- turning logits into events ---------------------------------------------------------------

    def on_logits(self, logits: np.ndarray) -> None:
        """The logits after this sequence's last evaluated token: pick the next token and emit what it
        completes. Marks the sequence finished when it ends."""
        if self.job.cancelled.is_set():
            self._finish("cancelled")
            return
        if not self.prompt_done:
            self.prompt_done = time.perf_counter()
        token, logprob = self._next_token(logits)
        self.completion_tokens += 1
        if is_end_of_generation(self.engine.model, token):
            self._finish("stop")
            return
        stop_sequence = self._consume(token, logprob)
        if stop_sequence is not None:
            self._finish("stop", stop_sequence)
        elif self.completion_tokens >= self.prepared.max_tokens:
            self._finish("length")
        else:
            self.next_token = token

    def evaluated_next_token(self) -> None:
        self.position += 1
        self.next_token = None

    def _next_token(self, logits: np.ndarray) -> tuple[int, TokenLogprob | None]:
        """Sample, unless the thinking budget is spent: then the thought channel is closed for the model."""
        budget = self.request.thinking_budget
        if budget is not None and self.parser.can_close_reasoning and self.reasoning_tokens >= budget:
            token, logprob = self.engine.control_token(self.engine.chat_format.reasoning_close), None
        else:
            self.sampler.adjust(logits)
            top = self.request.top_logprobs if self.request.logprobs else None
            token, logprob = self.sampler.sample(logits, self.engine.model, top)
        self.sampler.accept(token)
        return token, logprob

    def _consume(self, token: int, logprob: TokenLogprob | None) -> str | None:
        """Feed one token to the parser; returns a matched stop sequence, if any."""
        piece = self._piece(token)
        was_content = self.parser.in_content
        if logprob is not None:
            self.pending_logprobs.append(logprob)
        if self.parser.in_reasoning:
            self.reasoning_tokens += 1
        stop_sequence = self._emit_parsed(self.parser.feed(piece))
        if not (was_content and self.parser.in_content and not piece.control) and logprob is not None:
            self.pending_logprobs.pop()  # framing and reasoning tokens are not part of the content's logprobs
        return stop_sequence

    def _piece(self, token: int) -> Piece:
        model = self.engine.model
        if is_control_token(model, token):
            return Piece(llama.token_piece(model, token, special=True).decode("utf-8", "replace"), True)
        return Piece(self.utf8.feed(llama.token_piece(model, token, special=False)), False)

    def _emit_parsed(self, parsed_events) -> str | None:
        """Content goes through the stop matcher; reasoning and tool calls pass as they are."""
        for parsed in parsed_events:
            if not isinstance(parsed, TextDelta):
                self.job.emit(parsed)
                continue
            scan = self.stops.feed(parsed.text)
            if scan.emit:
                self.job.emit(TextDelta(scan.emit, self._take_logprobs()))
            if scan.stopped:
                return scan.sequence
        return None

    def _flush(self) -> None:
        tail = self.utf8.flush()
        parsed = (self.parser.feed(Piece(tail, False)) if tail else []) + self.parser.finish()
        if self._emit_parsed(parsed) is None:
            remaining = self.stops.flush()
            if remaining or self.pending_logprobs:
                self.job.emit(TextDelta(remaining, self._take_logprobs()))

    def _take_logprobs(self) -> tuple[TokenLogprob, ...]:
        taken = tuple(self.pending_logprobs)
        self.pending_logprobs.clear()
        return taken

    def _finish(self, reason: str, stop_sequence: str | None = None) -> None:
        if stop_sequence is None:
            self._flush()
        if reason == "stop" and self.parser.tool_calls:
            reason = "tool_calls"
        finished = time.perf_counter()
        prompt_done = self.prompt_done or finished
        usage = Usage(len(self.prepared.tokens), self.completion_tokens, cached_prompt_tokens=self.reused,
                      reasoning_tokens=self.reasoning_tokens)
        self.job.emit(Finish(reason, usage, stop_sequence,
                             _timings(self.started, prompt_done, finished, len(self.prepared.tokens) - self.reused,
                                      self.completion_tokens)))
        self.finished = True

    def cancel(self) -> None:
        """Ends a sequence that is still prefilling or between tokens."""
        if not self.finished:
            self._finish("cancelled")

    def close(self) -> None:
        self.sampler.close()


def _timings(started: float, prompt_done: float, finished: float, evaluated: int, generated: int) -> dict[str, float]:
    prompt_seconds = prompt_done - started
    decode_seconds = finished - prompt_done
    return {
        "prompt_ms": prompt_seconds * 1000,
        "prompt_tokens_evaluated": float(evaluated),
        "decode_ms": decode_seconds * 1000,
        "decode_tokens_per_second": generated / decode_seconds if decode_seconds > 0 and generated else 0.0,
    }

