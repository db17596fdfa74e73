"""OpenAI Chat Completions: wire types, the translation to a GenerationRequest, and the response.

Field names and shapes follow the ``openai`` package's ``types/chat`` definitions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, AsyncIterator, Literal, Optional, Union

from pydantic import Field, model_validator

from edge.api.validation import WireModel
from edge.errors import InvalidRequestError, UnsupportedFeatureError
from edge.formats.base import ChatFormat
from edge.runtime.events import Event, Finish, TextDelta, TokenLogprob
from edge.runtime.request import (
    DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_OUTPUT_TOKENS, MAX_SEED, MAX_TOP_LOGPROBS,
    GenerationRequest, Message, SamplingParams, TextPart,
)

MAX_STOP_SEQUENCES = 4

# engine finish reason -> OpenAI chat finish_reason
FINISH_REASONS = {"stop": "stop", "length": "length", "cancelled": "stop"}


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


class ChatCompletionRequest(WireModel):
    model: str
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
    response_format: Optional[ResponseFormatText] = None
    tools: Optional[list[dict[str, Any]]] = None
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None
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

def to_generation_request(chat: ChatCompletionRequest, chat_format: ChatFormat, n_vocab: int) -> GenerationRequest:
    if chat.tools and not chat_format.supports_tools:
        raise UnsupportedFeatureError(
            f"this model's turn format ({chat_format.name}) has no tool-call tokens; tools are not supported",
            param="tools")
    if chat.tool_choice is not None and not chat.tools:
        raise InvalidRequestError("tool_choice needs tools", param="tool_choice")
    return GenerationRequest(
        messages=tuple(_message(message, index) for index, message in enumerate(chat.messages)),
        sampling=_sampling(chat, n_vocab),
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        stop=(chat.stop,) if isinstance(chat.stop, str) else tuple(chat.stop or ()),
        logprobs=chat.logprobs,
        top_logprobs=chat.top_logprobs or 0,
    )


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


def _message(message: ChatMessage, index: int) -> Message:
    role = "system" if message.role == "developer" else message.role
    if message.tool_calls or role == "tool":
        raise UnsupportedFeatureError("tool calls and tool results need a model with a tool-call format",
                                      param=f"messages[{index}]")
    return Message(role=role, parts=_parts(message.content, index))


def _parts(content: Union[str, list[ContentPart], None], index: int) -> tuple[TextPart, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),)
    parts = []
    for part_index, part in enumerate(content):
        if isinstance(part, ImageContentPart):
            raise UnsupportedFeatureError("this model has no vision projector; it cannot read images",
                                          param=f"messages[{index}].content[{part_index}].image_url")
        parts.append(TextPart(part.text))
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
            elif isinstance(event, Finish):
                yield self._chunk({}, FINISH_REASONS[event.reason])
                if self.include_usage:
                    yield {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model_id, "system_fingerprint": None, "choices": [],
                           "usage": usage_json(event)}

    async def completion(self, events: AsyncIterator[Event]) -> dict[str, Any]:
        text: list[str] = []
        token_logprobs: list[TokenLogprob] = []
        finish: Finish | None = None
        async for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
                token_logprobs.extend(event.logprobs)
            elif isinstance(event, Finish):
                finish = event
        assert finish is not None, "the engine always ends with a Finish event"
        message = {"role": "assistant", "content": "".join(text), "refusal": None}
        choice = {"index": 0, "message": message, "finish_reason": FINISH_REASONS[finish.reason],
                  "logprobs": self._logprobs(tuple(token_logprobs))}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
                "system_fingerprint": None, "choices": [choice], "usage": usage_json(finish)}

    def _logprobs(self, entries: tuple[TokenLogprob, ...]) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        return {"content": [_logprob_json(entry) for entry in entries], "refusal": None}


def _logprob_json(entry: TokenLogprob) -> dict[str, Any]:
    return {"token": entry.token, "bytes": list(entry.bytes), "logprob": entry.logprob,
            "top_logprobs": [{"token": top.token, "bytes": list(top.bytes), "logprob": top.logprob}
                             for top in entry.top]}


def usage_json(finish: Finish) -> dict[str, Any]:
    usage = finish.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def error_body(error_type: str, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
