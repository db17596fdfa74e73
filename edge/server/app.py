"""The Starlette application: routes, error handlers, auth, CORS, and the engine's lifespan.

Routes are thin: read the body, let the dialect's translator build a GenerationRequest, prepare it
(every validation error surfaces here, before the first byte), then stream or collect the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import Any, AsyncIterator, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.api import anthropic_messages, openai_chat, openai_responses
from edge.api.context import ServingContext
from edge.api.errors import error_json_for_path, openai_error_json
from edge.api.validation import validate_body
from edge.errors import (
    AuthenticationError, EdgeError, MethodNotAllowedError, ModelNotFoundError, NotFoundError,
)
from edge.runtime.engine import Engine
from edge.server.http import json_unless_disconnected, read_json, sse_response, sse_stream
from edge.server.ui import ui_routes
from edge.server.worker import GenerationWorker
from edge.settings import Settings

log = logging.getLogger("edge.server")
T = TypeVar("T")


def _worker(request: Request) -> GenerationWorker:
    return request.app.state.worker


def serving_context(request: Request) -> ServingContext:
    engine = _worker(request).engine
    return ServingContext(engine.chat_format, engine.model.n_vocab(), engine.vision is not None,
                          request.app.state.image_policy)


def _check_model(requested: str, engine: Engine) -> None:
    if requested != engine.info.id:
        raise ModelNotFoundError(
            f"The model '{requested}' does not exist; this server serves '{engine.info.id}' (see /v1/models)",
            param="model")


async def _read_wire(request: Request, wire_type: type[T]) -> tuple[GenerationWorker, T]:
    """The body within the size limit, validated as the dialect's request, for the served model."""
    worker = _worker(request)
    body = await read_json(request, request.app.state.settings.max_body_bytes)
    wire = validate_body(wire_type, body)
    _check_model(wire.model, worker.engine)
    return worker, wire


async def chat_completions(request: Request) -> Response:
    worker, chat = await _read_wire(request, openai_chat.ChatCompletionRequest)
    engine = worker.engine
    generation = await asyncio.to_thread(openai_chat.to_generation_request, chat, serving_context(request))
    prepared = await worker.prepare(generation)
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    builder = openai_chat.ChatResponseBuilder(engine.info.id, include_usage, chat.logprobs,
                                              legacy_functions=chat.functions is not None)
    events = worker.stream_choices(prepared, generation.n)
    if chat.stream:
        return sse_response(sse_stream(builder.chunks(events), lambda error: [openai_error_json(error)],
                                       named_events=False, trailer="data: [DONE]\n\n"))
    return await json_unless_disconnected(request, builder.completion(events))


async def responses(request: Request) -> Response:
    worker, wire = await _read_wire(request, openai_responses.ResponsesRequest)
    engine = worker.engine
    store: openai_responses.ResponseStore = request.app.state.responses
    previous = (store.get(wire.previous_response_id, param="previous_response_id").conversation
                if wire.previous_response_id else ())
    generation = await asyncio.to_thread(openai_responses.to_generation_request, wire, serving_context(request),
                                         previous)
    prepared = await worker.prepare(generation)
    builder = openai_responses.ResponseBuilder(engine.info.id, wire, openai_responses.conversation_of(wire, generation),
                                               None if wire.store is False else store)
    events = worker.stream(prepared)
    if wire.stream:
        return sse_response(sse_stream(builder.stream(events), builder.failed, named_events=True))
    return await json_unless_disconnected(request, builder.response(events))


async def get_response(request: Request) -> Response:
    return JSONResponse(request.app.state.responses.get(request.path_params["response_id"]).response)


async def messages(request: Request) -> Response:
    worker, wire = await _read_wire(request, anthropic_messages.MessagesRequest)
    engine = worker.engine
    generation = await asyncio.to_thread(anthropic_messages.to_generation_request, wire, serving_context(request))
    prepared = await worker.prepare(generation)
    builder = anthropic_messages.MessageBuilder(engine.info.id, len(prepared.tokens), wire.logprobs)
    events = worker.stream(prepared)
    if wire.stream:
        return sse_response(sse_stream(builder.stream(events), lambda error: [anthropic_messages.error_json(error)],
                                       named_events=True))
    return await json_unless_disconnected(request, builder.collect(events))


async def count_tokens(request: Request) -> Response:
    worker, wire = await _read_wire(request, anthropic_messages.CountTokensRequest)
    generation = await asyncio.to_thread(anthropic_messages.to_generation_request, wire, serving_context(request))
    prepared = await worker.prepare(generation)
    prepared.close()
    return JSONResponse({"input_tokens": len(prepared.tokens)})


def _model_json(engine: Engine) -> dict[str, Any]:
    return {"id": engine.info.id, "object": "model", "created": engine.info.created, "owned_by": "edge",
            "capabilities": _capabilities(engine)}


def _capabilities(engine: Engine) -> dict[str, Any]:
    """What the model can do, so that a client (the page at /) offers only what will work (extension)."""
    chat_format = engine.chat_format
    return {"vision": engine.vision is not None, "tools": chat_format.supports_tools,
            "thinking": chat_format.supports_thinking, "context_size": engine.info.n_ctx}


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [_model_json(_worker(request).engine)]})


async def get_model(request: Request) -> Response:
    engine = _worker(request).engine
    _check_model(request.path_params["model_id"], engine)
    return JSONResponse(_model_json(engine))


async def health(request: Request) -> Response:
    info = _worker(request).engine.info
    return JSONResponse({"status": "ok", "model": info.id, "n_ctx": info.n_ctx})


# -- errors ------------------------------------------------------------------------------------

async def _edge_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, EdgeError)
    if error.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error.message)
    return JSONResponse(error_json_for_path(request.url.path, error), status_code=error.status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        mapped: EdgeError = NotFoundError(f"no route {request.method} {request.url.path}")
    elif error.status_code == 405:
        mapped = MethodNotAllowedError(f"{request.method} is not allowed on {request.url.path}")
    else:
        mapped = EdgeError(str(error.detail))
        mapped.status = error.status_code
    return await _edge_error(request, mapped)


async def _unexpected_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_json_for_path(request.url.path, EdgeError("internal server error")), status_code=500)


# -- middleware --------------------------------------------------------------------------------

class ApiKeyMiddleware:
    """With an API key configured, /v1/* needs ``Authorization: Bearer KEY`` or ``x-api-key: KEY``."""

    def __init__(self, app: ASGIApp, api_key: str):
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/") or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        error = AuthenticationError("missing or invalid API key")
        response = JSONResponse(error_json_for_path(scope["path"], error), status_code=error.status)
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        bearer = headers.get(b"authorization", b"")
        presented = bearer[7:] if bearer.lower().startswith(b"bearer ") else headers.get(b"x-api-key", b"")
        return hmac.compare_digest(presented, self.api_key)


def _middleware(settings: Settings) -> list[Middleware]:
    middleware = []
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"]))
    if settings.api_key:
        middleware.append(Middleware(ApiKeyMiddleware, api_key=settings.api_key))
    return middleware


# -- the app -----------------------------------------------------------------------------------

ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/responses", responses, methods=["POST"]),
    Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]


def create_app(settings: Settings, engine: Engine) -> Starlette:
    """The engine is loaded before the server starts, so a bad model fails fast with a clear message;
    the lifespan owns it from then on and frees it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.worker = GenerationWorker(engine)
        log.info("serving model %r (%s, context %d tokens)", engine.info.id, engine.info.origin, engine.info.n_ctx)
        try:
            yield
        finally:
            app.state.worker.close()
            engine.close()

    routes = ROUTES + ui_routes(api_key_required=bool(settings.api_key)) if settings.ui else ROUTES
    app = Starlette(routes=routes, middleware=_middleware(settings), lifespan=lifespan,
                    exception_handlers={EdgeError: _edge_error, HTTPException: _http_error,
                                        Exception: _unexpected_error})
    app.state.settings = settings
    app.state.image_policy = settings.image_policy()
    app.state.responses = openai_responses.ResponseStore()
    return app
