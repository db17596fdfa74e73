"""Request bodies and SSE framing, shared by every route."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from edge.api.validation import parse_json_body
from edge.errors import EdgeError, EngineError, PayloadTooLargeError, RequestTimeoutError

log = logging.getLogger("edge.server")

DISCONNECT_POLL_SECONDS = 0.5
CLIENT_CLOSED_REQUEST = 499  # nobody reads it: the status nginx logs for this case
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGoneError(EdgeError):
    status = CLIENT_CLOSED_REQUEST
    error_type = "client_closed_request"


async def read_json(request: Request, limit: int, timeout: float) -> Any:
    """The body as JSON, refusing more than ``limit`` bytes before reading them all, and a body that
    takes more than ``timeout`` seconds to arrive (a trickling client holds a connection and a slot)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the request body is {declared} bytes; the limit is {limit} bytes")
    try:
        raw = await asyncio.wait_for(_read_body(request, limit), timeout) if timeout > 0 else \
            await _read_body(request, limit)
    except asyncio.TimeoutError:
        raise RequestTimeoutError(f"the request body did not arrive within {timeout:g} s") from None
    except ClientDisconnect:
        raise ClientGoneError("the client went away while sending its request") from None
    return parse_json_body(raw)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLargeError(f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_unless_disconnected(request: Request, awaitable: Awaitable[Any]) -> Response:
    """A non-streaming result as JSON; if the client goes away first, its generation is cancelled."""
    task = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
        if done:
            return JSONResponse(task.result())
        if await request.is_disconnected():
            task.cancel()
            log.info("client went away before its answer; generation cancelled")
            return Response(status_code=CLIENT_CLOSED_REQUEST)


def sse_data(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def sse_response(frames: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


async def sse_stream(payloads: AsyncIterator[dict[str, Any]],
                     on_error: Callable[[EdgeError], list[dict[str, Any]]], *,
                     named_events: bool, trailer: str = "") -> AsyncIterator[str]:
    """SSE frames for one dialect. A failure after the first byte cannot change the status any more, so
    it goes out as the dialect's error frames. ``named_events`` writes ``event: <type>`` lines
    (Responses, Messages); OpenAI chat ends with the ``data: [DONE]`` trailer."""

    def frame(payload: dict[str, Any]) -> str:
        return f"event: {payload['type']}\n{sse_data(payload)}" if named_events else sse_data(payload)

    try:
        async for payload in payloads:
            yield frame(payload)
    except (asyncio.CancelledError, GeneratorExit):
        # the client closed the stream (a Stop button, a dropped connection): closing `payloads` on the
        # way out sets the generation's cancel flag, so it ends before its next token
        log.info("client closed the stream; generation cancelled")
        raise
    except Exception as error:  # noqa: BLE001 - headers are sent; the client gets error frames
        if not isinstance(error, EdgeError):
            log.exception("generation failed after streaming began")
            error = EngineError(f"generation failed: {type(error).__name__}")
        for payload in on_error(error):
            yield frame(payload)
    if trailer:
        yield trailer
