"""GBNF for Gemma 4 output under a constraint: tool calls in Gemma's own syntax, or JSON.

Control tokens are matched as tokens (``<[ID]>``), never as spelled-out text, so a constrained call is
exactly what the chat template would have written: ``<|tool_call>call:NAME{key:value,...}<tool_call|>``
with ``<|"|>``-quoted strings and bare keys. Arguments follow the tool's JSON schema: required keys,
types, enums, nesting, string and array lengths. With thinking on, an optional thought channel may come
first.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Sequence

from edge.formats.gemma4_values import QUOTE, format_value
from edge.runtime.grammar import ANNOTATIONS, STRUCTURE, SchemaError, check_schema, json_gbnf
from edge.core.request import ToolSpec

TOOL_KEYWORDS = ANNOTATIONS | STRUCTURE
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# bounded so a number cannot run to max_tokens; narrower than JSON, never looser than the schema
_MAX_DIGITS = 12


def _literal(text: str) -> str:
    return json.dumps(text)


class ToolGrammar:
    """Builds the rules for one request's tools; ``token(text)`` gives a control token's id."""

    def __init__(self, token: Callable[[str], int]):
        self.rules: dict[str, str] = {}
        self.quote = f"<[{token(QUOTE)}]>"
        self.call_open = f"<[{token('<|tool_call>')}]>"
        self.call_close = f"<[{token('<tool_call|>')}]>"
        self._defs: dict[str, Any] = {}
        self._expanding: list[str] = []
        self._add_primitives()

    def _add_primitives(self) -> None:
        # string characters: anything but a spelled-out "<|", which could fake a control marker. A
        # length-bounded string counts one rule repetition per character, so it goes without "<" at all.
        self.rules["g-char"] = r'[^<\x00] | "<" [^|\x00]'
        self.rules["g-char1"] = r'[^<\x00]'
        self.rules["g-int"] = f'"-"? [0-9]{{1,{_MAX_DIGITS}}}'
        self.rules["g-number"] = f'g-int ("." [0-9]{{1,{_MAX_DIGITS}}})? ([eE] [-+]? [0-9]{{1,3}})?'
        self.rules["g-string"] = f"{self.quote} g-char* {self.quote}"
        self.rules["g-value"] = 'g-string | g-number | "true" | "false" | "null" | g-object | g-array'
        self.rules["g-key"] = "[A-Za-z_] [A-Za-z0-9_]*"
        self.rules["g-object"] = '"{" (g-key ":" g-value ("," g-key ":" g-value)*)? "}"'
        self.rules["g-array"] = '"[" (g-value ("," g-value)*)? "]"'

    def calls_rule(self, tools: Sequence[ToolSpec], parallel: bool) -> str:
        alternatives = " | ".join(self._function(tool) for tool in tools)
        self.rules["g-call"] = f'{self.call_open} "call:" ({alternatives}) {self.call_close}'
        return "g-call+" if parallel else "g-call"

    def _function(self, tool: ToolSpec) -> str:
        check_schema(tool.parameters, TOOL_KEYWORDS)
        self._defs = {**tool.parameters.get("$defs", {}), **tool.parameters.get("definitions", {})}
        name = _rule_name(f"fn-{tool.name}")
        schema = tool.parameters or {"type": "object", "properties": {}}
        self.rules[name] = f"{_literal(tool.name)} {self._object(schema, name)}"
        return name

    def _value(self, schema: dict[str, Any], name: str) -> str:
        """A rule expression for one value of ``schema``; named sub-rules are added as needed."""
        if "$ref" in schema:
            return self._reference(schema["$ref"], name)
        if "const" in schema:
            return self._constant(schema["const"])
        if "enum" in schema:
            return "(" + " | ".join(self._constant(value) for value in schema["enum"]) + ")"
        for union in ("anyOf", "oneOf"):
            if union in schema:
                options = [self._named(option, f"{name}-{index}") for index, option in enumerate(schema[union])]
                return "(" + " | ".join(options) + ")"
        kind = schema.get("type")
        if isinstance(kind, list):
            return "(" + " | ".join(self._named({**schema, "type": k}, f"{name}-{k}") for k in kind) + ")"
        return self._typed(kind, schema, name)

    def _typed(self, kind: str | None, schema: dict[str, Any], name: str) -> str:
        if kind == "string":
            if "minLength" in schema or "maxLength" in schema:
                return f"{self.quote} {_repeat('g-char1', schema.get('minLength', 0), schema.get('maxLength'))} {self.quote}"
            return f"{self.quote} g-char* {self.quote}"
        if kind == "integer":
            return "g-int"
        if kind == "number":
            return "g-number"
        if kind == "boolean":
            return '("true" | "false")'
        if kind == "null":
            return '"null"'
        if kind == "array":
            return self._array(schema, name)
        if kind == "object":
            return self._named_object(schema, name)
        return "g-value"  # no type: any value

    def _named(self, schema: dict[str, Any], name: str) -> str:
        rule = _rule_name(name)
        self.rules[rule] = self._value(schema, rule)
        return rule

    def _reference(self, reference: str, name: str) -> str:
        target = reference.split("/")[-1]
        if not reference.startswith("#/") or target not in self._defs:
            raise SchemaError(f"$ref {reference!r} cannot be resolved (only local $defs are supported)")
        if target in self._expanding:
            raise SchemaError(f"recursive $ref {reference!r} cannot be enforced by the tool-call grammar")
        self._expanding.append(target)
        try:
            return self._named(self._defs[target], f"{name}-{target}")
        finally:
            self._expanding.pop()

    def _constant(self, value: Any) -> str:
        if isinstance(value, str):
            return f"{self.quote} {_literal(value)} {self.quote}"
        return _literal(format_value(value))

    def _array(self, schema: dict[str, Any], name: str) -> str:
        item = self._named(schema.get("items", {}), f"{name}-item")
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if high == 0:
            return '"[" "]"'
        rest = _repeat(f'"," {item}', max(low - 1, 0), None if high is None else high - 1)
        body = f"{item} {rest}"
        return f'"[" {body} "]"' if low >= 1 else f'"[" ({body})? "]"'

    def _named_object(self, schema: dict[str, Any], name: str) -> str:
        rule = _rule_name(f"{name}-obj")
        self.rules[rule] = self._object(schema, rule)
        return rule

    def _object(self, schema: dict[str, Any], name: str) -> str:
        properties = schema.get("properties")
        if not properties:
            return "g-object"
        required = [key for key in properties if key in set(schema.get("required", []))]
        optional = [key for key in properties if key not in required]
        pairs = {key: self._pair(key, properties[key], name) for key in properties}
        return '"{" ' + _ordered_pairs([pairs[k] for k in required], [pairs[k] for k in optional]) + ' "}"'

    def _pair(self, key: str, schema: dict[str, Any], name: str) -> str:
        if not _BARE_KEY.match(key):
            raise SchemaError(f"property name {key!r} cannot be written as a Gemma 4 bare key")
        value = self._named(schema, f"{name}-{key}")
        return f"{_literal(key + ':')} {value}"


def _ordered_pairs(required: list[str], optional: list[str]) -> str:
    """Required pairs in order, then each optional pair at most once, comma separated."""
    if required:
        tail = " ".join(f'("," {pair})?' for pair in optional)
        return " ".join([required[0]] + [f'"," {pair}' for pair in required[1:]]) + (f" {tail}" if tail else "")
    if not optional:
        return ""
    starts = []
    for index, first in enumerate(optional):
        tail = " ".join(f'("," {pair})?' for pair in optional[index + 1:])
        starts.append(f"{first} {tail}".strip())
    return "(" + " | ".join(starts) + ")?"


def _repeat(element: str, low: int, high: int | None) -> str:
    if high is None:
        return f"({element}){{{low},}}" if low else f"({element})*"
    return f"({element}){{{low},{high}}}"


def _rule_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", text).lower()


def tool_call_grammar(tools: Sequence[ToolSpec], parallel: bool, token: Callable[[str], int],
                      thinking: bool) -> str:
    grammar = ToolGrammar(token)
    calls = grammar.calls_rule(tools, parallel)
    root = f"g-thought? {calls}" if thinking else calls
    if thinking:
        grammar.rules["g-thought"] = _thought_rule(token)
    return _format(root, grammar.rules)


def json_output_grammar(schema: dict[str, Any], token: Callable[[str], int], thinking: bool) -> str:
    body = json_gbnf(schema, root_name="g-json")
    if not thinking:
        return f"root ::= g-json\n{body}"
    return f"root ::= g-thought? g-json\ng-thought ::= {_thought_rule(token)}\n{body}"


def _thought_rule(token: Callable[[str], int]) -> str:
    close = token("<channel|>")
    return f'<[{token("<|channel>")}]> "thought\\n" (!<[{close}]>)* <[{close}]>'


def _format(root: str, rules: dict[str, str]) -> str:
    return "\n".join([f"root ::= {root}"] + [f"{name} ::= {body}" for name, body in rules.items()])
