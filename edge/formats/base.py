"""The interface every model family's turn format implements: render a prompt, parse the output.

A prompt is a list of segments. Template text (``<start_of_turn>user\n``) is a control segment, tokenized
with control-token parsing on; whatever a user, a tool or a past model turn wrote is a text segment,
tokenized with it off, so a user who types ``<|tool_call>`` sends text, never a control token.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

from edge.errors import InvalidRequestError

from edge.core.events import ReasoningDelta, TextDelta, ToolCallDelta
from edge.core.constraints import Constraint
from edge.core.request import GenerationRequest, Message, ToolSpec
from edge.schema import DEFAULT_LIMITS, Limits, SchemaError, json_grammar

# JSON object with any content: what response_format json_object asks for
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


@dataclass(frozen=True)
class Segment:
    text: str
    control: bool


def control(text: str) -> Segment:
    return Segment(text, True)


def text(content: str) -> Segment:
    return Segment(content, False)


@dataclass(frozen=True)
class Piece:
    """One generated token's text; ``control`` when the vocabulary marks it as a control token."""

    text: str
    control: bool


ParsedEvent = Union[TextDelta, ReasoningDelta, ToolCallDelta]


class OutputParser(ABC):
    """Incremental: ``feed`` each generated piece, ``finish`` once at the end."""

    in_reasoning: bool = False  # inside the thought channel right now
    can_close_reasoning: bool = False  # inside the thought's text, where closing it is well-formed
    in_content: bool = True  # what the model writes now is visible content
    tool_calls: int = 0  # complete tool calls parsed so far

    @abstractmethod
    def feed(self, piece: Piece) -> list[ParsedEvent]: ...

    def finish(self) -> list[ParsedEvent]:
        return []


class ChatFormat(ABC):
    name: str
    supports_tools: bool = False
    supports_thinking: bool = False
    image_placeholder: str | None = None
    # control-token spellings that must never come out of tokenizing client text
    text_markers: tuple[str, ...] = ()
    # the control token that closes the thought channel (a thinking budget forces it), if the format thinks
    reasoning_close: str | None = None
    # the tokens that end generation (llama.cpp's end-of-generation set for this family): ignore_eos bans them
    end_tokens: tuple[str, ...] = ()

    @abstractmethod
    def render(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (), enable_thinking: bool = False,
               add_generation_prompt: bool = True) -> list[Segment]: ...

    @abstractmethod
    def new_parser(self, tools: Sequence[ToolSpec] = ()) -> OutputParser: ...

    def banned_tokens(self, request: GenerationRequest) -> tuple[str, ...]:
        """Control tokens the sampler must never pick for this request: with ignore_eos, the end tokens,
        so generation runs until max_tokens."""
        return self.end_tokens if request.ignore_eos else ()

    def constraint(self, request: GenerationRequest, token: Callable[[str], int],
                   limits: Limits = DEFAULT_LIMITS) -> Constraint | None:
        """The grammar decoding must follow; plain formats only constrain JSON output.

        ``limits`` carries what the model's vocabulary can spell within the output limit
        (``edge.schema.limits_for_vocabulary``); the default assumes nothing about it."""
        if request.response_format.kind == "text":
            return None
        schema = request.response_format.schema if request.response_format.kind == "json_schema" else ANY_JSON_OBJECT
        try:
            return Constraint(self.json_grammar(schema, request, token, limits))
        except SchemaError as error:
            raise InvalidRequestError(f"the JSON schema cannot be enforced: {error}", param="response_format") from None

    def json_grammar(self, schema: dict[str, Any], request: GenerationRequest, token: Callable[[str], int],
                     limits: Limits = DEFAULT_LIMITS) -> str:
        """GBNF for the JSON answer; a format with a thought channel lets the thought come first."""
        return json_grammar(schema, limits)


class PlainTextParser(OutputParser):
    """For formats whose output has no channels: control tokens end or frame turns, never content."""

    def feed(self, piece: Piece) -> list[ParsedEvent]:
        if piece.control or not piece.text:
            return []
        return [TextDelta(piece.text)]


def merge_adjacent_roles(messages: Sequence[Message]) -> list[Message]:
    """Gemma's templates require alternating turns; consecutive same-role messages become one turn."""
    merged: list[Message] = []
    for message in messages:
        if merged and merged[-1].role == message.role and message.role in ("user", "assistant"):
            previous = merged[-1]
            joined = previous.parts + (_separator(),) + message.parts
            merged[-1] = Message(role=message.role, parts=joined)
        else:
            merged.append(message)
    return merged


def _separator():
    from edge.core.request import TextPart

    return TextPart("\n\n")
