"""The internal request every wire dialect translates into: one conversation, one set of limits.

Validation of ranges happens in the dialect's protocol models (they know the parameter names the
client used); these dataclasses only describe a request that is already valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

Role = Literal["system", "user", "assistant", "tool"]

# Sampling defaults and ranges of the hosted API we match (issue 2); protocol models import these.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.95
MAX_OUTPUT_TOKENS = 4096
MAX_SEED = 2_147_483_647
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """A validated image, already fitted to its token budget (``edge.runtime.images.LoadedImage``)."""

    image: Any


ContentPart = Union[TextPart, ImagePart]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning: str | None = None
    name: str | None = None  # for a tool result: the function that produced it

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    """none | auto | required | a named function (``mode == "function"``, ``name`` set)."""

    mode: Literal["none", "auto", "required", "function"] = "auto"
    name: str | None = None


@dataclass(frozen=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    min_p: float = 0.0
    top_k: int = 0  # 0: off
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[Message, ...]
    sampling: SamplingParams = SamplingParams()
    max_tokens: int | None = None  # None: up to MAX_OUTPUT_TOKENS, bounded by the context window
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    enable_thinking: bool = False
    thinking_budget: int | None = None  # reasoning tokens after which the thought channel is closed
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = None  # at most this many calls in one answer (None: no limit)
    response_format: ResponseFormat = ResponseFormat()
    ignore_eos: bool = False  # the end-of-turn tokens cannot be picked: generation runs to max_tokens
    n: int = 1  # choices decoded side by side from one evaluation of the prompt
