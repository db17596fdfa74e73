"""OpenAI Responses: wire types, the translation to a GenerationRequest, the event stream, and the store.

Field names and event shapes follow the ``openai`` package's ``types/responses`` definitions. The
request becomes the same ``GenerationRequest`` chat completions builds; the engine's events become
Responses stream events, and a non-streaming response is the final object of that same stream.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal, Optional, Union

from pydantic import Field

from edge.api.common import (
    SamplingFields, ThinkingFields, checked, logprob_json, partial_json_object, sampling_params, thinking_request,
    thinking_switch, tool_specs,
)
from edge.api.context import ServingContext
from edge.api.openai_chat import FunctionDefinition
from edge.api.validation import WireModel, tagged_union
from edge.errors import EdgeError, InvalidRequestError, NotFoundError, UnsupportedFeatureError
from edge.formats.base import ChatFormat
from edge.core.events import Event, Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta
from edge.runtime.images import check_image_count, load_image
from edge.core.request import (
    DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_OUTPUT_TOKENS,
    GenerationRequest, ImagePart, Message, ResponseFormat, SamplingParams, TextPart, ToolCall, ToolChoice, ToolSpec,
)

STORE_SIZE = 256
LOGPROBS_INCLUDE = "message.output_text.logprobs"
# every value the API's ``include`` takes. Only the logprobs one adds anything here: the others ask for
# parts of hosted tools' results (there are none) or, for reasoning.encrypted_content, for the thought
# in a form only the host can read back; here reasoning items carry their text in the clear and are
# accepted back as they are.
INCLUDABLE = Literal["file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
                     "message.input_image.image_url", "computer_call_output.output.image_url",
                     "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs"]

# engine finish reason -> (response status, incomplete_details.reason)
STATUS = {"stop": ("completed", None), "tool_calls": ("completed", None),
          "length": ("incomplete", "max_output_tokens"), "cancelled": ("incomplete", None)}


class ResponseNotFoundError(NotFoundError):
    error_type = "invalid_request_error"
    code = "previous_response_not_found"


# -- wire types: input -----------------------------------------------------------------------------

class InputText(WireModel):
    type: Literal["input_text"]
    text: str


class InputImage(WireModel):
    type: Literal["input_image"]
    image_url: Optional[str] = None
    file_id: Optional[str] = None
    detail: Literal["low", "high", "auto", "original"] = "auto"


class OutputText(WireModel):
    """An assistant message's text, as a client sends back a previous response's output."""

    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] = []
    logprobs: Optional[list[dict[str, Any]]] = None


class Refusal(WireModel):
    type: Literal["refusal"]
    refusal: str


InputPart = tagged_union({"input_text": InputText, "input_image": InputImage, "output_text": OutputText,
                          "refusal": Refusal})


class MessageItem(WireModel):
    type: Optional[Literal["message"]] = None
    role: Literal["user", "assistant", "system", "developer"]
    content: Union[str, list[InputPart]]
    id: Optional[str] = None
    status: Optional[Literal["in_progress", "completed", "incomplete"]] = None
    phase: Optional[Literal["commentary", "final_answer"]] = None


class FunctionCallItem(WireModel):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: Optional[str] = None
    status: Optional[Literal["in_progress", "completed", "incomplete"]] = None


class FunctionCallOutputItem(WireModel):
    type: Literal["function_call_output"]
    call_id: str
    output: Union[str, list[InputText]]
    id: Optional[str] = None
    status: Optional[Literal["in_progress", "completed", "incomplete"]] = None


class ReasoningText(WireModel):
    type: Literal["reasoning_text", "summary_text"]
    text: str


class ReasoningItem(WireModel):
    type: Literal["reasoning"]
    summary: list[ReasoningText] = []
    content: Optional[list[ReasoningText]] = None
    id: Optional[str] = None
    encrypted_content: Optional[str] = None
    status: Optional[Literal["in_progress", "completed", "incomplete"]] = None


InputItem = tagged_union({"message": MessageItem, "function_call": FunctionCallItem,
                          "function_call_output": FunctionCallOutputItem, "reasoning": ReasoningItem},
                         default="message")


# -- wire types: options ---------------------------------------------------------------------------

class FunctionTool(FunctionDefinition):
    """Responses spells a function tool flat: chat's function definition plus its ``type``."""

    type: Literal["function"]


class NamedFunction(WireModel):
    type: Literal["function"]
    name: str


class FormatText(WireModel):
    type: Literal["text"]


class FormatJsonObject(WireModel):
    type: Literal["json_object"]


class FormatJsonSchema(WireModel):
    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: Optional[str] = None
    strict: Optional[bool] = None


class TextConfig(WireModel):
    format: Optional[tagged_union({"text": FormatText, "json_object": FormatJsonObject,
                                   "json_schema": FormatJsonSchema})] = None
    verbosity: Optional[Literal["low", "medium", "high"]] = None  # accepted: no local meaning


class ReasoningConfig(WireModel):
    effort: Optional[Literal["none", "minimal", "low", "medium", "high"]] = None
    summary: Optional[Literal["auto", "concise", "detailed"]] = None
    generate_summary: Optional[Literal["auto", "concise", "detailed"]] = None  # summary's deprecated name


class StreamOptions(WireModel):
    include_obfuscation: Optional[bool] = None  # nothing is obfuscated here, so either value is honoured


class ResponsesRequest(SamplingFields, ThinkingFields):
    """Besides these: the extensions shared with chat completions (``SamplingFields``: seed, top_k,
    min_p, the penalties, logprobs, top_logprobs, ignore_eos; ``ThinkingFields``: enable_thinking,
    reasoning_effort)."""

    model: Optional[str] = None  # absent: the served model
    input: Union[str, list[InputItem], None] = None
    instructions: Optional[str] = None
    tools: Optional[list[FunctionTool]] = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedFunction, None] = None
    parallel_tool_calls: Optional[bool] = None
    text: Optional[TextConfig] = None
    reasoning: Optional[ReasoningConfig] = None
    max_output_tokens: Optional[int] = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_tool_calls: Optional[int] = Field(None, ge=0)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, ge=0, le=1)
    include: Optional[list[INCLUDABLE]] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    store: Optional[bool] = None
    previous_response_id: Optional[str] = None
    # "auto" would drop the oldest input to fit; a conversation that fits needs none, one that does not
    # is the usual context-length 400
    truncation: Optional[Literal["auto", "disabled"]] = None
    thinking_budget: Optional[int] = Field(None, ge=0, le=MAX_OUTPUT_TOKENS)  # extension, as in chat
    background: Optional[bool] = None  # true is refused: responses are generated while the client waits
    # accepted because they have no local meaning (docs/api.md): they do not change what is generated
    metadata: Optional[dict[str, str]] = None
    user: Optional[str] = None
    service_tier: Optional[str] = None
    safety_identifier: Optional[str] = None
    prompt_cache_key: Optional[str] = None
    prompt_cache_retention: Optional[Literal["in_memory", "24h"]] = None
    prompt_cache_options: Optional[dict[str, Any]] = None

    def logprobs_requested(self) -> bool:
        return self.logprobs or LOGPROBS_INCLUDE in (self.include or ())


# -- the store -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    conversation: tuple[Message, ...]  # input and output of that response, without its instructions


class ResponseStore:
    """The most recent responses, least recently used dropped first; lives on ``app.state``.

    Only the event loop touches it, so it needs no lock."""

    def __init__(self, capacity: int = STORE_SIZE):
        self.capacity = capacity
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, stored: StoredResponse) -> None:
        self._entries[stored.response["id"]] = stored
        self._entries.move_to_end(stored.response["id"])
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, response_id: str, param: str | None = None) -> StoredResponse:
        stored = self._entries.get(response_id)
        if stored is None:
            if param is None:
                raise NotFoundError(f"No response found with id '{response_id}'.")
            raise ResponseNotFoundError(f"Previous response with id '{response_id}' not found.", param=param)
        self._entries.move_to_end(response_id)
        return stored


# -- request translation ---------------------------------------------------------------------------

def to_generation_request(wire: ResponsesRequest, serving: ServingContext,
                          previous: tuple[Message, ...] = ()) -> GenerationRequest:
    """Blocking (images may be read from disk or fetched): call it off the event loop.

    ``previous`` is the stored conversation ``previous_response_id`` names; the new input follows it."""
    if wire.input is None and not previous:
        raise InvalidRequestError("Missing required parameter: 'input'", param="input")
    if wire.background:
        raise UnsupportedFeatureError("background responses are not supported: send the request without "
                                      "background and wait for it (or stream it)", param="background")
    chat_format = serving.chat_format
    tools = _tools(wire, chat_format)
    items = [MessageItem(role="user", content=wire.input)] if isinstance(wire.input, str) else wire.input or []
    check_image_count(_count_images(items) + _count_stored_images(previous), serving.image_policy, "input")
    system = (Message("system", (TextPart(wire.instructions),)),) if wire.instructions else ()
    logprobs = wire.logprobs_requested()
    return checked(GenerationRequest(
        messages=system + previous + _messages(items, serving, previous),
        sampling=_sampling(wire),
        max_tokens=wire.max_output_tokens,
        logprobs=logprobs,
        top_logprobs=(wire.top_logprobs or 0) if logprobs else 0,
        enable_thinking=_thinking(wire, chat_format),
        thinking_budget=wire.thinking_budget,
        tools=tools,
        tool_choice=_tool_choice(wire, tools),
        parallel_tool_calls=True if wire.parallel_tool_calls is None else wire.parallel_tool_calls,
        max_tool_calls=wire.max_tool_calls,
        response_format=_response_format(wire.text),
        ignore_eos=wire.ignore_eos,
    ))


def conversation_of(wire: ResponsesRequest, generation: GenerationRequest) -> tuple[Message, ...]:
    """What a follow-up continues: the request's messages without this request's instructions."""
    return generation.messages[1:] if wire.instructions else generation.messages


def _thinking(wire: ResponsesRequest, chat_format: ChatFormat) -> bool:
    """enable_thinking wins, then reasoning_effort, then reasoning.effort (low/minimal/none off,
    medium/high on); else the model's default."""
    effort = wire.reasoning.effort if wire.reasoning is not None else None
    explicit = thinking_request(wire, native=None if effort is None else effort in ("medium", "high"))
    return thinking_switch(explicit, chat_format, param="reasoning.effort", budget=wire.thinking_budget)


def _tools(wire: ResponsesRequest, chat_format: ChatFormat) -> tuple[ToolSpec, ...]:
    declared = [(tool.name, tool.description, tool.parameters) for tool in wire.tools or []]
    return tool_specs(declared, chat_format, choice_needs_tools=wire.tool_choice not in (None, "none"))


def _tool_choice(wire: ResponsesRequest, tools: tuple[ToolSpec, ...]) -> ToolChoice:
    choice = wire.tool_choice
    if isinstance(choice, NamedFunction):
        if choice.name not in {tool.name for tool in tools}:
            raise InvalidRequestError(f"tool_choice names {choice.name!r}, which is not among tools",
                                      param="tool_choice")
        picked = ToolChoice("function", choice.name)
    else:
        picked = ToolChoice(choice or "auto")
    if wire.max_tool_calls == 0 and tools:  # no call allowed: exactly what tool_choice none means
        if picked.mode in ("required", "function"):
            raise InvalidRequestError("max_tool_calls 0 allows no call, but tool_choice requires one",
                                      param="max_tool_calls")
        return ToolChoice("none")
    return picked


def _response_format(text: Optional[TextConfig]) -> ResponseFormat:
    format_ = text.format if text is not None else None
    if format_ is None or isinstance(format_, FormatText):
        return ResponseFormat()
    if isinstance(format_, FormatJsonObject):
        return ResponseFormat("json_object")
    return ResponseFormat("json_schema", format_.schema_, format_.name)


def _sampling(wire: ResponsesRequest) -> SamplingParams:
    return sampling_params(wire, DEFAULT_TEMPERATURE if wire.temperature is None else wire.temperature,
                           DEFAULT_TOP_P if wire.top_p is None else wire.top_p)


def _count_images(items: list[InputItem]) -> int:
    return sum(isinstance(part, InputImage) for item in items
               if isinstance(item, MessageItem) and isinstance(item.content, list) for part in item.content)


def _count_stored_images(messages: tuple[Message, ...]) -> int:
    return sum(isinstance(part, ImagePart) for message in messages for part in message.parts)


def _messages(items: list[InputItem], serving: ServingContext, previous: tuple[Message, ...]) -> tuple[Message, ...]:
    names = {call.id: call.name for message in previous for call in message.tool_calls}
    messages: list[Message] = []
    for index, item in enumerate(items):
        message = _ITEM_TRANSLATORS[type(item)](item, f"input[{index}]", serving, names)
        names.update((call.id, call.name) for call in message.tool_calls)
        messages.append(message)
    return tuple(_merge_assistant_turns(messages))


def _merge_assistant_turns(messages: list[Message]) -> list[Message]:
    """A reasoning item, an assistant message and its function calls arrive as separate items: one turn."""
    merged: list[Message] = []
    for message in messages:
        if merged and message.role == "assistant" and merged[-1].role == "assistant":
            last = merged[-1]
            reasoning = "".join(filter(None, (last.reasoning, message.reasoning))) or None
            message = Message("assistant", last.parts + message.parts, last.tool_calls + message.tool_calls,
                              reasoning=reasoning)
            merged[-1] = message
        else:
            merged.append(message)
    return merged


def _from_message(item: MessageItem, param: str, serving: ServingContext, names: dict[str, str]) -> Message:
    role = "system" if item.role == "developer" else item.role
    if isinstance(item.content, str):
        return Message(role, (TextPart(item.content),))
    parts = tuple(_part(part, item.role, f"{param}.content[{index}]", serving)
                  for index, part in enumerate(item.content))
    return Message(role, parts)


def _part(part: InputPart, role: str, param: str, serving: ServingContext) -> TextPart | ImagePart:
    if isinstance(part, (InputText, OutputText)):
        return TextPart(part.text)
    if isinstance(part, Refusal):
        return TextPart(part.refusal)
    if not serving.vision:
        raise UnsupportedFeatureError("this model has no vision projector; it cannot read images", param=param)
    if role != "user":
        raise InvalidRequestError("only user messages may carry images", param=param)
    if part.image_url is None:
        raise UnsupportedFeatureError("file_id images are not supported: send image_url (a data: URL)",
                                      param=f"{param}.file_id")
    detail = "high" if part.detail == "original" else part.detail
    return ImagePart(load_image(part.image_url, serving.image_policy, f"{param}.image_url", detail))


def _from_call(item: FunctionCallItem, param: str, serving: ServingContext, names: dict[str, str]) -> Message:
    _require_tools(serving, param)
    try:
        arguments = json.loads(item.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError("function call arguments must be a JSON object", param=f"{param}.arguments")
    return Message("assistant", tool_calls=(ToolCall(item.call_id, item.name, arguments),))


def _from_output(item: FunctionCallOutputItem, param: str, serving: ServingContext, names: dict[str, str]) -> Message:
    _require_tools(serving, param)
    if item.call_id not in names:
        raise InvalidRequestError(f"No tool call found for function call output with call_id {item.call_id}.",
                                  param=f"{param}.call_id")
    output = item.output if isinstance(item.output, str) else "".join(part.text for part in item.output)
    return Message("tool", (TextPart(output),), tool_call_id=item.call_id, name=names[item.call_id])


def _from_reasoning(item: ReasoningItem, param: str, serving: ServingContext, names: dict[str, str]) -> Message:
    texts = item.content if item.content is not None else item.summary
    return Message("assistant", reasoning="".join(text.text for text in texts) or None)


def _require_tools(serving: ServingContext, param: str) -> None:
    if not serving.chat_format.supports_tools:
        raise UnsupportedFeatureError("function calls and their outputs need a model with a tool-call format",
                                      param=param)


_ITEM_TRANSLATORS = {MessageItem: _from_message, FunctionCallItem: _from_call,
                     FunctionCallOutputItem: _from_output, ReasoningItem: _from_reasoning}


# -- the response and its stream -------------------------------------------------------------------

def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ResponseBuilder:
    """Turns engine events into Responses stream events; the last one carries the whole response.

    ``stream`` is the single path: the non-streaming route drains it and returns ``final``."""

    def __init__(self, model_id: str, wire: ResponsesRequest, conversation: tuple[Message, ...],
                 store: ResponseStore | None):
        self.id = _new_id("resp")
        self.created_at = int(time.time())
        self.model_id = model_id
        self.wire = wire
        self.conversation = conversation
        self.store = store
        self.output: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self._sequence = 0
        self._open: str | None = None  # "reasoning" or "message": the item taking deltas
        self._chunks: list[str] = []
        self._logprobs: list[dict[str, Any]] = []
        self._record = {"text": [], "reasoning": [], "calls": []}

    async def stream(self, events: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
        yield self._event("response.created", response=self._snapshot("in_progress"))
        yield self._event("response.in_progress", response=self._snapshot("in_progress"))
        async for event in events:
            for payload in self._on(event):
                yield payload

    async def response(self, events: AsyncIterator[Event]) -> dict[str, Any]:
        async for _ in self.stream(events):
            pass
        assert self.final is not None, "the engine always ends with a Finish event"
        return self.final

    def failed(self, error: EdgeError) -> list[dict[str, Any]]:
        """After streaming began: an error event, then response.failed."""
        snapshot = self._snapshot("failed")
        snapshot["error"] = {"code": "server_error", "message": error.message}
        return [self._event("error", code=error.code, message=error.message, param=error.param),
                self._event("response.failed", response=snapshot)]

    def _event(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _on(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return self._delta("message", event.text, event.logprobs)
        if isinstance(event, ReasoningDelta):
            return self._delta("reasoning", event.text)
        if isinstance(event, ToolCallDelta):
            return self._call(event)
        return self._finish(event)

    # items with text: a reasoning item or an assistant message, one content part each

    def _delta(self, kind: str, text: str, logprobs: tuple[TokenLogprob, ...] = ()) -> list[dict[str, Any]]:
        if not text and not (logprobs and self._open == kind):
            return []
        payloads = [] if self._open == kind else self._close() + self._open_item(kind)
        self._chunks.append(text)
        self._record["text" if kind == "message" else "reasoning"].append(text)
        fields = self._where()
        if kind == "message":
            entries = [logprob_json(entry) for entry in logprobs]
            self._logprobs.extend(entries)
            return payloads + [self._event("response.output_text.delta", **fields, delta=text, logprobs=entries)]
        return payloads + [self._event("response.reasoning_text.delta", **fields, delta=text)]

    def _open_item(self, kind: str) -> list[dict[str, Any]]:
        if kind == "message":
            item = {"id": _new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress",
                    "content": []}
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        else:
            item = {"id": _new_id("rs"), "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
            part = {"type": "reasoning_text", "text": ""}
        self.output.append(item)
        self._open, self._chunks, self._logprobs = kind, [], []
        added = self._event("response.output_item.added", output_index=len(self.output) - 1, item=copy.deepcopy(item))
        item["content"].append(part)
        return [added, self._event("response.content_part.added", **self._where(), part=dict(part))]

    def _close(self, status: str = "completed") -> list[dict[str, Any]]:
        if self._open is None:
            return []
        item, fields, text = self.output[-1], self._where(), "".join(self._chunks)
        part = item["content"][0]
        part["text"] = text
        item["status"] = status
        if self._open == "message":
            part["logprobs"] = self._logprobs
            done = self._event("response.output_text.done", **fields, text=text, logprobs=self._logprobs)
        else:
            done = self._event("response.reasoning_text.done", **fields, text=text)
        self._open = None
        return [done, self._event("response.content_part.done", **fields, part=copy.deepcopy(part)),
                self._event("response.output_item.done", output_index=fields["output_index"],
                            item=copy.deepcopy(item))]

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.output[-1]["id"], "output_index": len(self.output) - 1, "content_index": 0}

    def _call(self, call: ToolCallDelta) -> list[dict[str, Any]]:
        """A call max_tokens cut off is an ``incomplete`` item, its arguments as far as they were written."""
        payloads = self._close()
        item = {"id": _new_id("fc"), "type": "function_call", "call_id": call.id, "name": call.name,
                "arguments": "", "status": "in_progress"}
        self.output.append(item)
        index = len(self.output) - 1
        arguments = json.loads(call.arguments) if call.complete else partial_json_object(call.arguments)
        self._record["calls"].append(ToolCall(call.id, call.name, arguments))
        payloads.append(self._event("response.output_item.added", output_index=index, item=dict(item)))
        payloads.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                    output_index=index, delta=call.arguments))
        payloads.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                    output_index=index, arguments=call.arguments))
        item.update(arguments=call.arguments, status="completed" if call.complete else "incomplete")
        payloads.append(self._event("response.output_item.done", output_index=index, item=dict(item)))
        return payloads

    def _finish(self, finish: Finish) -> list[dict[str, Any]]:
        status, reason = STATUS[finish.reason]
        payloads = self._close("completed" if status == "completed" else "incomplete")
        self.final = self._snapshot(status, reason, finish)
        if self.store is not None:
            self.store.put(StoredResponse(self.final, self.conversation + (self._assistant_message(),)))
        return payloads + [self._event(f"response.{status}", response=self.final)]

    def _assistant_message(self) -> Message:
        text = "".join(self._record["text"])
        return Message("assistant", (TextPart(text),) if text else (), tuple(self._record["calls"]),
                       reasoning="".join(self._record["reasoning"]) or None)

    def _snapshot(self, status: str, incomplete: str | None = None, finish: Finish | None = None) -> dict[str, Any]:
        wire = self.wire
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": None, "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
            "instructions": wire.instructions, "max_output_tokens": wire.max_output_tokens,
            "model": self.model_id, "output": copy.deepcopy(self.output),
            "parallel_tool_calls": True if wire.parallel_tool_calls is None else wire.parallel_tool_calls,
            "previous_response_id": wire.previous_response_id,
            "reasoning": {"effort": wire.reasoning.effort if wire.reasoning else None, "summary": None},
            "store": self.store is not None,
            "temperature": DEFAULT_TEMPERATURE if wire.temperature is None else wire.temperature,
            "text": _text_json(wire.text),
            "tool_choice": _tool_choice_json(wire.tool_choice),
            "tools": [tool.model_dump() for tool in wire.tools or []],
            "top_logprobs": wire.top_logprobs,
            "top_p": DEFAULT_TOP_P if wire.top_p is None else wire.top_p,
            "truncation": wire.truncation or "disabled", "max_tool_calls": wire.max_tool_calls,
            "user": wire.user, "metadata": wire.metadata or {},
            "usage": usage_json(finish) if finish is not None else None,
        }


def _text_json(text: Optional[TextConfig]) -> dict[str, Any]:
    format_ = text.format if text is not None else None
    echoed: dict[str, Any] = {"format": format_.model_dump(by_alias=True, exclude_none=True) if format_
                              else {"type": "text"}}
    if text is not None and text.verbosity is not None:
        echoed["verbosity"] = text.verbosity
    return echoed


def _tool_choice_json(choice: Union[str, NamedFunction, None]) -> Union[str, dict[str, Any]]:
    if isinstance(choice, NamedFunction):
        return choice.model_dump()
    return choice or "auto"


def usage_json(finish: Finish) -> dict[str, Any]:
    usage = finish.usage
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens, "cache_write_tokens": 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens}
