"""Incremental parser for Gemma 4 output: content, the thought channel, and tool calls.

It reads text (control tokens arrive as their text) and never lets a control marker through: the
thought channel becomes reasoning, ``<|tool_call>call:NAME{...}<tool_call|>`` becomes a typed tool
call, every other special token is dropped. Text that might be the start of a marker is held back
until the next chunk decides it. A complete call that does not parse comes back as plain text; a call
that generation cut off (max_tokens) comes back as an incomplete call, its arguments the JSON text as
far as the model wrote them — never as Gemma's call syntax in the text.
"""

from __future__ import annotations

import enum
import json
import uuid
from typing import Sequence

from edge.formats.base import OutputParser, ParsedEvent, Piece
from edge.formats.gemma4_values import QUOTE, GemmaSyntaxError, coerce_to_schema, parse_call, parse_partial_call
from edge.core.events import ReasoningDelta, TextDelta, ToolCallDelta
from edge.core.request import ToolSpec

CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"
CALL_OPEN, CALL_CLOSE = "<|tool_call>", "<tool_call|>"
# special tokens that carry no content of their own and must never reach the client
DROPPED = ("<|turn>", "<turn|>", "<|tool_response>", "<tool_response|>", "<|tool>", "<tool|>", "<|think|>",
           QUOTE, "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<|image>", "<image|>", "<|image|>",
           "<|audio>", "<audio|>", "<|audio|>", "<|video|>")
MARKERS = (CHANNEL_OPEN, CHANNEL_CLOSE, CALL_OPEN, CALL_CLOSE) + DROPPED
_LONGEST_CHANNEL_NAME = 32
_LONGEST_MARKER = max(len(marker) for marker in MARKERS)


class State(enum.Enum):
    CONTENT = "content"
    CHANNEL_NAME = "channel_name"
    REASONING = "reasoning"
    CALL = "call"


class Gemma4Parser(OutputParser):
    def __init__(self, tools: Sequence[ToolSpec] = ()):
        self._schemas = {tool.name: tool.parameters for tool in tools}
        self.state = State.CONTENT
        self._held = ""
        self._calls = 0

    @property
    def in_reasoning(self) -> bool:
        return self.state in (State.CHANNEL_NAME, State.REASONING)

    @property
    def can_close_reasoning(self) -> bool:
        return self.state is State.REASONING

    @property
    def in_content(self) -> bool:
        return self.state is State.CONTENT

    @property
    def tool_calls(self) -> int:
        return self._calls

    def feed(self, piece: Piece) -> list[ParsedEvent]:
        self._held += piece.text
        events: list[ParsedEvent] = []
        while self._step(events):
            pass
        return events

    def finish(self) -> list[ParsedEvent]:
        held, self._held = self._held, ""
        if self.state is State.CALL:
            self.state = State.CONTENT
            return self._cut_call(held)
        if self.state is State.CHANNEL_NAME:
            return []  # only the channel's name was written
        if self.in_reasoning:
            return _reasoning(held)
        return _text(held)

    # one transition per call; returns whether another may follow
    def _step(self, events: list[ParsedEvent]) -> bool:
        if self.state is State.CALL:
            return self._step_call(events)
        if self.state is State.CHANNEL_NAME:
            return self._step_channel_name()
        return self._step_stream(events)

    def _step_stream(self, events: list[ParsedEvent]) -> bool:
        position, marker = _first_marker(self._held)
        if marker is None:
            keep = _partial_marker_length(self._held)
            self._emit(events, self._held[:len(self._held) - keep])
            self._held = self._held[len(self._held) - keep:]
            return False
        self._emit(events, self._held[:position])
        self._held = self._held[position + len(marker):]
        self._on_marker(marker)
        return True

    def _on_marker(self, marker: str) -> None:
        if marker == CHANNEL_OPEN and self.state is State.CONTENT:
            self.state = State.CHANNEL_NAME
        elif marker == CHANNEL_CLOSE and self.state is State.REASONING:
            self.state = State.CONTENT
        elif marker == CALL_OPEN:
            self.state = State.CALL

    def _step_channel_name(self) -> bool:
        """The channel's name ("thought\n") is framing, not reasoning; a marker also ends it."""
        newline = self._held.find("\n")
        marker_at, marker = _first_marker(self._held)
        if marker is not None and (newline < 0 or marker_at < newline):
            self._held = self._held[marker_at:]
        elif newline >= 0:
            self._held = self._held[newline + 1:]
        elif len(self._held) < _LONGEST_CHANNEL_NAME:
            return False
        self.state = State.REASONING
        return True

    def _step_call(self, events: list[ParsedEvent]) -> bool:
        end = self._held.find(CALL_CLOSE)
        if end < 0:
            return False
        body, self._held = self._held[:end], self._held[end + len(CALL_CLOSE):]
        self.state = State.CONTENT
        events.extend(self._call(body))
        return True

    def _call(self, body: str) -> list[ParsedEvent]:
        try:
            name, arguments = parse_call(body)
        except GemmaSyntaxError:
            return _text(_without_markers(body))
        typed = coerce_to_schema(arguments, self._schemas.get(name))
        index = self._calls
        self._calls += 1
        return [ToolCallDelta(index, _new_call_id(), name, json.dumps(typed, ensure_ascii=False))]

    def _cut_call(self, body: str) -> list[ParsedEvent]:
        """The call generation stopped inside: as far as it was written, marked incomplete."""
        try:
            name, arguments = parse_partial_call(_without_markers(body, keep=QUOTE), tuple(self._schemas))
        except GemmaSyntaxError:
            return _text(_without_markers(body))
        return [ToolCallDelta(self._calls, _new_call_id(), name, arguments, complete=False)]

    def _emit(self, events: list[ParsedEvent], text: str) -> None:
        if text:
            events.extend(_reasoning(text) if self.in_reasoning else _text(text))


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _text(text: str) -> list[ParsedEvent]:
    return [TextDelta(text)] if text else []


def _reasoning(text: str) -> list[ParsedEvent]:
    return [ReasoningDelta(text)] if text else []


def _without_markers(text: str, keep: str | None = None) -> str:
    for marker in MARKERS:
        if marker != keep:
            text = text.replace(marker, '"' if marker == QUOTE else "")
    return text


def _first_marker(text: str) -> tuple[int, str | None]:
    best: tuple[int, str | None] = (len(text), None)
    start = text.find("<")
    while start >= 0 and start < best[0]:
        for marker in MARKERS:
            if text.startswith(marker, start):
                return start, marker
        start = text.find("<", start + 1)
    return best


def _partial_marker_length(text: str) -> int:
    """Length of the longest suffix that is a proper prefix of some marker."""
    start = text.find("<", max(0, len(text) - _LONGEST_MARKER + 1))
    while start >= 0:
        suffix = text[start:]
        if any(marker.startswith(suffix) and marker != suffix for marker in MARKERS):
            return len(suffix)
        start = text.find("<", start + 1)
    return 0
