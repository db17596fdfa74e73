"""Grammar-constrained decoding: JSON schemas to GBNF, refusing what a grammar cannot enforce.

The JSON grammar comes from llama-cpp-python's converter. That converter silently ignores keywords it
does not know (``minimum``, ``not``, ``uniqueItems`` ...): a schema using them would be accepted and not
enforced. ``check_schema`` refuses such a schema up front instead, naming the keyword.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from llama_cpp.llama_grammar import json_schema_to_gbnf

ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment",
                         "deprecated", "readOnly", "writeOnly"})
STRUCTURE = frozenset({"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
                       "enum", "const", "anyOf", "oneOf", "$ref", "$defs", "definitions", "minLength", "maxLength"})
# what llama-cpp-python's JSON-schema converter enforces
JSON_KEYWORDS = ANNOTATIONS | STRUCTURE | {"allOf", "prefixItems", "pattern", "format"}
JSON_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# JSON object with any content: what response_format json_object asks for
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


class SchemaError(ValueError):
    """A schema the grammar cannot enforce exactly; the message names the keyword and where it is."""


def _nodes(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(schema, dict):
        raise SchemaError(f"{path or 'schema'} must be a JSON object")
    yield path, schema
    for key in ("properties", "$defs", "definitions"):
        for name, child in (schema.get(key) or {}).items():
            yield from _nodes(child, f"{path}.{key}.{name}" if path else f"{key}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}.{key}" if path else key)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for index, child in enumerate(schema.get(key) or []):
            yield from _nodes(child, f"{path}.{key}[{index}]" if path else f"{key}[{index}]")


def check_schema(schema: Any, allowed: frozenset[str], formats: frozenset[str] = frozenset()) -> None:
    for path, node in _nodes(schema, ""):
        where = path or "the schema's root"
        unknown = sorted(set(node) - allowed)
        if unknown:
            raise SchemaError(f"'{unknown[0]}' at {where} cannot be enforced by the grammar")
        kinds = node.get("type")
        for kind in kinds if isinstance(kinds, list) else [kinds]:
            if kind is not None and kind not in TYPES:
                raise SchemaError(f"unknown type {kind!r} at {where}")
        if "format" in node and node["format"] not in formats:
            raise SchemaError(f"format {node['format']!r} at {where} cannot be enforced by the grammar")
        if "pattern" in node and ({"minLength", "maxLength"} & set(node)):
            raise SchemaError(f"pattern together with minLength/maxLength at {where} cannot be enforced")
        if isinstance(node.get("required"), list) and "properties" in node:
            missing = [name for name in node["required"] if name not in node["properties"]]
            if missing:
                raise SchemaError(f"required property '{missing[0]}' at {where} is not declared")


def json_gbnf(schema: dict[str, Any], root_name: str = "root") -> str:
    """GBNF for JSON matching ``schema``; its top rule is ``root_name``."""
    check_schema(schema, JSON_KEYWORDS, JSON_FORMATS)
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except (AssertionError, KeyError, ValueError, TypeError, RecursionError) as exc:
        raise SchemaError(f"the schema cannot be turned into a grammar: {exc}") from exc
    # llama-cpp-python 0.3.36's char rule lets raw control characters into strings: invalid JSON
    grammar = grammar.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x00-\\x1F] |')
    if root_name != "root":
        grammar = re.sub(r"^root ::=", f"{root_name} ::=", grammar, flags=re.MULTILINE)
    return grammar
