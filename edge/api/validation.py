"""Shared by every dialect's protocol models: strict parsing that names the offending parameter."""

from __future__ import annotations

import json
import math
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


# Request parsing limits. None of them refuses a request that could be served: the deepest real body
# (a tool schema nested ~20 levels) is far above MAX_JSON_DEPTH's reach, a number needs no more than
# MAX_NUMBER_CHARS to say anything a float or a token id can hold, and names and ids (object keys:
# property names, logit_bias token ids, metadata keys) are short. String values are bounded by
# --max-body-bytes (an image's data URL can be most of the body) and, for text, by the context window,
# which the server checks from the characters before tokenizing.
MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 100
MAX_KEY_CHARS = 1024
MAX_ARRAY_ITEMS = 100_000
MAX_OBJECT_MEMBERS = 10_000


class _JsonLimitError(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _JsonLimitError(f"a number has {len(text)} digits; at most {MAX_NUMBER_CHARS} are accepted")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _JsonLimitError(f"a number has {len(text)} characters; at most {MAX_NUMBER_CHARS} are accepted")
    value = float(text)
    if not math.isfinite(value):
        raise _JsonLimitError(f"the number {text} is too large for a 64-bit float")
    return value


def _parse_constant(text: str) -> Any:
    raise _JsonLimitError(f"{text} is not a JSON number")


def parse_json_body(raw: bytes) -> Any:
    """Strict JSON within the parsing limits, every string valid Unicode (a lone surrogate such as
    ``"\\ud800"`` decodes in Python but can never be encoded back, so it is refused with its path)."""
    try:
        body = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except RecursionError:
        raise InvalidRequestError(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and the limits above are ValueErrors
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None
    _check_structure(body)
    return body


def _check_structure(body: Any) -> None:
    """Depth, sizes and Unicode, walked without recursion so no body can exhaust the stack."""
    pending: list[tuple[Any, tuple[Any, ...]]] = [(body, ())]
    while pending:
        value, path = pending.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise InvalidRequestError(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep",
                                      param=param_path(path[:4]))  # where the nesting starts
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, list):
            if len(value) > MAX_ARRAY_ITEMS:
                raise InvalidRequestError(f"an array holds {len(value)} items; at most {MAX_ARRAY_ITEMS} are accepted",
                                          param=param_path(path))
            pending.extend((item, path + (index,)) for index, item in enumerate(value))
        elif isinstance(value, dict):
            _check_object(value, path)
            pending.extend((item, path + (key,)) for key, item in value.items())


def _check_object(value: dict[str, Any], path: tuple[Any, ...]) -> None:
    if len(value) > MAX_OBJECT_MEMBERS:
        raise InvalidRequestError(f"an object holds {len(value)} members; at most {MAX_OBJECT_MEMBERS} are accepted",
                                  param=param_path(path))
    for key in value:
        if len(key) > MAX_KEY_CHARS:
            raise InvalidRequestError(f"an object key is {len(key)} characters long; at most {MAX_KEY_CHARS} "
                                      "are accepted", param=param_path(path))
        _check_text(key, path)


def _check_text(text: str, path: tuple[Any, ...]) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(f"the text holds an unpaired surrogate (\\u{ord(text[exc.start]):04x}) at "
                                  f"position {exc.start}, which is not a Unicode character",
                                  param=param_path(path)) from None


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
