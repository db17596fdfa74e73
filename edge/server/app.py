"""The Starlette application: routes, error handlers, middleware, and the engine's lifespan.

Routes are thin: admit the request (or refuse it before any work), read the body, let the dialect's
translator build a GenerationRequest, prepare it (every validation error surfaces here, before the
first byte), then stream or collect the events. Every route answers with and without ``/v1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any, AsyncIterator, Callable, TypeVar

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.api import anthropic_messages, openai_chat, openai_responses
from edge.api.context import ServingContext
from edge.api.errors import (
    error_headers, error_json_for_path, openai_error_json, anthropic_error_json, status_for_path, unversioned,
)
from edge.api.validation import validate_body
from edge.core.request import GenerationRequest
from edge.errors import AuthenticationError, EdgeError, EngineError, MethodNotAllowedError, NotFoundError
from edge.runtime.engine import Engine, PreparedPrompt
from edge.server import metering
from edge.server.access import RequestRecord, request_id_from, request_id_var, write_access_line
from edge.server.http import json_unless_disconnected, read_json, sse_response, sse_stream
from edge.server.lifecycle import Admission, Call, as_invalid_request, check_prompt_fits, max_token_chars
from edge.server.metrics import CONTENT_TYPE, Metrics
from edge.server.models import ServedModels
from edge.server.openapi import openapi_document
from edge.server.ui import ui_routes
from edge.server.worker import GenerationWorker
from edge.settings import Settings

log = logging.getLogger("edge.server")
T = TypeVar("T")

OPEN_PATHS = frozenset({"/health", "/metrics", "/openapi.json"})  # answered without a key


def _needs_no_key(path: str) -> bool:
    """The chat page and its assets hold no secret; the page asks for the key before its first API call."""
    return path in OPEN_PATHS or path == "/" or path.startswith("/ui/")


def _record(request: Request) -> RequestRecord:
    return request.scope["edge.record"]


def _state(request: Request) -> Any:
    return request.app.state


def serving_context(request: Request) -> ServingContext:
    engine = _state(request).worker.engine
    return ServingContext(engine.chat_format, engine.model.n_vocab(), engine.vision is not None,
                          _state(request).image_policy)


class _Generation:
    """The steps every generation route takes, in order; each refuses what it must, typed."""

    def __init__(self, request: Request, admit: bool = True):
        state = _state(request)
        self.request = request
        self.state = state
        self.worker: GenerationWorker = state.worker
        self.call = Call(state.admission, _record(request), state.settings.request_timeout)
        if admit:
            state.admission.admit(self.call)
            _record(request).admitted = True
            request.scope["edge.call"] = self.call

    async def read(self, wire_type: type[T]) -> tuple[T, str]:
        """The body within the size and time limits, validated, and the model id to report."""
        settings = self.state.settings
        body = await self.call.run(read_json(self.request, settings.max_body_bytes, settings.body_timeout))
        try:
            wire = validate_body(wire_type, body)
        except EdgeError:
            raise
        except Exception as error:  # noqa: BLE001 - a validator that raised untyped: still the body's fault
            raise as_invalid_request(error, f"validating {wire_type.__name__}") from None
        return wire, self.state.models.resolve(getattr(wire, "model", None))

    async def translate(self, translator: Callable[..., GenerationRequest], *args: Any) -> GenerationRequest:
        try:
            return await self.call.run(asyncio.to_thread(translator, *args))
        except EdgeError:
            raise
        except Exception as error:  # noqa: BLE001 - the catch-all: anything a translator raises is a 400
            raise as_invalid_request(error, getattr(translator, "__module__", "translator")) from None

    async def prepare(self, generation: GenerationRequest) -> PreparedPrompt:
        """The cheap character bound first, then tokenizing (and grammar compiling) in a thread."""
        check_prompt_fits(generation, self.worker.engine.info.n_ctx, self.state.max_token_chars)
        try:
            return await self.call.run(self.worker.prepare(generation), on_abandon=PreparedPrompt.close)
        except EdgeError:
            raise
        except Exception as error:  # noqa: BLE001 - prepare is a pure function of the request
            raise as_invalid_request(error, "preparing the prompt") from None

    def events(self, prepared: PreparedPrompt) -> AsyncIterator[Any]:
        return self.call.events(self.worker.stream(prepared))

    def choice_events(self, prepared: PreparedPrompt, choices: int) -> AsyncIterator[Any]:
        """(choice, event) pairs of ``choices`` sequences sharing the prompt (chat's ``n``)."""
        return self.call.events(self.worker.stream_choices(prepared, choices))

    def stream(self, payloads: AsyncIterator[dict[str, Any]], on_error: Callable[[EdgeError], list[dict[str, Any]]],
               *, named_events: bool, trailer: str = "") -> Response:
        record = _record(self.request)

        def recorded(error: EdgeError) -> list[dict[str, Any]]:
            record.error = error.code or error.error_type
            return on_error(error)

        return sse_response(sse_stream(payloads, recorded, named_events=named_events, trailer=trailer))

    async def collect(self, awaitable: Any) -> Response:
        return await json_unless_disconnected(self.request, awaitable)


async def chat_completions(request: Request) -> Response:
    generation = _Generation(request)
    chat, model_id = await generation.read(openai_chat.ChatCompletionRequest)
    internal = await generation.translate(openai_chat.to_generation_request, chat, serving_context(request))
    prepared = await generation.prepare(internal)
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    builder = openai_chat.ChatResponseBuilder(model_id, include_usage, chat.logprobs,
                                              legacy_functions=chat.functions is not None)
    events = generation.choice_events(prepared, internal.n)
    if chat.stream:
        return generation.stream(builder.chunks(events), lambda error: [openai_error_json(error)],
                                 named_events=False, trailer="data: [DONE]\n\n")
    return await generation.collect(builder.completion(events))


async def responses(request: Request) -> Response:
    generation = _Generation(request)
    wire, model_id = await generation.read(openai_responses.ResponsesRequest)
    store: openai_responses.ResponseStore = _state(request).responses
    previous = (store.get(wire.previous_response_id, param="previous_response_id").conversation
                if wire.previous_response_id else ())
    internal = await generation.translate(openai_responses.to_generation_request, wire, serving_context(request),
                                          previous)
    prepared = await generation.prepare(internal)
    builder = openai_responses.ResponseBuilder(model_id, wire, openai_responses.conversation_of(wire, internal),
                                               None if wire.store is False else store)
    events = generation.events(prepared)
    if wire.stream:
        return generation.stream(builder.stream(events), builder.failed, named_events=True)
    return await generation.collect(builder.response(events))


async def get_response(request: Request) -> Response:
    return JSONResponse(_state(request).responses.get(request.path_params["response_id"]).response)


async def messages(request: Request) -> Response:
    generation = _Generation(request)
    wire, model_id = await generation.read(anthropic_messages.MessagesRequest)
    internal = await generation.translate(anthropic_messages.to_generation_request, wire, serving_context(request))
    prepared = await generation.prepare(internal)
    builder = anthropic_messages.MessageBuilder(model_id, len(prepared.tokens), wire.logprobs)
    events = generation.events(prepared)
    if wire.stream:
        return generation.stream(builder.stream(events), lambda error: [anthropic_error_json(error)],
                                 named_events=True)
    return await generation.collect(builder.collect(events))


async def count_tokens(request: Request) -> Response:
    generation = _Generation(request, admit=False)  # tokenizing only: it takes no generation slot
    wire, _ = await generation.read(anthropic_messages.CountTokensRequest)
    internal = await generation.translate(anthropic_messages.to_generation_request, wire, serving_context(request))
    prepared = await generation.prepare(internal)
    prepared.close()
    return JSONResponse({"input_tokens": len(prepared.tokens)})


def _model_json(model_id: str, engine: Engine) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": engine.info.created, "owned_by": "edge",
            "capabilities": _capabilities(engine)}


def _capabilities(engine: Engine) -> dict[str, Any]:
    """What the model can do, so that a client (the page at /) offers only what will work (extension)."""
    chat_format = engine.chat_format
    return {"vision": engine.vision is not None, "tools": chat_format.supports_tools,
            "thinking": chat_format.supports_thinking, "context_size": engine.info.n_ctx}


async def list_models(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"object": "list",
                         "data": [_model_json(model_id, state.worker.engine) for model_id in state.models.ids]})


async def get_model(request: Request) -> Response:
    state = _state(request)
    requested = request.path_params["model_id"]
    state.models.resolve(requested)
    return JSONResponse(_model_json(requested, state.worker.engine))


async def health(request: Request) -> Response:
    """Open to everyone, so it says nothing but that the server is up and its model loaded."""
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.exposition(), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    return JSONResponse(_state(request).openapi)


# -- errors ------------------------------------------------------------------------------------

def error_response(path: str, error: EdgeError) -> JSONResponse:
    return JSONResponse(error_json_for_path(path, error), status_code=status_for_path(path, error),
                        headers=error_headers(error))


async def _edge_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, EdgeError)
    if error.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error.message)
    if "edge.record" in request.scope:
        _record(request).error = error.code or error.error_type
    response = error_response(request.url.path, error)
    if error.status == 408:  # the rest of a half-sent body must not be read as the next request
        response.headers["Connection"] = "close"
    return response


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


# -- middleware --------------------------------------------------------------------------------

class RequestContextMiddleware:
    """Outermost: the request id, the access line, the request counters, the end of admission, and the
    last line of defence. An exception that escapes everything else becomes a 500 in the dialect's shape
    and is not re-raised, so the server never drops the client's keep-alive connection over it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        record = RequestRecord(request_id_from(dict(scope["headers"])), scope["method"], path, route_label(path))
        scope["edge.record"] = record
        token = request_id_var.set(record.request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", record.request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - the last line of defence, see the class docstring
            log.exception("unhandled error on %s %s", scope["method"], path)
            if record.status is None:
                record.error = "internal_error"
                await error_response(path, EngineError("internal server error"))(scope, receive, send_with_id)
        finally:
            try:
                scope["app"].state.finish_request(scope, record)
            except Exception:  # noqa: BLE001 - counting must never break serving
                log.exception("recording the end of %s %s failed", scope["method"], path)
            request_id_var.reset(token)


class ApiKeyMiddleware:
    """With API keys configured, every route but the open ones needs ``Authorization: Bearer KEY`` or
    ``x-api-key: KEY``; the key's name is recorded (metrics and the ledger never see the key)."""

    def __init__(self, app: ASGIApp, keys: Callable[[], metering.ApiKeys]):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.keys()
        if scope["type"] != "http" or _needs_no_key(scope["path"]) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        record: RequestRecord = scope["edge.record"]
        if not keys:
            record.key = metering.ANONYMOUS
            await self.app(scope, receive, send)
            return
        record.key = keys.name_for(_presented_key(scope))
        if record.key is not None:
            await self.app(scope, receive, send)
            return
        error = AuthenticationError("missing or invalid API key")
        record.error = error.code
        await error_response(scope["path"], error)(scope, receive, send)


def _presented_key(scope: Scope) -> bytes:
    headers = dict(scope["headers"])
    bearer = headers.get(b"authorization", b"")
    return bearer[7:] if bearer.lower().startswith(b"bearer ") else headers.get(b"x-api-key", b"")


def _middleware(settings: Settings, keys: Callable[[], metering.ApiKeys]) -> list[Middleware]:
    middleware = [Middleware(RequestContextMiddleware)]
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                                     expose_headers=["x-request-id", "retry-after"]))
    middleware.append(Middleware(ApiKeyMiddleware, keys=keys))
    return middleware


# -- the app -----------------------------------------------------------------------------------

API_ROUTES = [
    ("/chat/completions", chat_completions, ["POST"]),
    ("/responses", responses, ["POST"]),
    ("/responses/{response_id}", get_response, ["GET"]),
    ("/messages", messages, ["POST"]),
    ("/messages/count_tokens", count_tokens, ["POST"]),
    ("/models", list_models, ["GET"]),
    ("/models/{model_id:path}", get_model, ["GET"]),
]
ROUTES = [
    *(Route(prefix + path, endpoint, methods=methods) for prefix in ("/v1", "") for path, endpoint, methods in API_ROUTES),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
_EXACT_ROUTES = frozenset(path for path, _, _ in API_ROUTES if "{" not in path)


def route_label(path: str) -> str:
    """The route a path belongs to, in its ``/v1`` form; never the raw path (bounded label values)."""
    if path in OPEN_PATHS:
        return path
    bare = unversioned(path)
    if bare in _EXACT_ROUTES:
        return "/v1" + bare
    if bare.startswith("/models/"):
        return "/v1/models/{model_id}"
    if bare.startswith("/responses/") and bare.count("/") == 2:
        return "/v1/responses/{response_id}"
    return "other"


class ServerState:
    """What the middleware does at the end of every request: release, count, meter, log."""

    def __init__(self, app: Starlette):
        self.app = app

    def __call__(self, scope: Scope, record: RequestRecord) -> None:
        state = self.app.state
        call = scope.get("edge.call")
        if call is not None:
            state.admission.release(call)
        _count(state.metrics, record)
        if record.succeeded and record.key is not None:
            state.metrics.key_messages.labels(record.key).inc()
            state.metrics.key_prompt_tokens.labels(record.key).inc(record.usage.prompt_tokens)
            state.metrics.key_completion_tokens.labels(record.key).inc(record.usage.completion_tokens)
            state.ledger.record(record.key, record.usage.prompt_tokens, record.usage.completion_tokens)
        write_access_line(record)


def _count(metrics: Metrics, record: RequestRecord) -> None:
    metrics.requests.labels(record.route, str(record.status or 0)).inc()
    if record.error:
        metrics.errors.labels(record.error).inc()
    if record.first_event is not None:
        metrics.ttft.labels(record.route).observe(record.first_event - record.started)
    usage = record.usage
    if usage is None:
        return
    metrics.prompt_tokens.labels(record.route).inc(usage.prompt_tokens)
    metrics.cached_tokens.labels(record.route).inc(usage.cached_prompt_tokens)
    metrics.completion_tokens.labels(record.route).inc(usage.completion_tokens)
    decode_seconds = record.timings.get("decode_ms", 0.0) / 1000
    if usage.completion_tokens > 1 and decode_seconds > 0:
        metrics.itl.labels(record.route).observe(decode_seconds / (usage.completion_tokens - 1))


def create_app(settings: Settings, engine: Engine, keys: metering.ApiKeys | None = None) -> Starlette:
    """The engine is loaded before the server starts, so a bad model fails fast with a clear message;
    the lifespan owns it from then on and frees it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker = GenerationWorker(engine)
        app.state.worker = worker
        app.state.admission = Admission(worker, settings.max_queue, settings.shutdown_grace)
        app.state.metrics = Metrics(lambda: app.state.admission.queue_depth, lambda: worker.running,
                                    lambda: worker.cache_ram_bytes)
        app.state.max_token_chars = await asyncio.to_thread(max_token_chars, lambda: _token_pieces(engine))
        reload_keys = _watch_keys_file(app, settings)
        log.info("serving model %s (%s, context %d tokens)", ", ".join(map(repr, app.state.models.ids)),
                 engine.info.origin, engine.info.n_ctx)
        try:
            yield
        finally:
            reload_keys()
            app.state.ledger.close()
            await _close_engine(worker, engine)

    keys = keys if keys is not None else metering.load_keys(settings.api_key, settings.api_key_file)
    routes = ROUTES + ui_routes(api_key_required=bool(keys)) if settings.ui else ROUTES
    app = Starlette(routes=routes, middleware=_middleware(settings, lambda: app.state.keys), lifespan=lifespan,
                    exception_handlers={EdgeError: _edge_error, HTTPException: _http_error})
    app.state.settings = settings
    app.state.keys = keys
    app.state.models = ServedModels.build(engine.info.path.stem, settings.model_alias, engine.info.metadata,
                                          settings.any_model)
    app.state.image_policy = settings.image_policy()
    app.state.responses = openai_responses.ResponseStore()
    app.state.ledger = metering.Ledger(settings.cache_dir / metering.LEDGER_NAME)
    app.state.openapi = openapi_document(app.state.models.primary)
    app.state.finish_request = ServerState(app)
    return app


ENGINE_CLOSE_SECONDS = 1.0


async def _close_engine(worker: GenerationWorker, engine: Engine) -> None:
    """Every generation was stopped by now, but a thread inside one long llama_decode (a big prompt's
    batch) sees its cancel flag only afterwards. Shutdown does not wait for it: the process exits and
    the OS frees the model, instead of freeing it under the thread's feet."""
    closing = asyncio.ensure_future(asyncio.to_thread(worker.close))
    done, _ = await asyncio.wait({closing}, timeout=ENGINE_CLOSE_SECONDS)
    if done:
        engine.close()
        return
    log.warning("the generation thread is still inside llama.cpp; exiting without waiting for it")
    logging.shutdown()
    os._exit(0)


def _token_pieces(engine: Engine) -> list[bytes]:
    from edge.runtime import llama

    return [llama.token_piece(engine.model, token, special=True) for token in range(engine.model.n_vocab())]


def _watch_keys_file(app: Starlette, settings: Settings) -> Callable[[], None]:
    """SIGHUP re-reads the keys file; a file that no longer parses keeps the keys in force. Returns
    the function that stops watching."""
    if settings.api_key_file is None:
        return lambda: None

    def reload() -> None:
        try:
            app.state.keys = metering.load_keys(settings.api_key, settings.api_key_file)
        except metering.KeysFileError as error:
            log.error("SIGHUP: keys not reloaded, the previous keys stay in force: %s", error)
            return
        log.info("SIGHUP: %d API key(s) loaded from %s", len(app.state.keys.keys), settings.api_key_file)

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP here
        log.warning("SIGHUP cannot be watched here; the keys file is read once")
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGHUP)
