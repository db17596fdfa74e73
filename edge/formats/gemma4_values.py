"""Gemma 4's value syntax inside tool calls and declarations, read and written.

A value is ``<|"|>text<|"|>``, a bare number, ``true``/``false``/``null``, ``{key:value,...}`` with bare
(or ``<|"|>``-quoted) keys, or ``[value,...]``. A call is ``call:NAME{...}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

QUOTE = '<|"|>'
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_KEY_STOP = re.compile(r"[:,{}\[\]]")


class GemmaSyntaxError(ValueError):
    pass


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.position = 0

    def peek(self, literal: str) -> bool:
        return self.text.startswith(literal, self.position)

    def expect(self, literal: str) -> None:
        if not self.peek(literal):
            raise GemmaSyntaxError(f"expected {literal!r} at {self.position} in {self.text[:80]!r}")
        self.position += len(literal)

    def skip_spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position] in " \n\t":
            self.position += 1

    def value(self) -> Any:
        self.skip_spaces()
        if self.peek(QUOTE):
            return self.string()
        if self.peek("{"):
            return self.mapping()
        if self.peek("["):
            return self.sequence()
        for literal, result in (("true", True), ("false", False), ("null", None)):
            if self.peek(literal):
                self.position += len(literal)
                return result
        match = _NUMBER.match(self.text, self.position)
        if not match:
            raise GemmaSyntaxError(f"no value at {self.position} in {self.text[:80]!r}")
        self.position = match.end()
        number = match.group(0)
        return float(number) if match.group(1) or match.group(2) else int(number)

    def string(self) -> str:
        self.expect(QUOTE)
        end = self.text.find(QUOTE, self.position)
        if end < 0:
            raise GemmaSyntaxError("unterminated string")
        value = self.text[self.position:end]
        self.position = end + len(QUOTE)
        return value

    def key(self) -> str:
        self.skip_spaces()
        if self.peek(QUOTE):
            return self.string()
        match = _KEY_STOP.search(self.text, self.position)
        end = match.start() if match else len(self.text)
        key = self.text[self.position:end].strip()
        if not key:
            raise GemmaSyntaxError(f"empty key at {self.position}")
        self.position = end
        return key

    def mapping(self) -> dict[str, Any]:
        self.expect("{")
        result: dict[str, Any] = {}
        self.skip_spaces()
        if self.peek("}"):
            self.position += 1
            return result
        while True:
            key = self.key()
            self.expect(":")
            result[key] = self.value()
            self.skip_spaces()
            if self.peek("}"):
                self.position += 1
                return result
            self.expect(",")

    def sequence(self) -> list[Any]:
        self.expect("[")
        result: list[Any] = []
        self.skip_spaces()
        if self.peek("]"):
            self.position += 1
            return result
        while True:
            result.append(self.value())
            self.skip_spaces()
            if self.peek("]"):
                self.position += 1
                return result
            self.expect(",")


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """``call:NAME{...}`` -> (name, arguments); raises GemmaSyntaxError on anything else."""
    reader = _Reader(text.strip())
    reader.expect("call:")
    match = _NAME.match(reader.text, reader.position)
    if not match:
        raise GemmaSyntaxError("a tool call needs a name")
    reader.position = match.end()
    arguments = reader.mapping()
    if reader.position != len(reader.text):
        raise GemmaSyntaxError(f"unexpected text after the call: {reader.text[reader.position:][:40]!r}")
    return match.group(0), arguments


class _PrefixReader(_Reader):
    """Reads a value that may stop anywhere and writes it as JSON text, as far as it goes.

    Each method returns (JSON text, whether the value was written whole). The text is the beginning of
    what ``json.dumps`` gives for the whole value, with the same separators; a string, key or number cut
    off mid-way is written as far as it got."""

    def at_end(self) -> bool:
        self.skip_spaces()
        return self.position >= len(self.text)

    def rest(self) -> str:
        return self.text[self.position:]

    def value_prefix(self) -> tuple[str, bool]:
        if self.at_end() or QUOTE.startswith(self.rest()):
            return "", False
        if self.peek(QUOTE):
            return self.string_prefix()
        if self.peek("{"):
            return self.mapping_prefix()
        if self.peek("["):
            return self.sequence_prefix()
        for literal in ("true", "false", "null"):
            if self.peek(literal):
                self.position += len(literal)
                return literal, True
            if literal.startswith(self.rest()):
                written, self.position = self.rest(), len(self.text)
                return written, False
        match = _NUMBER_PREFIX.match(self.text, self.position)
        if not match.group(0):
            raise GemmaSyntaxError(f"no value at {self.position} in {self.text[:80]!r}")
        self.position = match.end()
        return match.group(0), self.position < len(self.text)

    def string_prefix(self) -> tuple[str, bool]:
        self.expect(QUOTE)
        end = self.text.find(QUOTE, self.position)
        if end >= 0:
            value, self.position = self.text[self.position:end], end + len(QUOTE)
            return json.dumps(value, ensure_ascii=False), True
        value, self.position = _without_partial_quote(self.rest()), len(self.text)
        return json.dumps(value, ensure_ascii=False)[:-1], False

    def key_prefix(self) -> tuple[str, bool]:
        if self.peek(QUOTE) or QUOTE.startswith(self.rest()):
            return self.string_prefix() if self.peek(QUOTE) else ("", False)
        match = _KEY_STOP.search(self.text, self.position)
        if match is None:
            key, self.position = self.rest().strip(), len(self.text)
            return json.dumps(key, ensure_ascii=False)[:-1], False
        key, self.position = self.text[self.position:match.start()].strip(), match.start()
        if not key:
            raise GemmaSyntaxError(f"empty key at {self.position}")
        return json.dumps(key, ensure_ascii=False), True

    def mapping_prefix(self) -> tuple[str, bool]:
        self.expect("{")
        written = "{"
        while True:
            if self.at_end():
                return written, False
            if self.peek("}"):
                self.position += 1
                return written + "}", True
            if written != "{":
                self.expect(",")
                written += ", "
                if self.at_end():
                    return written, False
            key, whole = self.key_prefix()
            written += key
            if not whole or self.at_end():
                return written, False
            self.expect(":")
            value, whole = self.value_prefix()
            written += ": " + value
            if not whole:
                return written, False

    def sequence_prefix(self) -> tuple[str, bool]:
        self.expect("[")
        written = "["
        while True:
            if self.at_end():
                return written, False
            if self.peek("]"):
                self.position += 1
                return written + "]", True
            if written != "[":
                self.expect(",")
                written += ", "
            value, whole = self.value_prefix()
            written += value
            if not whole:
                return written, False


_NUMBER_PREFIX = re.compile(r"-?\d*(\.\d*)?([eE][-+]?\d*)?")


def _without_partial_quote(text: str) -> str:
    """A string's text at the end of the output, without the beginning of a closing ``<|"|>``."""
    for length in range(min(len(QUOTE) - 1, len(text)), 0, -1):
        if QUOTE.startswith(text[-length:]):
            return text[:-length]
    return text


def parse_partial_call(text: str, tool_names: tuple[str, ...] = ()) -> tuple[str, str]:
    """A call that generation cut off (``call:get_weather{city:<|"|>Par``) -> (name, arguments as JSON
    text as far as they were written: ``{"city": "Par``).

    A name cut off mid-way is completed when exactly one declared tool starts with it (the call grammar
    only lets declared names through); otherwise it is returned as written. Raises GemmaSyntaxError when
    the text does not even begin like a call."""
    reader = _PrefixReader(text.lstrip())
    if "call:".startswith(reader.text):
        return _completed_name("", tool_names), ""
    reader.expect("call:")
    match = _NAME.match(reader.text, reader.position)
    name = match.group(0) if match else ""
    reader.position = match.end() if match else reader.position
    if reader.at_end():
        return _completed_name(name, tool_names), ""
    try:
        arguments, _ = reader.mapping_prefix()
    except GemmaSyntaxError:
        arguments = ""
    return name, arguments


def _completed_name(prefix: str, tool_names: tuple[str, ...]) -> str:
    matches = [name for name in tool_names if name.startswith(prefix)]
    return matches[0] if len(matches) == 1 else prefix


def format_value(value: Any) -> str:
    """A value in Gemma's syntax, keys sorted as the chat template writes them."""
    if isinstance(value, str):
        return f"{QUOTE}{value}{QUOTE}"
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{format_value(item)}" for key, item in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    return json.dumps(value)


def coerce_to_schema(value: Any, schema: dict[str, Any] | None) -> Any:
    """Give arguments the JSON types their schema declares (a model may write 5 for "5" or vice versa)."""
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        return {key: coerce_to_schema(item, properties.get(key)) for key, item in value.items()}
    if kind == "array" and isinstance(value, list):
        return [coerce_to_schema(item, schema.get("items")) for item in value]
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    if kind in ("integer", "number") and isinstance(value, str):
        match = _NUMBER.fullmatch(value.strip())
        if match:
            return float(value) if (kind == "number" and (match.group(1) or match.group(2))) else int(float(value))
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value
