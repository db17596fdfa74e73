"""Whether a schema is well-formed JSON Schema at all, before anything renders or lowers it.

A tool's schema is rendered into the prompt (the chat template walks ``properties``, ``items``, ...)
before any grammar is built, so a malformed one (``properties`` a number, a NaN bound, a schema nested
hundreds deep) must be refused here with a 400, whatever ``tool_choice`` says.
"""

from __future__ import annotations

import math
from typing import Any

from edge.schema.errors import SchemaError
from edge.schema.limits import DEFAULT_LIMITS, Limits

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMAS = ("additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "additionalItems",
            "unevaluatedItems", "unevaluatedProperties")


def check_shape(schema: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raises SchemaError (keyword and place named) when ``schema`` is not a well-formed schema."""
    todo: list[tuple[Any, str, int]] = [(schema, "", 0)]
    seen = 0
    while todo:
        node, location, depth = todo.pop()
        seen += 1
        if seen > limits.max_schema_nodes:
            raise SchemaError(f"the schema has more than {limits.max_schema_nodes} schema objects")
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise SchemaError("a schema must be a JSON object or a boolean", location)
        if depth >= limits.max_depth:
            raise SchemaError(f"the schema nests deeper than {limits.max_depth} levels", location)
        _check_values(node, location, depth, limits)
        todo.extend(_children(node, location, depth))


def _where(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key


def _children(node: dict[str, Any], location: str, depth: int) -> list[tuple[Any, str, int]]:
    children = []
    for key in _SCHEMA_MAPS:
        if key in node:
            if not isinstance(node[key], dict):
                raise SchemaError(f"{key} must be an object of schemas", _where(location, key))
            children += [(child, _where(location, f"{key}.{name}"), depth + 1) for name, child in node[key].items()]
    for key in _SCHEMA_LISTS:
        if key in node:
            if not isinstance(node[key], list):
                raise SchemaError(f"{key} must be an array of schemas", _where(location, key))
            children += [(child, f"{_where(location, key)}[{index}]", depth + 1) for index, child in enumerate(node[key])]
    for key in _SCHEMAS:
        if key in node:
            children.append((node[key], _where(location, key), depth + 1))
    if "items" in node:
        items = node["items"]
        if isinstance(items, list):
            children += [(child, f"{_where(location, 'items')}[{index}]", depth + 1) for index, child in enumerate(items)]
        else:
            children.append((items, _where(location, "items"), depth + 1))
    return children


def _check_values(node: dict[str, Any], location: str, depth: int, limits: Limits) -> None:
    if "required" in node and (not isinstance(node["required"], list)
                               or not all(isinstance(name, str) for name in node["required"])):
        raise SchemaError("required must be an array of strings", _where(location, "required"))
    if "type" in node:
        kinds = node["type"]
        if not (isinstance(kinds, str) or (isinstance(kinds, list) and all(isinstance(kind, str) for kind in kinds))):
            raise SchemaError("type must be a type name or an array of them", _where(location, "type"))
    if "enum" in node and not isinstance(node["enum"], list):
        raise SchemaError("enum must be an array", _where(location, "enum"))
    for key, value in node.items():
        _check_finite(value, _where(location, str(key)), depth, limits)


def _check_finite(value: Any, location: str, depth: int, limits: Limits) -> None:
    """No NaN or Infinity anywhere (Python's JSON parser lets them in); bounded nesting of plain values."""
    todo = [(value, depth)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise SchemaError("NaN and Infinity are not JSON numbers", location)
        if isinstance(item, (dict, list)):
            if level > limits.max_depth * 2:
                raise SchemaError(f"a value nests deeper than {limits.max_depth * 2} levels", location)
            todo.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
