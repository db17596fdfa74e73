"""Shared by every dialect's protocol models: strict parsing that names the offending parameter."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

from edge.errors import InvalidRequestError

Model = TypeVar("Model", bound=BaseModel)

# pydantic puts union-branch labels ("str", "list[...]", class names) into error locations;
# they mean nothing to a client, whose parameter path is made of field names and indexes only.
_BRANCH_LABEL = re.compile(r"^(str|int|float|bool|none|list\[.*|dict\[.*|tagged-union\[.*|function-.*|[A-Z]\w*)$")


class WireModel(BaseModel):
    """Unknown fields are rejected, not ignored: a misspelled parameter must not silently do nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)


def tagged_union(members: dict[str, type[BaseModel]], default: str | None = None) -> Any:
    """A union chosen by the ``type`` field (``default`` when it is absent), so a bad member is reported
    from the member the client meant, not from whichever branch pydantic tried last. The tags are class
    names, which ``param_path`` leaves out of the parameter path."""
    kinds = ", ".join(repr(kind) for kind in members)

    def pick(value: Any) -> str | None:
        kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
        model = members.get(kind) if isinstance(kind, str) else None
        return model.__name__ if model is not None else None

    branches = tuple(Annotated[model, Tag(model.__name__)] for model in dict.fromkeys(members.values()))
    return Annotated[Union[branches], Discriminator(pick, custom_error_type="invalid_type",
                                                    custom_error_message=f"type must be one of {kinds}")]


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
