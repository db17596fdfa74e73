"""OpenAI Chat Completions: wire types, the translation to a GenerationRequest, and the response.

Field names and shapes follow the ``openai`` package's ``types/chat`` definitions.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator, Literal, Optional, Union

from pydantic import Field, model_validator

from edge.api.common import (
    SamplingFields, ThinkingFields, checked, logprob_json, sampling_params, thinking_request,
    thinking_switch, tool_specs,
)
from edge.api.context import ServingContext
from edge.api.validation import WireModel
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.base import ChatFormat
from edge.core.events import Event, Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta
from edge.core.request import (
    DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_OUTPUT_TOKENS,
    GenerationRequest, ImagePart, Message, ResponseFormat, SamplingParams, TextPart, ToolCall, ToolChoice, ToolSpec,
)
from edge.runtime.images import check_image_count, load_image

MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 128  # OpenAI's bound on n

# engine finish reason -> OpenAI chat finish_reason
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "cancelled": "stop"}
# a request with the legacy ``functions`` gets its call back as ``function_call``, as the API answered them
LEGACY_FINISH_REASONS = {**FINISH_REASONS, "tool_calls": "function_call"}


class TextContentPart(WireModel):
    type: Literal["text"]
    text: str


class ImageURL(WireModel):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageContentPart(WireModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Union[TextContentPart, ImageContentPart]


class FunctionCall(WireModel):
    name: str
    arguments: str


class ToolCallParam(WireModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(WireModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[str, list[ContentPart], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCallParam]] = None
    tool_call_id: Optional[str] = None
    function_call: Optional[FunctionCall] = None  # legacy: an assistant's one call, answered by role "function"
    reasoning_content: Optional[str] = None
    refusal: Optional[str] = None

    @model_validator(mode="after")
    def _content_required(self) -> "ChatMessage":
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "function" and not self.name:
            raise ValueError("a function message needs the name of the function that answered")
        return self


class StreamOptions(WireModel):
    include_usage: bool = False
    include_obfuscation: Optional[bool] = None  # nothing is obfuscated here, so either value is honoured


class ResponseFormatText(WireModel):
    type: Literal["text"]


class ResponseFormatJsonObject(WireModel):
    type: Literal["json_object"]


class JsonSchemaSpec(WireModel):
    name: str = Field(min_length=1, max_length=64)
    schema_: Optional[dict[str, Any]] = Field(None, alias="schema")
    description: Optional[str] = None
    strict: Optional[bool] = None


class ResponseFormatJsonSchema(WireModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


class FunctionDefinition(WireModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


class ToolDefinition(WireModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(WireModel):
    name: str


class NamedToolChoice(WireModel):
    type: Literal["function"]
    function: NamedFunction


class ChatTemplateKwargs(WireModel):
    enable_thinking: Optional[bool] = None


class ChatCompletionRequest(SamplingFields, ThinkingFields):
    """Besides these: seed, top_k, min_p, the penalties, logprobs, top_logprobs, ignore_eos
    (``SamplingFields``), enable_thinking and reasoning_effort (``ThinkingFields``)."""

    model: Optional[str] = None  # absent: the served model
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    max_tokens: Optional[int] = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    stop: Union[str, list[str], None] = None
    logit_bias: Optional[dict[str, float]] = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    response_format: Union[ResponseFormatText, ResponseFormatJsonObject, ResponseFormatJsonSchema, None] = None
    tools: Optional[list[ToolDefinition]] = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    parallel_tool_calls: Optional[bool] = None
    # the deprecated spelling of tools and tool_choice, still sent by older clients
    functions: Optional[list[FunctionDefinition]] = Field(None, min_length=1)
    function_call: Union[Literal["none", "auto"], NamedFunction, None] = None
    # thinking: enable_thinking (top level or chat_template_kwargs) wins over reasoning_effort
    chat_template_kwargs: Optional[ChatTemplateKwargs] = None
    thinking_budget: Optional[int] = Field(None, ge=0, le=MAX_OUTPUT_TOKENS)
    # output this server cannot produce: refused with a clear message rather than as unknown fields
    modalities: Optional[list[Literal["text", "audio"]]] = None
    audio: Optional[dict[str, Any]] = None
    # accepted because they have no local meaning (docs/api.md): they do not change what is generated
    user: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    store: Optional[bool] = None
    service_tier: Optional[str] = None
    safety_identifier: Optional[str] = None
    prompt_cache_key: Optional[str] = None
    prompt_cache_retention: Optional[Literal["in_memory", "24h"]] = None
    prompt_cache_options: Optional[dict[str, Any]] = None
    verbosity: Optional[Literal["low", "medium", "high"]] = None
    prediction: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _consistent(self) -> "ChatCompletionRequest":
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError("top_logprobs requires logprobs to be true", param="top_logprobs")
        if self.audio is not None or "audio" in (self.modalities or ()):
            raise UnsupportedFeatureError("audio output is not supported: this server answers with text",
                                          param="audio" if self.audio is not None else "modalities")
        if self.functions is not None and self.tools is not None:
            raise InvalidRequestError("send tools or the deprecated functions, not both", param="functions")
        if self.function_call is not None and self.tool_choice is not None:
            raise InvalidRequestError("send tool_choice or the deprecated function_call, not both",
                                      param="function_call")
        if self.stream_options is not None and not self.stream:
            raise InvalidRequestError("stream_options is only allowed when stream is true", param="stream_options")
        if self.max_tokens is not None and self.max_completion_tokens is not None \
                and self.max_tokens != self.max_completion_tokens:
            raise InvalidRequestError("max_tokens and max_completion_tokens disagree; send one",
                                      param="max_completion_tokens")
        _check_stop(self.stop)
        _check_logit_bias(self.logit_bias)
        return self


def _check_stop(stop: Union[str, list[str], None]) -> None:
    if isinstance(stop, list):
        if len(stop) > MAX_STOP_SEQUENCES:
            raise InvalidRequestError(f"at most {MAX_STOP_SEQUENCES} stop sequences", param="stop")
        if any(sequence == "" for sequence in stop):
            raise InvalidRequestError("stop sequences must not be empty", param="stop")
    elif stop == "":
        raise InvalidRequestError("the stop sequence must not be empty", param="stop")


def _check_logit_bias(logit_bias: Optional[dict[str, float]]) -> None:
    for key, value in (logit_bias or {}).items():
        if not (key.isascii() and key.isdigit()):  # str.isdigit() also accepts "²", which int() refuses
            raise InvalidRequestError(f"logit_bias keys are token ids, got {key!r}", param="logit_bias")
        if not -100 <= value <= 100:
            raise InvalidRequestError(f"logit_bias values are -100..100, got {value}", param=f"logit_bias.{key}")


# -- request translation -------------------------------------------------------------------------

def to_generation_request(chat: ChatCompletionRequest, serving: ServingContext) -> GenerationRequest:
    """Blocking (images may be read from disk or fetched): call it off the event loop."""
    chat_format = serving.chat_format
    tools = _tools(chat, chat_format)
    check_image_count(_count_images(chat.messages), serving.image_policy, "messages")
    return checked(GenerationRequest(
        messages=tuple(_message(message, index, chat.messages, serving) for index, message in enumerate(chat.messages)),
        sampling=_sampling(chat, serving.n_vocab),
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        stop=(chat.stop,) if isinstance(chat.stop, str) else tuple(chat.stop or ()),
        logprobs=chat.logprobs,
        top_logprobs=(chat.top_logprobs or 0) if chat.logprobs else 0,
        enable_thinking=_thinking(chat, chat_format),
        thinking_budget=chat.thinking_budget,
        tools=tools,
        tool_choice=_tool_choice(chat, tools),
        parallel_tool_calls=_parallel_tool_calls(chat),
        response_format=_response_format(chat.response_format),
        ignore_eos=chat.ignore_eos,
        n=chat.n,
    ))


def _thinking(chat: ChatCompletionRequest, chat_format: ChatFormat) -> bool:
    """enable_thinking (top level, then chat_template_kwargs) wins; else reasoning_effort; else the model's default."""
    explicit = thinking_request(chat, native=None)
    template_choice = chat.chat_template_kwargs.enable_thinking if chat.chat_template_kwargs else None
    if chat.enable_thinking is None and template_choice is not None:
        explicit = template_choice
    return thinking_switch(explicit, chat_format, param="enable_thinking", budget=chat.thinking_budget)


def _tools(chat: ChatCompletionRequest, chat_format: ChatFormat) -> tuple[ToolSpec, ...]:
    functions = chat.functions or [tool.function for tool in chat.tools or []]
    declared = [(function.name, function.description, function.parameters) for function in functions]
    choice = chat.tool_choice if chat.functions is None else chat.function_call
    return tool_specs(declared, chat_format, choice_needs_tools=choice not in (None, "none"))


def _tool_choice(chat: ChatCompletionRequest, tools: tuple[ToolSpec, ...]) -> ToolChoice:
    choice = chat.tool_choice if chat.function_call is None else chat.function_call
    name = choice.function.name if isinstance(choice, NamedToolChoice) else getattr(choice, "name", None)
    if name is not None:
        if name not in {tool.name for tool in tools}:
            raise InvalidRequestError(f"tool_choice names {name!r}, which is not among tools",
                                      param="tool_choice" if chat.function_call is None else "function_call")
        return ToolChoice("function", name)
    return ToolChoice(choice or "auto")


def _parallel_tool_calls(chat: ChatCompletionRequest) -> bool:
    """The legacy ``functions`` API answers with one call at most."""
    if chat.functions is not None:
        return False
    return True if chat.parallel_tool_calls is None else chat.parallel_tool_calls


def _response_format(response_format) -> ResponseFormat:
    if response_format is None or isinstance(response_format, ResponseFormatText):
        return ResponseFormat()
    if isinstance(response_format, ResponseFormatJsonObject):
        return ResponseFormat("json_object")
    spec = response_format.json_schema
    if spec.schema_ is None:
        raise InvalidRequestError("json_schema needs a schema", param="response_format.json_schema.schema")
    return ResponseFormat("json_schema", spec.schema_, spec.name)


def _sampling(chat: ChatCompletionRequest, n_vocab: int) -> SamplingParams:
    bias = {int(token): value for token, value in (chat.logit_bias or {}).items()}
    for token in bias:
        if token >= n_vocab:
            raise InvalidRequestError(f"token id {token} is outside the vocabulary (size {n_vocab})",
                                      param=f"logit_bias.{token}")
    return sampling_params(chat, DEFAULT_TEMPERATURE if chat.temperature is None else chat.temperature,
                           DEFAULT_TOP_P if chat.top_p is None else chat.top_p, bias)


def _count_images(messages: list[ChatMessage]) -> int:
    return sum(isinstance(part, ImageContentPart) for message in messages
               if isinstance(message.content, list) for part in message.content)


def _message(message: ChatMessage, index: int, messages: list[ChatMessage], serving: ServingContext) -> Message:
    role = {"developer": "system", "function": "tool"}.get(message.role, message.role)
    if (message.tool_calls or message.function_call or role == "tool") and not serving.chat_format.supports_tools:
        raise UnsupportedFeatureError("tool calls and tool results need a model with a tool-call format",
                                      param=f"messages[{index}]")
    tool_call_id = _legacy_call_id(messages, index) if message.role == "function" else message.tool_call_id
    if role == "tool" and not tool_call_id:
        raise InvalidRequestError("a tool message needs tool_call_id", param=f"messages[{index}].tool_call_id")
    return Message(role=role, parts=_parts(message, index, serving), tool_calls=_calls(message, index),
                   tool_call_id=tool_call_id, reasoning=message.reasoning_content, name=message.name)


def _calls(message: ChatMessage, index: int) -> tuple[ToolCall, ...]:
    calls = [(call.id, call.function, f"messages[{index}].tool_calls[{call_index}].function.arguments")
             for call_index, call in enumerate(message.tool_calls or [])]
    if message.function_call is not None:
        calls.append((_LEGACY_ID.format(index), message.function_call, f"messages[{index}].function_call.arguments"))
    return tuple(ToolCall(call_id, function.name, _arguments(function.arguments, param))
                 for call_id, function, param in calls)


def _arguments(text: str, param: str) -> dict[str, Any]:
    try:
        arguments = json.loads(text or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError("tool call arguments must be a JSON object", param=param)
    return arguments


# a legacy function_call has no id on the wire: the one it gets here, from its message's index
_LEGACY_ID = "call_legacy_{}"


def _legacy_call_id(messages: list[ChatMessage], index: int) -> str:
    """A legacy ``role: function`` message answers the nearest assistant ``function_call`` before it."""
    for earlier in range(index - 1, -1, -1):
        if messages[earlier].function_call is not None:
            return _LEGACY_ID.format(earlier)
    raise InvalidRequestError("a function message must follow an assistant message with a function_call",
                              param=f"messages[{index}]")


def _parts(message: ChatMessage, index: int, serving: ServingContext) -> tuple[TextPart | ImagePart, ...]:
    content = message.content
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[TextPart | ImagePart] = []
    for part_index, part in enumerate(content):
        if isinstance(part, TextContentPart):
            parts.append(TextPart(part.text))
            continue
        param = f"messages[{index}].content[{part_index}].image_url"
        if not serving.vision:
            raise UnsupportedFeatureError("this model has no vision projector; it cannot read images", param=param)
        if message.role != "user":
            raise InvalidRequestError("only user messages may carry images", param=param)
        parts.append(ImagePart(load_image(part.image_url.url, serving.image_policy, param, part.image_url.detail)))
    return tuple(parts)


# -- responses -----------------------------------------------------------------------------------

class ChatResponseBuilder:
    """Turns engine events into chat.completion(.chunk) objects for one request.

    Events arrive as (choice index, event) pairs: with ``n`` > 1 the choices are decoded side by side and
    their chunks interleave. Usage counts the prompt once and the completion tokens of every choice.
    A call that max_tokens cut off is still a call (``finish_reason: "length"``), its ``arguments`` the
    JSON text as far as the model wrote it. With ``legacy_functions`` (the request sent ``functions``)
    the call comes back as the deprecated ``function_call``, finish reason ``function_call``."""

    def __init__(self, model_id: str, include_usage: bool, logprobs: bool, legacy_functions: bool = False):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model_id = model_id
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.legacy_functions = legacy_functions
        self._finish_reasons = LEGACY_FINISH_REASONS if legacy_functions else FINISH_REASONS

    def _chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model_id, "system_fingerprint": None, "choices": [choice]}

    async def chunks(self, events: AsyncIterator[tuple[int, Event]]) -> AsyncIterator[dict[str, Any]]:
        started: set[int] = set()
        finishes: list[Finish] = []
        async for index, event in events:
            if index not in started:
                started.add(index)
                yield self._chunk(index, {"role": "assistant", "content": ""})
            if isinstance(event, TextDelta):
                yield self._chunk(index, {"content": event.text}, logprobs=self._logprobs(event.logprobs))
            elif isinstance(event, ReasoningDelta):
                yield self._chunk(index, {"reasoning_content": event.text})
            elif isinstance(event, ToolCallDelta):
                yield self._chunk(index, self._call_delta(event))
            elif isinstance(event, Finish):
                finishes.append(event)
                yield self._chunk(index, {}, self._finish_reasons[event.reason])
        if self.include_usage and finishes:
            yield {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                   "model": self.model_id, "system_fingerprint": None, "choices": [],
                   "usage": usage_json(finishes)}

    async def completion(self, events: AsyncIterator[tuple[int, Event]]) -> dict[str, Any]:
        choices: dict[int, _Choice] = {}
        async for index, event in events:
            choices.setdefault(index, _Choice()).add(event)
        finishes = [choice.finish for choice in choices.values()]
        assert finishes and all(finishes), "the engine always ends each choice with a Finish event"
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
                "system_fingerprint": None,
                "choices": [self._choice_json(index, choices[index]) for index in sorted(choices)],
                "usage": usage_json(finishes)}

    def _choice_json(self, index: int, choice: "_Choice") -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(choice.text) if choice.text or not choice.calls else None,
                                   "refusal": None}
        if choice.reasoning:
            message["reasoning_content"] = "".join(choice.reasoning)
        if choice.calls and self.legacy_functions:
            message["function_call"] = choice.calls[0]["function"]
        elif choice.calls:
            message["tool_calls"] = choice.calls
        return {"index": index, "message": message, "finish_reason": self._finish_reasons[choice.finish.reason],
                "logprobs": self._logprobs(tuple(choice.logprobs))}

    def _call_delta(self, call: ToolCallDelta) -> dict[str, Any]:
        if self.legacy_functions:
            return {"function_call": {"name": call.name, "arguments": call.arguments}}
        return {"tool_calls": [{"index": call.index, **_tool_call_json(call)}]}

    def _logprobs(self, entries: tuple[TokenLogprob, ...]) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        return {"content": [logprob_json(entry) for entry in entries], "refusal": None}


class _Choice:
    """One choice of a non-streaming completion, collected from its events."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.logprobs: list[TokenLogprob] = []
        self.finish: Finish | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            self.logprobs.extend(event.logprobs)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self.calls.append(_tool_call_json(event))
        elif isinstance(event, Finish):
            self.finish = event


def _tool_call_json(call: ToolCallDelta) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def usage_json(finishes: list[Finish]) -> dict[str, Any]:
    """The prompt once (every choice shares it), the completion tokens of every choice."""
    first = finishes[0].usage
    completion = sum(finish.usage.completion_tokens for finish in finishes)
    reasoning = sum(finish.usage.reasoning_tokens for finish in finishes)
    return {"prompt_tokens": first.prompt_tokens, "completion_tokens": completion,
            "total_tokens": first.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": first.cached_prompt_tokens},
            "completion_tokens_details": {"reasoning_tokens": reasoning}}


def error_body(error_type: str, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
