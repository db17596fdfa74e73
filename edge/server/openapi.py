"""``/openapi.json``: every route, its request schema (emitted by pydantic from the wire models the
server validates with, so the document cannot drift from what is accepted) and its response schemas.

The response models below describe what the dialects' builders emit; the fuzz test validates every
2xx answer against them.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from edge import __version__
from edge.api import anthropic_messages, openai_chat, openai_responses


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class OpenAIErrorDetail(_Out):
    message: str
    type: str
    param: Optional[str]
    code: Optional[str]


class OpenAIError(_Out):
    error: OpenAIErrorDetail


class AnthropicErrorDetail(_Out):
    type: str
    message: str


class AnthropicError(_Out):
    type: Literal["error"]
    error: AnthropicErrorDetail


class ChatToolCall(_Out):
    id: str
    type: Literal["function"]
    function: dict[str, str]


class ChatMessageOut(_Out):
    role: Literal["assistant"]
    content: Optional[str]
    reasoning_content: Optional[str] = None
    tool_calls: Optional[list[ChatToolCall]] = None


class ChatChoice(_Out):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: Optional[dict[str, Any]]


class ChatUsage(_Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Out):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage


class ResponseUsage(_Out):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ResponseObject(_Out):
    id: str
    object: Literal["response"]
    created_at: Union[int, float]
    model: str
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    output: list[dict[str, Any]]
    usage: Optional[ResponseUsage]


class MessageUsage(_Out):
    input_tokens: int
    output_tokens: int


class MessageObject(_Out):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: Optional[Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]]
    stop_sequence: Optional[str]
    usage: MessageUsage


class TokenCount(_Out):
    input_tokens: int


class ModelObject(_Out):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Out):
    object: Literal["list"]
    data: list[ModelObject]


class Health(_Out):
    status: Literal["ok"]


_OPENAI_ERRORS = {"400": "invalid request", "401": "missing or wrong API key", "404": "unknown model or id",
                  "408": "the body did not arrive in time", "413": "body over --max-body-bytes",
                  "429": "every slot and the queue are busy (Retry-After)", "500": "the engine failed",
                  "503": "the server is shutting down", "504": "the request ran past --request-timeout"}
_ANTHROPIC_ERRORS = {**{status: text for status, text in _OPENAI_ERRORS.items() if status != "429"},
                     "529": "every slot and the queue are busy (Retry-After)"}


def _errors(anthropic: bool) -> dict[str, Any]:
    schema = "AnthropicError" if anthropic else "OpenAIError"
    table = _ANTHROPIC_ERRORS if anthropic else _OPENAI_ERRORS
    return {status: {"description": text, "content": {"application/json": {"schema": _ref(schema)}}}
            for status, text in table.items()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{_component_names().get(name, name)}"}


def _component_names() -> dict[str, str]:
    return _schemas()[1]


def _json_and_events(schema: str) -> dict[str, Any]:
    return {"200": {"description": "the answer; with \"stream\": true, server-sent events",
                    "content": {"application/json": {"schema": _ref(schema)},
                                "text/event-stream": {"schema": {"type": "string"}}}}}


def _json(schema: str, description: str = "the answer") -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}}


def _post(summary: str, request: type[BaseModel], responses: dict[str, Any], anthropic: bool = False) -> dict[str, Any]:
    return {"post": {"summary": summary, "operationId": summary.replace(" ", "_"),
                     "requestBody": {"required": True,
                                     "content": {"application/json": {"schema": _ref(request.__name__)}}},
                     "responses": {**responses, **_errors(anthropic)}}}


def _get(summary: str, responses: dict[str, Any], parameter: str | None = None, open_route: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "operationId": summary.replace(" ", "_"),
                                 "responses": {**responses, **({} if open_route else _errors(False))}}
    if parameter:
        operation["parameters"] = [{"name": parameter, "in": "path", "required": True, "schema": {"type": "string"}}]
    if open_route:
        operation["security"] = []
    return {"get": operation}


REQUEST_MODELS = (openai_chat.ChatCompletionRequest, openai_responses.ResponsesRequest,
                  anthropic_messages.MessagesRequest, anthropic_messages.CountTokensRequest)
RESPONSE_MODELS = (OpenAIError, AnthropicError, ChatCompletion, ResponseObject, MessageObject, TokenCount,
                   ModelObject, ModelList, Health)


@functools.cache
def _schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """All schemas in one pass, so two wire types of the same name (chat's and Responses'
    ``StreamOptions``) get distinct component names; returns them and each model's component name."""
    models = (*REQUEST_MODELS, *RESPONSE_MODELS)
    refs, document = models_json_schema([(model, "validation") for model in models],
                                         ref_template="#/components/schemas/{model}")
    names = {model.__name__: refs[(model, "validation")]["$ref"].rsplit("/", 1)[1] for model in models}
    return document.get("$defs", {}), names


def _paths() -> dict[str, Any]:
    return {
        "/v1/chat/completions": _post("create chat completion", openai_chat.ChatCompletionRequest,
                                      _json_and_events("ChatCompletion")),
        "/v1/responses": _post("create response", openai_responses.ResponsesRequest, _json_and_events("ResponseObject")),
        "/v1/responses/{response_id}": _get("get response", _json("ResponseObject"), "response_id"),
        "/v1/messages": _post("create message", anthropic_messages.MessagesRequest, _json_and_events("MessageObject"),
                              anthropic=True),
        "/v1/messages/count_tokens": _post("count tokens", anthropic_messages.CountTokensRequest, _json("TokenCount"),
                                           anthropic=True),
        "/v1/models": _get("list models", _json("ModelList")),
        "/v1/models/{model_id}": _get("get model", _json("ModelObject"), "model_id"),
        "/health": _get("health", _json("Health", "the server is up and its model loaded"), open_route=True),
        "/metrics": _get("metrics", {"200": {"description": "Prometheus text format",
                                             "content": {"text/plain": {"schema": {"type": "string"}}}}},
                         open_route=True),
    }


def openapi_document(model_id: str) -> dict[str, Any]:
    """Every route is also served without the ``/v1`` prefix; the document lists the ``/v1`` forms."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "edge", "version": __version__,
                 "description": f"Gemma on the device over the OpenAI and Anthropic APIs; serving {model_id}."},
        "paths": _paths(),
        "components": {"schemas": copy.deepcopy(_schemas()[0]),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
        "security": [{"bearer": []}, {"x-api-key": []}, {}],
    }
