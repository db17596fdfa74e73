"""Shared by every dialect's protocol models: strict parsing that names the offending parameter."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edge.errors import InvalidRequestError

Model = TypeVar("Model", bound=BaseModel)

# pydantic puts union-branch labels ("str", "list[...]", class names) into error locations;
# they mean nothing to a client, whose parameter path is made of field names and indexes only.
_BRANCH_LABEL = re.compile(r"^(str|int|float|bool|none|list\[.*|dict\[.*|tagged-union\[.*|function-.*|[A-Z]\w*)$")


class WireModel(BaseModel):
    """Unknown fields are rejected, not ignored: a misspelled parameter must not silently do nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)


def parse_json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None


def validate_body(model: type[Model], body: Any) -> Model:
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _as_invalid_request(exc) from None


def _as_invalid_request(exc: ValidationError) -> InvalidRequestError:
    errors = sorted(exc.errors(include_url=False), key=lambda error: -len(_client_path(error["loc"])))
    error = errors[0]
    param = param_path(error["loc"])
    if error["type"] == "extra_forbidden":
        return InvalidRequestError(f"Unrecognized request argument supplied: {param}", param=param)
    if error["type"] == "missing":
        return InvalidRequestError(f"Missing required parameter: '{param}'", param=param)
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return InvalidRequestError(f"Invalid value for '{param}': {message}", param=param)


def _client_path(loc: tuple[Any, ...]) -> list[Any]:
    return [part for part in loc if isinstance(part, int) or not _BRANCH_LABEL.match(str(part))]


def param_path(loc: tuple[Any, ...]) -> str:
    """("messages", 0, "content") -> "messages[0].content"."""
    path = ""
    for part in _client_path(loc):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"
