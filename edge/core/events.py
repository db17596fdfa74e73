"""Typed events the generation core yields; every dialect renders these and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


@dataclass(frozen=True)
class TopLogprob:
    token: str
    bytes: tuple[int, ...]
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    bytes: tuple[int, ...]
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ReasoningDelta:
    """Text of the model's thought channel: never content."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """One tool call; ``arguments`` is a JSON object text typed by the tool's schema.

    A call that generation cut off (max_tokens) comes with ``complete`` false: ``arguments`` is then the
    JSON text as far as the model wrote it — a prefix that does not parse, so a client sees it is cut."""

    index: int
    id: str
    name: str
    arguments: str
    complete: bool = True


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    usage: Usage
    # the stop sequence that ended generation, if one did (Anthropic reports it)
    stop_sequence: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


Event = Union[TextDelta, ReasoningDelta, ToolCallDelta, Finish]
