"""Which error body a failed request gets: each dialect formats the same typed ``EdgeError`` its own way.

The dialect is chosen by path, so a request that fails before its body is read (auth, size, routing,
overload) still gets the shape its SDK parses. Every route answers with and without the ``/v1`` prefix.
"""

from __future__ import annotations

from typing import Any

from edge.api import anthropic_messages, openai_chat
from edge.errors import EdgeError

ANTHROPIC_ROUTE = "/messages"
VERSION_PREFIX = "/v1"


def unversioned(path: str) -> str:
    """``/v1/chat/completions`` and ``/chat/completions`` are the same route."""
    if path == VERSION_PREFIX or path.startswith(VERSION_PREFIX + "/"):
        return path[len(VERSION_PREFIX):] or "/"
    return path


def is_anthropic_path(path: str) -> bool:
    path = unversioned(path)
    return path == ANTHROPIC_ROUTE or path.startswith(ANTHROPIC_ROUTE + "/")


def openai_error_json(error: EdgeError) -> dict[str, Any]:
    return openai_chat.error_body(error.error_type, error.message, error.param, error.code)


def anthropic_error_json(error: EdgeError) -> dict[str, Any]:
    body = anthropic_messages.error_json(error)
    if error.anthropic_type:
        body["error"]["type"] = error.anthropic_type
    return body


def error_json_for_path(path: str, error: EdgeError) -> dict[str, Any]:
    return anthropic_error_json(error) if is_anthropic_path(path) else openai_error_json(error)


def status_for_path(path: str, error: EdgeError) -> int:
    if is_anthropic_path(path) and error.anthropic_status:
        return error.anthropic_status
    return error.status


def error_headers(error: EdgeError) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
