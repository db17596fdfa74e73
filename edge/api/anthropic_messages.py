"""Anthropic Messages: wire types, the translation to a GenerationRequest, and the event stream.

Field names and event shapes follow the ``anthropic`` package's ``types`` definitions. The request
becomes the same ``GenerationRequest`` chat completions builds; a non-streaming message is the final
snapshot of the same event stream.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any, AsyncIterator, Literal, Optional, Union

from pydantic import Field, model_validator

from edge.api.common import (
    SamplingFields, ThinkingFields, checked, logprob_json, partial_json_object, sampling_params, thinking_request,
    thinking_switch, tool_specs,
)
from edge.api.context import ServingContext
from edge.api.validation import WireModel, tagged_union
from edge.errors import EdgeError, InvalidRequestError, UnsupportedFeatureError
from edge.core.events import Event, Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta
from edge.runtime.images import check_image_count, load_image, load_image_base64
from edge.core.request import (
    DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_OUTPUT_TOKENS,
    GenerationRequest, ImagePart, Message, ResponseFormat, SamplingParams, TextPart, ToolCall, ToolChoice, ToolSpec,
)

ContentParts = list[Union[TextPart, ImagePart]]

MAX_STOP_SEQUENCES = 16

# engine finish reason -> Anthropic stop_reason (a matched stop sequence reports "stop_sequence")
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "cancelled": "end_turn"}

# HTTP status -> Anthropic error type (anything else: api_error from 500 up, invalid_request_error below)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def error_json(error: EdgeError) -> dict[str, Any]:
    """Anthropic's body has no ``param``; like Anthropic, the message starts with the parameter path."""
    default = "api_error" if error.status >= 500 else "invalid_request_error"
    message = error.message
    if error.param and error.param not in message:
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": ERROR_TYPES.get(error.status, default), "message": message}}


# -- wire types ------------------------------------------------------------------------------------

class TextBlock(WireModel):
    type: Literal["text"]
    text: str
    cache_control: Optional[dict[str, Any]] = None
    citations: Optional[list[dict[str, Any]]] = None


class Base64Source(WireModel):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class UrlSource(WireModel):
    type: Literal["url"]
    url: str


class ImageBlock(WireModel):
    type: Literal["image"]
    source: tagged_union({"base64": Base64Source, "url": UrlSource})
    cache_control: Optional[dict[str, Any]] = None


class ToolUseBlock(WireModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: Optional[dict[str, Any]] = None


class PlainTextSource(WireModel):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: str


class Base64DocumentSource(WireModel):
    """Anthropic's base64 documents are PDFs; a base64 text/plain one is read as UTF-8 text."""

    type: Literal["base64"]
    media_type: str
    data: str


class ContentDocumentSource(WireModel):
    type: Literal["content"]
    content: Union[str, list[tagged_union({"text": TextBlock, "image": ImageBlock})]]


class UrlDocumentSource(WireModel):
    type: Literal["url"]
    url: str


class FileDocumentSource(WireModel):
    type: Literal["file"]
    file_id: str


class CitationsConfig(WireModel):
    enabled: bool


class DocumentBlock(WireModel):
    """A document the model reads as text (title and context first). PDFs and citations cannot be honoured."""

    type: Literal["document"]
    source: tagged_union({"text": PlainTextSource, "base64": Base64DocumentSource, "content": ContentDocumentSource,
                          "url": UrlDocumentSource, "file": FileDocumentSource})
    title: Optional[str] = None
    context: Optional[str] = None
    citations: Optional[CitationsConfig] = None
    cache_control: Optional[dict[str, Any]] = None


class ToolResultBlock(WireModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: Union[str, list[tagged_union({"text": TextBlock, "image": ImageBlock, "document": DocumentBlock})]] = ""
    is_error: Optional[bool] = None
    cache_control: Optional[dict[str, Any]] = None


class ThinkingBlock(WireModel):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(WireModel):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = tagged_union({"text": TextBlock, "image": ImageBlock, "document": DocumentBlock,
                             "tool_use": ToolUseBlock, "tool_result": ToolResultBlock, "thinking": ThinkingBlock,
                             "redacted_thinking": RedactedThinkingBlock})


class InputMessage(WireModel):
    role: Literal["user", "assistant"]
    content: Union[str, list[ContentBlock]]


class Tool(WireModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,128}$")
    input_schema: dict[str, Any]
    description: Optional[str] = None
    type: Optional[Literal["custom"]] = None
    cache_control: Optional[dict[str, Any]] = None
    strict: Optional[bool] = None


class ToolChoiceAuto(WireModel):
    type: Literal["auto"]
    disable_parallel_tool_use: Optional[bool] = None


class ToolChoiceAny(WireModel):
    type: Literal["any"]
    disable_parallel_tool_use: Optional[bool] = None


class ToolChoiceTool(WireModel):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: Optional[bool] = None


class ToolChoiceNone(WireModel):
    type: Literal["none"]


AnyToolChoice = tagged_union({"auto": ToolChoiceAuto, "any": ToolChoiceAny, "tool": ToolChoiceTool,
                              "none": ToolChoiceNone})
# Anthropic tool_choice type -> the engine's mode
TOOL_CHOICE_MODES = {"auto": "auto", "any": "required", "tool": "function", "none": "none"}


class ThinkingEnabled(WireModel):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1, le=MAX_OUTPUT_TOKENS)
    display: Optional[Literal["summarized", "omitted"]] = None


class ThinkingAdaptive(WireModel):
    type: Literal["adaptive"]
    display: Optional[Literal["summarized", "omitted"]] = None


class ThinkingDisabled(WireModel):
    type: Literal["disabled"]


class JsonOutputFormat(WireModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(WireModel):
    format: Optional[JsonOutputFormat] = None


class Metadata(WireModel):
    user_id: Optional[str] = None


class CountTokensRequest(ThinkingFields):
    """What shapes the prompt; ``MessagesRequest`` adds what shapes the generation. The extensions
    enable_thinking and reasoning_effort (``ThinkingFields``) win over ``thinking``."""

    model: Optional[str] = None  # absent: the served model
    messages: list[InputMessage] = Field(min_length=1)
    system: Union[str, list[TextBlock], None] = None
    tools: Optional[list[Tool]] = None
    tool_choice: Optional[AnyToolChoice] = None
    thinking: Optional[tagged_union({"enabled": ThinkingEnabled, "adaptive": ThinkingAdaptive,
                                     "disabled": ThinkingDisabled})] = None
    output_config: Optional[OutputConfig] = None


class MessagesRequest(CountTokensRequest, SamplingFields):
    """Besides Anthropic's own fields (top_k among them): the hosted API's parameters shared with the
    OpenAI endpoints (``SamplingFields``: seed, min_p, the penalties, logprobs, top_logprobs, ignore_eos)."""

    max_tokens: int = Field(ge=1, le=MAX_OUTPUT_TOKENS)
    stop_sequences: Optional[list[str]] = Field(None, max_length=MAX_STOP_SEQUENCES)
    temperature: Optional[float] = Field(None, ge=0, le=1)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    stream: bool = False
    # accepted because they have no local meaning (docs/api.md): they do not change what is generated
    metadata: Optional[Metadata] = None
    service_tier: Optional[Literal["auto", "standard_only"]] = None
    cache_control: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _consistent(self) -> "MessagesRequest":
        if any(sequence == "" for sequence in self.stop_sequences or ()):
            raise InvalidRequestError("stop sequences must not be empty", param="stop_sequences")
        if isinstance(self.thinking, ThinkingEnabled) and self.thinking.budget_tokens >= self.max_tokens:
            raise InvalidRequestError("thinking.budget_tokens must be less than max_tokens",
                                      param="thinking.budget_tokens")
        return self


# -- request translation ---------------------------------------------------------------------------

def to_generation_request(wire: CountTokensRequest, serving: ServingContext) -> GenerationRequest:
    """Blocking (images are decoded, maybe fetched): call it off the event loop."""
    tools = _tools(wire, serving)
    check_image_count(_count_images(wire.messages), serving.image_policy, "messages")
    messages = tuple(message for index, wire_message in enumerate(wire.messages)
                     for message in _messages(wire_message, f"messages[{index}]", serving))
    full = isinstance(wire, MessagesRequest)
    choice = wire.tool_choice
    thinking = _thinking(wire, serving)
    budget = wire.thinking.budget_tokens if thinking and isinstance(wire.thinking, ThinkingEnabled) else None
    return checked(GenerationRequest(
        messages=_system(wire.system) + messages,
        sampling=_sampling(wire) if full else SamplingParams(),
        max_tokens=wire.max_tokens if full else None,
        stop=tuple(wire.stop_sequences or ()) if full else (),
        logprobs=full and wire.logprobs,
        top_logprobs=(wire.top_logprobs or 0) if full and wire.logprobs else 0,
        enable_thinking=thinking,
        thinking_budget=budget,
        tools=tools,
        tool_choice=_tool_choice(choice, tools),
        parallel_tool_calls=not getattr(choice, "disable_parallel_tool_use", None),
        response_format=_response_format(wire.output_config),
        ignore_eos=full and wire.ignore_eos,
    ))


def _system(system: Union[str, list[TextBlock], None]) -> tuple[Message, ...]:
    text = system if isinstance(system, str) else "\n\n".join(block.text for block in system or [])
    return (Message("system", (TextPart(text),)),) if text else ()


def _thinking(wire: CountTokensRequest, serving: ServingContext) -> bool:
    """Thinking is opt-in, as in Anthropic's API: enabled/adaptive on, disabled or absent off; the
    extensions enable_thinking and reasoning_effort win over ``thinking``."""
    native = None if wire.thinking is None else isinstance(wire.thinking, (ThinkingEnabled, ThinkingAdaptive))
    explicit = thinking_request(wire, native)
    param = "thinking" if wire.enable_thinking is None and wire.reasoning_effort is None else "enable_thinking"
    return thinking_switch(bool(explicit), serving.chat_format, param=param)


def _tools(wire: CountTokensRequest, serving: ServingContext) -> tuple[ToolSpec, ...]:
    declared = [(tool.name, tool.description, tool.input_schema) for tool in wire.tools or []]
    choice_needs_tools = wire.tool_choice is not None and wire.tool_choice.type != "none"
    return tool_specs(declared, serving.chat_format, choice_needs_tools)


def _tool_choice(choice: Optional[AnyToolChoice], tools: tuple[ToolSpec, ...]) -> ToolChoice:
    if isinstance(choice, ToolChoiceTool):
        if choice.name not in {tool.name for tool in tools}:
            raise InvalidRequestError(f"tool_choice names {choice.name!r}, which is not among tools",
                                      param="tool_choice.name")
        return ToolChoice("function", choice.name)
    return ToolChoice(TOOL_CHOICE_MODES[choice.type] if choice is not None else "auto")


def _response_format(config: Optional[OutputConfig]) -> ResponseFormat:
    if config is None or config.format is None:
        return ResponseFormat()
    return ResponseFormat("json_schema", config.format.schema_, "output")


def _sampling(wire: MessagesRequest) -> SamplingParams:
    return sampling_params(wire, DEFAULT_TEMPERATURE if wire.temperature is None else wire.temperature,
                           DEFAULT_TOP_P if wire.top_p is None else wire.top_p)


def _count_images(messages: list[InputMessage]) -> int:
    return sum(_images_in(block) for message in messages if isinstance(message.content, list)
               for block in message.content)


def _images_in(block: Any) -> int:
    """Images a block carries: itself, or inside a tool result's or a content document's blocks."""
    if isinstance(block, ImageBlock):
        return 1
    if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
        return sum(_images_in(inner) for inner in block.content)
    if isinstance(block, DocumentBlock) and isinstance(block.source, ContentDocumentSource) \
            and isinstance(block.source.content, list):
        return sum(_images_in(inner) for inner in block.source.content)
    return 0


def _messages(wire: InputMessage, param: str, serving: ServingContext) -> list[Message]:
    """A user turn's tool_result blocks become tool messages ahead of the rest of the turn; images a
    tool returned go into that user turn, in block order (a tool result itself holds text only)."""
    if isinstance(wire.content, str):
        return [Message(wire.role, (TextPart(wire.content),))]
    results: list[Message] = []
    parts: ContentParts = []
    calls: list[ToolCall] = []
    reasoning: list[str] = []
    for index, block in enumerate(wire.content):
        where = f"{param}.content[{index}]"
        _check_block_role(block, wire.role, where, serving)
        if isinstance(block, ToolResultBlock):
            results.append(_tool_result(block, where, serving, parts))
        elif isinstance(block, ToolUseBlock):
            calls.append(ToolCall(block.id, block.name, block.input))
        elif isinstance(block, ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, (TextBlock, ImageBlock, DocumentBlock)):
            parts.extend(_content_parts(block, where, serving))
    if parts or calls or reasoning or not results:
        results.append(Message(wire.role, tuple(parts), tuple(calls), reasoning="".join(reasoning) or None))
    return results


def _content_parts(block: Any, param: str, serving: ServingContext) -> ContentParts:
    if isinstance(block, TextBlock):
        return [TextPart(block.text)]
    if isinstance(block, ImageBlock):
        _require_vision(serving, param)
        return [ImagePart(_image(block, f"{param}.source", serving))]
    return _document(block, param, serving)


def _document(block: DocumentBlock, param: str, serving: ServingContext) -> ContentParts:
    """A document is read as text, its title and context first; a content source may hold images too."""
    if block.citations is not None and block.citations.enabled:
        raise UnsupportedFeatureError("citations are not supported: answers here carry no citations",
                                      param=f"{param}.citations.enabled")
    header = [TextPart(text) for text in (block.title, block.context) if text]
    source = block.source
    if isinstance(source, PlainTextSource):
        return header + [TextPart(source.data)]
    if isinstance(source, Base64DocumentSource) and source.media_type.split(";")[0].strip() == "text/plain":
        return header + [TextPart(_base64_text(source.data, f"{param}.source.data"))]
    if isinstance(source, ContentDocumentSource):
        if isinstance(source.content, str):
            return header + [TextPart(source.content)]
        return header + [part for index, inner in enumerate(source.content)
                         for part in _content_parts(inner, f"{param}.source.content[{index}]", serving)]
    kind = "a PDF" if isinstance(source, (Base64DocumentSource, UrlDocumentSource)) else "a file_id document"
    raise UnsupportedFeatureError(f"{kind} cannot be read here: send the document as text (a text source, "
                                  "or base64 with media_type text/plain)", param=f"{param}.source")


def _base64_text(data: str, param: str) -> str:
    try:
        return base64.b64decode("".join(data.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidRequestError("the document is not base64-encoded UTF-8 text", param=param) from None


# block type -> the role it may appear in
_BLOCK_ROLES = {ToolResultBlock: "user", ToolUseBlock: "assistant", ThinkingBlock: "assistant",
                RedactedThinkingBlock: "assistant", ImageBlock: "user", DocumentBlock: "user"}


def _check_block_role(block: ContentBlock, role: str, param: str, serving: ServingContext) -> None:
    allowed = _BLOCK_ROLES.get(type(block), role)
    if allowed != role:
        raise InvalidRequestError(f"a {block.type} block belongs in a {allowed} message, not a {role} message",
                                  param=param)
    if isinstance(block, (ToolResultBlock, ToolUseBlock)) and not serving.chat_format.supports_tools:
        raise UnsupportedFeatureError("tool_use and tool_result blocks need a model with a tool-call format",
                                      param=param)


def _require_vision(serving: ServingContext, param: str) -> None:
    if not serving.vision:
        raise UnsupportedFeatureError("this model has no vision projector; it cannot read images", param=param)


def _tool_result(block: ToolResultBlock, param: str, serving: ServingContext, turn_parts: ContentParts) -> Message:
    """The result's text (documents included) is the tool message; its images join ``turn_parts``, the
    user turn the result arrived in. A failed tool's output reaches the model marked as an error."""
    if isinstance(block.content, str):
        text = block.content
    else:
        parts = [part for index, inner in enumerate(block.content)
                 for part in _content_parts(inner, f"{param}.content[{index}]", serving)]
        text = "".join(part.text for part in parts if isinstance(part, TextPart))
        turn_parts.extend(part for part in parts if isinstance(part, ImagePart))
    if block.is_error:
        text = json.dumps({"error": text}, ensure_ascii=False)
    return Message("tool", (TextPart(text),), tool_call_id=block.tool_use_id)


def _image(block: ImageBlock, param: str, serving: ServingContext):
    source = block.source
    if isinstance(source, Base64Source):
        return load_image_base64(source.data, source.media_type, serving.image_policy, param)
    return load_image(source.url, serving.image_policy, f"{param}.url")


# -- the message and its stream --------------------------------------------------------------------

def stop_reason(finish: Finish) -> str:
    return "stop_sequence" if finish.stop_sequence is not None else STOP_REASONS[finish.reason]


def tool_use_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")


class MessageBuilder:
    """Turns engine events into Messages stream events while building the final message.

    ``stream`` is the single path: the non-streaming route drains it and returns ``message``. With the
    ``logprobs`` extension each ``text_delta`` and each text block carry ``logprobs``: a list of
    ``{token, bytes, logprob, top_logprobs}``, the Chat Completions shape. A tool call max_tokens cut off
    is still a ``tool_use`` block (stop_reason ``max_tokens``): its ``partial_json`` is the input as far as
    it was written, its ``input`` the values written whole, as the SDK's partial parsing reads it."""

    def __init__(self, model_id: str, input_tokens: int, logprobs: bool = False):
        self.message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant", "model": model_id,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}
        self.logprobs = logprobs
        self._open: str | None = None  # "text" or "thinking": the block taking deltas
        self._chunks: list[str] = []
        self._logprobs: list[dict[str, Any]] = []

    async def stream(self, events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "message_start", "message": json.loads(json.dumps(self.message))}
        yield {"type": "ping"}
        async for event in events:
            for payload in self._on(event):
                yield payload

    async def collect(self, events: AsyncIterator[Event]) -> dict[str, Any]:
        async for _ in self.stream(events):
            pass
        return self.message

    def _on(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return self._delta("text", event.text, event.logprobs)
        if isinstance(event, ReasoningDelta):
            return self._delta("thinking", event.text)
        if isinstance(event, ToolCallDelta):
            return self._tool_use(event)
        return self._finish(event)

    def _delta(self, kind: str, text: str, logprobs: tuple[TokenLogprob, ...] = ()) -> list[dict[str, Any]]:
        logprobs = logprobs if self.logprobs else ()
        if not text and not (logprobs and self._open == kind):
            return []
        payloads = [] if self._open == kind else self._close() + [self._start(kind)]
        self._chunks.append(text)
        if kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            delta = {"type": "text_delta", "text": text}
            if self.logprobs:
                delta["logprobs"] = [logprob_json(entry) for entry in logprobs]
                self._logprobs.extend(delta["logprobs"])
        return payloads + [{"type": "content_block_delta", "index": self._index(), "delta": delta}]

    def _start(self, kind: str) -> dict[str, Any]:
        block = ({"type": "text", "text": ""} if kind == "text"
                 else {"type": "thinking", "thinking": "", "signature": ""})
        self.message["content"].append(block)
        self._open, self._chunks, self._logprobs = kind, [], []
        return {"type": "content_block_start", "index": self._index(), "content_block": dict(block)}

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        block = self.message["content"][-1]
        block[self._open] = "".join(self._chunks)
        if self._open == "text" and self.logprobs:
            block["logprobs"] = self._logprobs
        self._open = None
        return [{"type": "content_block_stop", "index": self._index()}]

    def _index(self) -> int:
        return len(self.message["content"]) - 1

    def _tool_use(self, call: ToolCallDelta) -> list[dict[str, Any]]:
        payloads = self._close()
        block = {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": {}}
        self.message["content"].append(block)
        index = self._index()
        payloads.append({"type": "content_block_start", "index": index, "content_block": dict(block)})
        payloads.append({"type": "content_block_delta", "index": index,
                         "delta": {"type": "input_json_delta", "partial_json": call.arguments}})
        block["input"] = json.loads(call.arguments) if call.complete else partial_json_object(call.arguments)
        return payloads + [{"type": "content_block_stop", "index": index}]

    def _finish(self, finish: Finish) -> list[dict[str, Any]]:
        payloads = self._close()
        usage = self.message["usage"]
        # as Anthropic counts: input_tokens leaves out what was read from the cache
        usage.update(input_tokens=finish.usage.prompt_tokens - finish.usage.cached_prompt_tokens,
                     cache_read_input_tokens=finish.usage.cached_prompt_tokens,
                     output_tokens=finish.usage.completion_tokens)
        self.message.update(stop_reason=stop_reason(finish), stop_sequence=finish.stop_sequence)
        delta = {"stop_reason": self.message["stop_reason"], "stop_sequence": finish.stop_sequence}
        return payloads + [{"type": "message_delta", "delta": delta, "usage": dict(usage)},
                           {"type": "message_stop"}]
