"""OpenAI Chat Completions: wire types, the translation to a GenerationRequest, and the response.

Field names and shapes follow the ``openai`` package's ``types/chat`` definitions.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator, Literal, Optional, Union

from pydantic import Field, model_validator

from edge.api.common import logprob_json, thinking_switch, tool_specs
from edge.api.context import ServingContext
from edge.api.validation import WireModel
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.base import ChatFormat
from edge.core.events import Event, Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta
from edge.core.request import (
    DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_OUTPUT_TOKENS, MAX_SEED, MAX_TOP_LOGPROBS,
    GenerationRequest, ImagePart, Message, ResponseFormat, SamplingParams, TextPart, ToolCall, ToolChoice, ToolSpec,
)
from edge.runtime.images import check_image_count, load_image

MAX_STOP_SEQUENCES = 4

# engine finish reason -> OpenAI chat finish_reason
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "cancelled": "stop"}


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
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCallParam]] = None
    tool_call_id: Optional[str] = None
    reasoning_content: Optional[str] = None
    refusal: Optional[str] = None

    @model_validator(mode="after")
    def _content_required(self) -> "ChatMessage":
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        return self


class StreamOptions(WireModel):
    include_usage: bool = False


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


class ChatCompletionRequest(WireModel):
    model: Optional[str] = None  # absent: the served model
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    min_p: float = Field(0.0, ge=0, le=1)
    top_k: int = Field(0, ge=0)
    max_tokens: Optional[int] = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    repetition_penalty: float = Field(1.0, ge=0.1, le=2)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    logit_bias: Optional[dict[str, float]] = None
    n: int = 1
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    response_format: Union[ResponseFormatText, ResponseFormatJsonObject, ResponseFormatJsonSchema, None] = None
    tools: Optional[list[ToolDefinition]] = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    parallel_tool_calls: Optional[bool] = None
    # thinking: enable_thinking (extension, as in vLLM/llama.cpp) wins over reasoning_effort
    enable_thinking: Optional[bool] = None
    chat_template_kwargs: Optional[ChatTemplateKwargs] = None
    reasoning_effort: Optional[Literal["none", "minimal", "low", "medium", "high"]] = None
    thinking_budget: Optional[int] = Field(None, ge=0, le=MAX_OUTPUT_TOKENS)
    # accepted because they do not change what is generated
    user: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    store: Optional[bool] = None
    service_tier: Optional[str] = None

    @model_validator(mode="after")
    def _consistent(self) -> "ChatCompletionRequest":
        if self.n != 1:
            raise InvalidRequestError("only n=1 is supported: one choice per request", param="n")
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError("top_logprobs requires logprobs to be true", param="top_logprobs")
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
        if not key.isdigit():
            raise InvalidRequestError(f"logit_bias keys are token ids, got {key!r}", param="logit_bias")
        if not -100 <= value <= 100:
            raise InvalidRequestError(f"logit_bias values are -100..100, got {value}", param=f"logit_bias.{key}")


# -- request translation -------------------------------------------------------------------------

def to_generation_request(chat: ChatCompletionRequest, serving: ServingContext) -> GenerationRequest:
    """Blocking (images may be read from disk or fetched): call it off the event loop."""
    chat_format = serving.chat_format
    tools = _tools(chat, chat_format)
    check_image_count(_count_images(chat.messages), serving.image_policy, "messages")
    return GenerationRequest(
        messages=tuple(_message(message, index, serving) for index, message in enumerate(chat.messages)),
        sampling=_sampling(chat, serving.n_vocab),
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        stop=(chat.stop,) if isinstance(chat.stop, str) else tuple(chat.stop or ()),
        logprobs=chat.logprobs,
        top_logprobs=chat.top_logprobs or 0,
        enable_thinking=_thinking(chat, chat_format),
        thinking_budget=chat.thinking_budget,
        tools=tools,
        tool_choice=_tool_choice(chat.tool_choice, tools),
        parallel_tool_calls=True if chat.parallel_tool_calls is None else chat.parallel_tool_calls,
        response_format=_response_format(chat.response_format),
    )


def _thinking(chat: ChatCompletionRequest, chat_format: ChatFormat) -> bool:
    """enable_thinking (top level or chat_template_kwargs) wins; else reasoning_effort; else the model's default."""
    explicit = chat.enable_thinking
    if explicit is None and chat.chat_template_kwargs is not None:
        explicit = chat.chat_template_kwargs.enable_thinking
    if explicit is None and chat.reasoning_effort is not None:
        explicit = chat.reasoning_effort in ("medium", "high")
    return thinking_switch(explicit, chat_format, param="enable_thinking", budget=chat.thinking_budget)


def _tools(chat: ChatCompletionRequest, chat_format: ChatFormat) -> tuple[ToolSpec, ...]:
    declared = [(tool.function.name, tool.function.description, tool.function.parameters) for tool in chat.tools or []]
    return tool_specs(declared, chat_format, choice_needs_tools=chat.tool_choice not in (None, "none"))


def _tool_choice(choice: Union[str, NamedToolChoice, None], tools: tuple[ToolSpec, ...]) -> ToolChoice:
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in {tool.name for tool in tools}:
            raise InvalidRequestError(f"tool_choice names {choice.function.name!r}, which is not among tools",
                                      param="tool_choice")
        return ToolChoice("function", choice.function.name)
    return ToolChoice(choice or "auto")


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
    return SamplingParams(
        temperature=DEFAULT_TEMPERATURE if chat.temperature is None else chat.temperature,
        top_p=DEFAULT_TOP_P if chat.top_p is None else chat.top_p,
        min_p=chat.min_p, top_k=chat.top_k,
        presence_penalty=chat.presence_penalty, frequency_penalty=chat.frequency_penalty,
        repetition_penalty=chat.repetition_penalty, seed=chat.seed, logit_bias=bias)


def _count_images(messages: list[ChatMessage]) -> int:
    return sum(isinstance(part, ImageContentPart) for message in messages
               if isinstance(message.content, list) for part in message.content)


def _message(message: ChatMessage, index: int, serving: ServingContext) -> Message:
    role = "system" if message.role == "developer" else message.role
    if (message.tool_calls or role == "tool") and not serving.chat_format.supports_tools:
        raise UnsupportedFeatureError("tool calls and tool results need a model with a tool-call format",
                                      param=f"messages[{index}]")
    if role == "tool" and not message.tool_call_id:
        raise InvalidRequestError("a tool message needs tool_call_id", param=f"messages[{index}].tool_call_id")
    return Message(role=role, parts=_parts(message, index, serving), tool_calls=_calls(message, index),
                   tool_call_id=message.tool_call_id, reasoning=message.reasoning_content, name=message.name)


def _calls(message: ChatMessage, index: int) -> tuple[ToolCall, ...]:
    calls = []
    for call_index, call in enumerate(message.tool_calls or []):
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequestError("tool call arguments must be a JSON object",
                                      param=f"messages[{index}].tool_calls[{call_index}].function.arguments")
        calls.append(ToolCall(call.id, call.function.name, arguments))
    return tuple(calls)


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
    """Turns engine events into chat.completion(.chunk) objects for one request."""

    def __init__(self, model_id: str, include_usage: bool, logprobs: bool):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model_id = model_id
        self.include_usage = include_usage
        self.logprobs = logprobs

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model_id, "system_fingerprint": None, "choices": [choice]}

    async def chunks(self, events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
        yield self._chunk({"role": "assistant", "content": ""})
        async for event in events:
            if isinstance(event, TextDelta):
                yield self._chunk({"content": event.text}, logprobs=self._logprobs(event.logprobs))
            elif isinstance(event, ReasoningDelta):
                yield self._chunk({"reasoning_content": event.text})
            elif isinstance(event, ToolCallDelta):
                yield self._chunk({"tool_calls": [{"index": event.index, **_tool_call_json(event)}]})
            elif isinstance(event, Finish):
                yield self._chunk({}, FINISH_REASONS[event.reason])
                if self.include_usage:
                    yield {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model_id, "system_fingerprint": None, "choices": [],
                           "usage": usage_json(event)}

    async def completion(self, events: AsyncIterator[Event]) -> dict[str, Any]:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        token_logprobs: list[TokenLogprob] = []
        finish: Finish | None = None
        async for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
                token_logprobs.extend(event.logprobs)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, ToolCallDelta):
                calls.append(_tool_call_json(event))
            elif isinstance(event, Finish):
                finish = event
        assert finish is not None, "the engine always ends with a Finish event"
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                                   "refusal": None}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": FINISH_REASONS[finish.reason],
                  "logprobs": self._logprobs(tuple(token_logprobs))}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
                "system_fingerprint": None, "choices": [choice], "usage": usage_json(finish)}

    def _logprobs(self, entries: tuple[TokenLogprob, ...]) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        return {"content": [logprob_json(entry) for entry in entries], "refusal": None}


def _tool_call_json(call: ToolCallDelta) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def usage_json(finish: Finish) -> dict[str, Any]:
    usage = finish.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def error_body(error_type: str, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
