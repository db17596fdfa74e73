"""Which error body a failed request gets: each dialect formats the same typed ``EdgeError`` its own way.

The dialect is chosen by path, so a request that fails before its body is read (auth, size, routing)
still gets the shape its SDK parses."""

from __future__ import annotations

from typing import Any

from edge.api import anthropic_messages, openai_chat
from edge.errors import EdgeError

ANTHROPIC_PREFIX = "/v1/messages"


def openai_error_json(error: EdgeError) -> dict[str, Any]:
    return openai_chat.error_body(error.error_type, error.message, error.param, error.code)


def error_json_for_path(path: str, error: EdgeError) -> dict[str, Any]:
    if path == ANTHROPIC_PREFIX or path.startswith(ANTHROPIC_PREFIX + "/"):
        return anthropic_messages.error_json(error)
    return openai_error_json(error)
