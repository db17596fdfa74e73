"""What every dialect shares: the hosted API's parameters (one definition, one set of ranges), tool
declarations, the thinking switch and the checks that hold whatever the wire spelling.

The dialects differ in where these fields live on the wire, not in what they mean, so each translator
extracts its fields and hands them here.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Literal, Optional

from pydantic import Field, model_validator

from edge.api.validation import WireModel
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.base import ChatFormat
from edge.core.events import TokenLogprob
from edge.core.request import MAX_SEED, MAX_TOP_LOGPROBS, GenerationRequest, SamplingParams, ToolSpec

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class ThinkingFields(WireModel):
    """Thinking switches every endpoint accepts (vLLM / llama.cpp spellings); they shape the prompt, so
    token counting takes them too. ``enable_thinking`` wins over ``reasoning_effort``, which wins over
    the dialect's own field (``reasoning.effort``, ``thinking``)."""

    enable_thinking: Optional[bool] = None
    reasoning_effort: Optional[ReasoningEffort] = None


class SamplingFields(WireModel):
    """The hosted API's sampling parameters on every endpoint: Chat Completions has most of them natively,
    Responses and Messages take them as extensions (``extra_body`` from the SDKs). One definition, so
    ranges and error messages are the same everywhere."""

    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED)
    top_k: Optional[int] = Field(None, ge=0)  # 0 or absent: off
    min_p: float = Field(0.0, ge=0, le=1)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    repetition_penalty: float = Field(1.0, ge=0.1, le=2)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    # llama.cpp's extension, sent by benchmark clients: the end-of-turn tokens cannot be picked
    ignore_eos: bool = False

    def logprobs_requested(self) -> bool:
        """Whether the request asks for logprobs (Responses also does it with ``include``)."""
        return self.logprobs

    @model_validator(mode="after")
    def _alternatives_need_logprobs(self) -> "SamplingFields":
        if self.top_logprobs and not self.logprobs_requested():
            raise InvalidRequestError("top_logprobs requires logprobs to be true", param="top_logprobs")
        return self


def sampling_params(wire: SamplingFields, temperature: float, top_p: float,
                    logit_bias: dict[int, float] | None = None) -> SamplingParams:
    return SamplingParams(temperature=temperature, top_p=top_p, min_p=wire.min_p, top_k=wire.top_k or 0,
                          presence_penalty=wire.presence_penalty, frequency_penalty=wire.frequency_penalty,
                          repetition_penalty=wire.repetition_penalty, seed=wire.seed, logit_bias=logit_bias or {})


def thinking_request(wire: ThinkingFields, native: bool | None) -> bool | None:
    """The explicit choice, if any: enable_thinking, then reasoning_effort, then the dialect's own field."""
    if wire.enable_thinking is not None:
        return wire.enable_thinking
    if wire.reasoning_effort is not None:
        return wire.reasoning_effort in ("medium", "high")
    return native


def checked(request: GenerationRequest) -> GenerationRequest:
    """Rules that hold whatever the dialect. ignore_eos cannot run under a grammar: the grammar that
    enforces a tool call or a JSON answer ends the output itself, with an end token."""
    if request.ignore_eos:
        if request.response_format.kind != "text":
            raise InvalidRequestError("ignore_eos cannot be combined with a JSON response format: the grammar "
                                      "that enforces it has to end the output", param="ignore_eos")
        if request.tools and request.tool_choice.mode != "none":
            raise InvalidRequestError("ignore_eos cannot be combined with tool calls: the grammar that enforces "
                                      "them has to end the output (send tool_choice none)", param="ignore_eos")
    return request
from edge.schema import SchemaError
from edge.schema.shape import check_shape

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def tool_specs(declared: Iterable[tuple[str, str | None, dict[str, Any] | None]], chat_format: ChatFormat,
               choice_needs_tools: bool) -> tuple[ToolSpec, ...]:
    """(name, description, JSON-schema parameters) per tool -> ToolSpecs, refusing what cannot work."""
    declared = list(declared)
    if not declared:
        if choice_needs_tools:
            raise InvalidRequestError("tool_choice needs tools", param="tool_choice")
        return ()
    if not chat_format.supports_tools:
        raise UnsupportedFeatureError(
            f"this model's turn format ({chat_format.name}) has no tool-call tokens; tools are not supported",
            param="tools")
    names = [name for name, _, _ in declared]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidRequestError(f"two tools are named {duplicates[0]!r}", param="tools")
    for index, (name, _, parameters) in enumerate(declared):
        try:
            check_shape(parameters or EMPTY_PARAMETERS)  # before the chat template walks it
        except SchemaError as error:
            raise InvalidRequestError(f"tools[{index}] ({name!r}) parameters are not a valid schema: {error}",
                                      param="tools") from None
    return tuple(ToolSpec(name, description or "", parameters or EMPTY_PARAMETERS)
                 for name, description, parameters in declared)


def thinking_switch(explicit: bool | None, chat_format: ChatFormat, *, param: str,
                    budget: int | None = None, budget_param: str = "thinking_budget") -> bool:
    """The request's choice (``None``: the model's default, on where it can think), checked against the model."""
    if explicit and not chat_format.supports_thinking:
        raise UnsupportedFeatureError(f"this model's turn format ({chat_format.name}) has no thinking mode",
                                      param=param)
    if budget is not None and not chat_format.supports_thinking:
        raise UnsupportedFeatureError("this model cannot think, so it has no thinking budget", param=budget_param)
    return chat_format.supports_thinking if explicit is None else explicit


def logprob_json(entry: TokenLogprob) -> dict[str, Any]:
    """One token's log-probability, as both OpenAI dialects (and Messages' extension) spell it."""
    return {"token": entry.token, "bytes": list(entry.bytes), "logprob": entry.logprob,
            "top_logprobs": [{"token": top.token, "bytes": list(top.bytes), "logprob": top.logprob}
                             for top in entry.top]}


_MISSING = object()
_DECODER = json.JSONDecoder()


def partial_json_object(text: str) -> dict[str, Any]:
    """What an object's JSON text holds when it was cut off mid-way (a tool call's arguments at
    max_tokens): every value written whole, nothing of the one being written — as the anthropic SDK's
    partial parsing reads an unfinished tool input."""
    value, _, _ = _partial_value(text, 0)
    return value if isinstance(value, dict) else {}


def _partial_value(text: str, start: int) -> tuple[Any, int, bool]:
    """(value or _MISSING, end position, whether the value was written whole)."""
    position = _skip_space(text, start)
    if position >= len(text):
        return _MISSING, position, False
    if text[position] in "{[":
        return _partial_container(text, position)
    try:
        value, end = _DECODER.raw_decode(text, position)
    except ValueError:
        return _MISSING, len(text), False
    return value, end, True


def _partial_container(text: str, start: int) -> tuple[Any, int, bool]:
    mapping = text[start] == "{"
    result: Any = {} if mapping else []
    closer = "}" if mapping else "]"
    position = start + 1
    while True:
        position = _skip_space(text, position)
        if position >= len(text):
            return result, position, False
        if text[position] == closer:
            return result, position + 1, True
        if text[position] == ",":
            position += 1
            continue
        key = None
        if mapping:
            try:
                key, position = _DECODER.raw_decode(text, position)
            except ValueError:
                return result, len(text), False
            position = _skip_space(text, position)
            if position >= len(text) or text[position] != ":":
                return result, position, False
            position += 1
        value, position, whole = _partial_value(text, position)
        if whole and not _ends_value(text, position, closer):
            value, whole = _MISSING, False  # a number cut inside (``0.``, ``1e``): not written whole yet
        if value is not _MISSING:
            if mapping:
                result[key] = value
            else:
                result.append(value)
        if not whole:
            return result, position, False


def _ends_value(text: str, position: int, closer: str) -> bool:
    position = _skip_space(text, position)
    return position >= len(text) or text[position] in ("," + closer)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n\r":
        position += 1
    return position
