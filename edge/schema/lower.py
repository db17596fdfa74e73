"""JSON Schema -> the intermediate tree (nodes.py), exactly, or a SchemaError naming keyword and place.

A schema is the conjunction of its keywords: the typed part (``type`` and the keywords of each type),
``enum``/``const``, ``$ref``, ``allOf``, ``anyOf``, ``oneOf``. Each lowers on its own and the parts are
intersected, so ``allOf`` of objects, a ``$ref`` with siblings or an ``enum`` under a ``type`` all mean
what the standard says. Lowering runs in three phases:

1. every schema object is lowered; a ``$ref`` only names its target, which is lowered from a queue
   (so nesting depth is the depth of one definition, and recursion is a named rule);
2. intersections that involve a reference are made once every definition exists (recursive types
   intersect through memoized definitions, which always terminates);
3. definitions that admit no finite value are found (a least fixpoint of the shortest output) and
   every reference to them becomes ``Never``; an unsatisfiable root is the 400.

Annotations are ignored, keywords that cannot be enforced are refused, and any other keyword is
refused too (a misspelt ``maxLenght`` must not silently mean "no limit").
"""

from __future__ import annotations

import functools
import json
import math
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import unquote

from edge.schema import automaton, formats, numbers
from edge.schema.automaton import Dfa
from edge.schema.charset import ANY
from edge.schema.errors import SchemaError
from edge.schema.limits import DEFAULT_LIMITS, Limits
from edge.schema.nodes import (
    AnyValue, Array, Boolean, Literal, Never, Node, Null, Number, Object, Property, Ref, Text, Tree, Union_,
)
from edge.schema.regex import parse_pattern

ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "example", "deprecated", "readOnly", "writeOnly",
    "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "$vocabulary", "discriminator",
    "contentMediaType", "contentEncoding", "contentSchema", "xml", "externalDocs",
})
UNENFORCEABLE = frozenset({
    "not", "if", "then", "else", "contains", "minContains", "maxContains", "patternProperties",
    "dependentRequired", "dependentSchemas", "dependencies", "propertyNames", "unevaluatedProperties",
    "unevaluatedItems", "$dynamicRef", "$recursiveRef", "$recursiveAnchor",
})
STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern", "format"})
NUMBER_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
ARRAY_KEYWORDS = frozenset({"items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems"})
OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties", "minProperties", "maxProperties"})
COMBINATION_KEYWORDS = frozenset({"type", "enum", "const", "nullable", "$ref", "$defs", "definitions",
                                  "allOf", "anyOf", "oneOf"})
KNOWN = (ANNOTATIONS | STRING_KEYWORDS | NUMBER_KEYWORDS | ARRAY_KEYWORDS | OBJECT_KEYWORDS
         | COMBINATION_KEYWORDS)
TYPES = ("string", "integer", "number", "boolean", "null", "array", "object")
# OpenAPI's integer formats are ranges; the float ones say nothing a grammar could check
INTEGER_FORMATS = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
INFINITE = math.inf


class _NeedsDefinitions(Exception):
    """A literal met a reference whose definition is not lowered yet: the check waits for phase 2."""


def lower_schema(schema: Any, limits: Limits = DEFAULT_LIMITS) -> Tree:
    """The exact tree of ``schema``; raises SchemaError for what cannot be enforced or satisfied."""
    return _Lowering(schema, limits).run()


def _where(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key


def _describe(location: str) -> str:
    return location or "the schema's root"


class _Lowering:
    def __init__(self, schema: Any, limits: Limits):
        self.document = schema
        self.limits = limits
        self.definitions: dict[str, Node] = {}
        self.queue: list[tuple[str, Any]] = []
        self.deferred: dict[tuple, str] = {}
        self.deferred_parts: dict[str, tuple[Node, Node]] = {}
        self.deferred_queue: list[str] = []
        self.exclusive_choices: list[tuple[tuple[Node, ...], str]] = []
        self.nodes = 0
        self.depth = 0
        self.states = 0
        self.counted: dict[int, Dfa] = {}
        self.phase = 1

    def run(self) -> Tree:
        root = self.lower(self.document, "")
        while self.queue:
            name, target = self.queue.pop(0)
            self.definitions[name] = self.lower(target, name)
        self.phase = 2
        while self.deferred_queue:
            name = self.deferred_queue.pop(0)
            left, right = self.deferred_parts[name]
            self.definitions[name] = self.intersect(self.resolve(left), self.resolve(right), name)
        tree, every = _prune(Tree(root, self.definitions), self.limits)
        for options, location in self.exclusive_choices:
            _check_exclusive(options, every, location)
        return tree

    # -- budget --------------------------------------------------------------------------------------

    def count_states(self, dfa: Dfa, location: str) -> Dfa:
        """Each distinct automaton counts once (a cached one shared by many properties costs nothing more)."""
        if id(dfa) in self.counted:
            return dfa
        self.counted[id(dfa)] = dfa
        self.states += dfa.size
        if self.states > self.limits.max_automaton_states:
            raise SchemaError(f"the schema's strings and numbers need more than "
                              f"{self.limits.max_automaton_states} automaton states in all", location)
        return dfa

    def automaton(self, build: Callable[[], Dfa], location: str) -> Dfa:
        try:
            return self.count_states(build(), location)
        except automaton.TooLarge as error:
            raise SchemaError(str(error), location) from None

    # -- one schema object ---------------------------------------------------------------------------

    def lower(self, schema: Any, location: str) -> Node:
        self.nodes += 1
        if self.nodes > self.limits.max_schema_nodes:
            raise SchemaError(f"the schema has more than {self.limits.max_schema_nodes} schema objects", location)
        if schema is True:
            return AnyValue()
        if schema is False:
            return Never(f"the schema at {_describe(location)} is false")
        if not isinstance(schema, dict):
            raise SchemaError("a schema must be a JSON object or a boolean", location)
        if self.depth >= self.limits.max_depth:
            raise SchemaError(f"the schema nests deeper than {self.limits.max_depth} levels", location)
        self.depth += 1
        try:
            _check_keywords(schema, location)
            return self._conjunction(schema, location)
        finally:
            self.depth -= 1

    def _conjunction(self, schema: dict[str, Any], location: str) -> Node:
        parts: list[Node] = [self._typed(schema, location)]
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list):
                raise SchemaError("enum must be an array", _where(location, "enum"))
            if not values:
                return Never(f"the enum at {_describe(location)} is empty")
            parts.append(_union([Literal(_checked_value(value, _where(location, "enum"))) for value in values]))
        if "const" in schema:
            parts.append(Literal(_checked_value(schema["const"], _where(location, "const"))))
        if "$ref" in schema:
            parts.append(self.reference(schema["$ref"], _where(location, "$ref")))
        for key in ("$defs", "definitions"):
            if key in schema and not isinstance(schema[key], dict):
                raise SchemaError(f"{key} must be an object of schemas", _where(location, key))
        for index, member in enumerate(_schema_list(schema, "allOf", location) if "allOf" in schema else []):
            parts.append(self.lower(member, f"{_where(location, 'allOf')}[{index}]"))
        if "anyOf" in schema:
            parts.append(_union([self.lower(option, f"{_where(location, 'anyOf')}[{index}]")
                                 for index, option in enumerate(_schema_list(schema, "anyOf", location))]))
        if "oneOf" in schema:
            options = tuple(self.lower(option, f"{_where(location, 'oneOf')}[{index}]")
                            for index, option in enumerate(_schema_list(schema, "oneOf", location)))
            self.exclusive_choices.append((options, _where(location, "oneOf")))
            parts.append(_union(list(options)))
        result = parts[0]
        for part in parts[1:]:
            result = self.intersect(result, part, location)
        return result

    def _typed(self, schema: dict[str, Any], location: str) -> Node:
        kinds = _types(schema, location)
        if kinds is None:
            if not (set(schema) & (STRING_KEYWORDS | NUMBER_KEYWORDS | ARRAY_KEYWORDS | OBJECT_KEYWORDS)):
                return AnyValue()
            kinds = ["string", "number", "boolean", "null", "array", "object"]
        return _union([self._kind(kind, schema, location) for kind in kinds])

    def _kind(self, kind: str, schema: dict[str, Any], location: str) -> Node:
        if kind == "string":
            return self._string(schema, location)
        if kind in ("integer", "number"):
            return self._number(schema, kind == "integer", location)
        if kind == "boolean":
            return Boolean()
        if kind == "null":
            return Null()
        if kind == "array":
            return self._array(schema, location)
        return self._object(schema, location)

    # -- strings -------------------------------------------------------------------------------------

    def _string(self, schema: dict[str, Any], location: str) -> Node:
        low = _count(schema, "minLength", location) or 0
        high = _count(schema, "maxLength", location)
        dfa = automaton.everything(ANY)
        if "pattern" in schema:
            pattern = schema["pattern"]
            where = _where(location, "pattern")
            if not isinstance(pattern, str):
                raise SchemaError("pattern must be a string", where)
            dfa = self.automaton(lambda: _pattern_automaton(pattern, where), where)
        if "format" in schema:
            dfa = self._string_format(schema["format"], dfa, _where(location, "format"))
        return self.text(dfa, low, high, location)

    def _string_format(self, name: Any, dfa: Dfa, location: str) -> Dfa:
        if not isinstance(name, str):
            raise SchemaError("format must be a string", location)
        if name in formats.REFUSED:
            raise SchemaError(f"format {name!r} cannot be enforced by the grammar", location)
        if name not in formats.SUPPORTED:
            return dfa  # not a format the standard defines (password, binary, ...): an annotation
        language = self.automaton(lambda: formats.format_automaton(name), location)
        if dfa.self_loop() is not None and dfa.self_loop() == ANY:
            return language
        return self.automaton(lambda: automaton.intersect(dfa, language), location)

    def text(self, dfa: Dfa, low: int, high: int | None, location: str) -> Node:
        return make_text(dfa, low, high, location, self.limits.output_chars)

    # -- numbers -------------------------------------------------------------------------------------

    def _number(self, schema: dict[str, Any], integer: bool, location: str) -> Node:
        lower, upper = _numeric_bounds(schema, integer, location)
        step = None
        if "multipleOf" in schema:
            step = _decimal(schema["multipleOf"], _where(location, "multipleOf"))
            if step <= 0:
                raise SchemaError("multipleOf must be greater than 0", _where(location, "multipleOf"))
        dfa = self.automaton(lambda: _number_automaton(integer, lower, upper, step), location)
        if dfa.is_empty():
            kind = "integer" if integer else "number"
            return Never(f"no {kind} satisfies the bounds and multipleOf at {_describe(location)}")
        return Number(dfa, integer)

    # -- arrays --------------------------------------------------------------------------------------

    def _array(self, schema: dict[str, Any], location: str) -> Node:
        items = schema.get("items", True)
        prefix_schemas = _schema_list(schema, "prefixItems", location) if "prefixItems" in schema else []
        if isinstance(items, list):  # draft 2019 and before: items as a list is prefixItems
            prefix_schemas = items
            rest_schema = schema.get("additionalItems", True)
            rest_location = _where(location, "additionalItems")
        else:
            rest_schema, rest_location = items, _where(location, "items")
        prefix = tuple(self.lower(item, f"{_where(location, 'prefixItems')}[{index}]")
                       for index, item in enumerate(prefix_schemas))
        rest = self.lower(rest_schema, rest_location)
        low = _count(schema, "minItems", location) or 0
        high = _count(schema, "maxItems", location)
        return self.array(prefix, rest, low, high, location)

    def array(self, prefix: tuple[Node, ...], rest: Node, low: int, high: int | None, location: str) -> Node:
        return make_array(prefix, rest, low, high, location, self.limits.output_chars)

    # -- objects -------------------------------------------------------------------------------------

    def _object(self, schema: dict[str, Any], location: str) -> Node:
        declared = schema.get("properties", {})
        if not isinstance(declared, dict):
            raise SchemaError("properties must be an object of schemas", _where(location, "properties"))
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
            raise SchemaError("required must be an array of strings", _where(location, "required"))
        explicit = "additionalProperties" in schema
        additional = (self.lower(schema["additionalProperties"], _where(location, "additionalProperties"))
                      if explicit else AnyValue())
        wanted = set(required)
        properties = [Property(name, self.lower(value, _where(location, f"properties.{name}")), name in wanted)
                      for name, value in declared.items()]
        for name in dict.fromkeys(required):
            if name not in declared:
                properties.append(Property(name, additional, True))
        low = _count(schema, "minProperties", location) or 0
        high = _count(schema, "maxProperties", location)
        return self.object(tuple(properties), additional, explicit, low, high, location)

    def object(self, properties: tuple[Property, ...], additional: Node, explicit: bool, low: int,
               high: int | None, location: str) -> Node:
        return make_object(properties, additional, explicit, low, high, location)

    # -- references ----------------------------------------------------------------------------------

    def reference(self, pointer: Any, location: str) -> Node:
        if not isinstance(pointer, str):
            raise SchemaError("$ref must be a string", location)
        if not pointer.startswith("#"):
            raise SchemaError(f"$ref {pointer!r}: only references inside the schema ('#/...') are supported",
                              location)
        name = pointer
        if name not in self.definitions:
            if len(self.definitions) + len(self.queue) >= self.limits.max_definitions:
                raise SchemaError(f"the schema has more than {self.limits.max_definitions} definitions", location)
            target = _resolve_pointer(self.document, pointer, location)
            self.definitions[name] = Never("being lowered")  # a placeholder until its turn in the queue
            self.queue.append((name, target))
        return Ref(name)

    def resolve(self, node: Node) -> Node:
        """A node with one level of reference removed (phase 2: every definition exists)."""
        seen = set()
        while isinstance(node, Ref):
            if node.name in seen:
                raise SchemaError(f"$ref {node.name!r} refers only to itself", node.name)
            seen.add(node.name)
            node = self.definitions[node.name]
        return node

    # -- intersection --------------------------------------------------------------------------------

    def intersect(self, first: Node, second: Node, location: str) -> Node:
        if isinstance(first, Never):
            return first
        if isinstance(second, Never):
            return second
        if isinstance(first, AnyValue):
            return second
        if isinstance(second, AnyValue):
            return first
        if isinstance(first, Union_):
            return _union([self.intersect(option, second, location) for option in first.options])
        if isinstance(second, Union_):
            return _union([self.intersect(first, option, location) for option in second.options])
        if isinstance(first, Ref) or isinstance(second, Ref):
            return self._deferred(first, second, location)
        if isinstance(second, Literal):
            first, second = second, first
        if isinstance(first, Literal):
            return self._literal_in(first, second, location)
        if type(first) is not type(second):
            return Never(f"no value at {_describe(location)} has both types its parts require", weak=True)
        return self._same_kind(first, second, location)

    def _literal_in(self, literal: Literal, node: Node, location: str) -> Node:
        try:
            accepted = _accepts(node, literal.value, self._definition_for_check)
        except _NeedsDefinitions:
            return self._deferred(literal, node, location)
        return literal if accepted else Never(f"the value {_short(literal.value)} at {_describe(location)} "
                                              "does not satisfy the rest of its schema")

    def _definition_for_check(self, name: str) -> tuple[Node, ...]:
        if name in self.deferred_parts:
            return self.deferred_parts[name]
        if self.phase == 1:
            raise _NeedsDefinitions()
        return (self.definitions[name],)

    def _deferred(self, first: Node, second: Node, location: str) -> Node:
        key = (_identity(first), _identity(second))
        if key not in self.deferred:
            if len(self.definitions) >= self.limits.max_definitions:
                raise SchemaError(f"combining these references needs more than {self.limits.max_definitions} "
                                  "definitions", location)
            name = f"{location or 'root'}&{len(self.deferred)}"
            self.deferred[key] = name
            self.deferred_parts[name] = (first, second)
            self.definitions[name] = Never("being combined")
            self.deferred_queue.append(name)
        return Ref(self.deferred[key])

    def _same_kind(self, first: Node, second: Node, location: str) -> Node:
        if isinstance(first, (Boolean, Null)):
            return first
        if isinstance(first, Number):
            dfa = self.automaton(lambda: automaton.intersect(first.dfa, second.dfa), location)
            if dfa.is_empty():
                return Never(f"no number at {_describe(location)} satisfies all of its parts")
            return Number(dfa, first.integer or second.integer)
        if isinstance(first, Text):
            dfa = self.automaton(lambda: automaton.intersect(first.dfa, second.dfa), location)
            high = _min_bound(first.max_length, second.max_length)
            return self.text(dfa, max(first.min_length, second.min_length), high, location)
        if isinstance(first, Array):
            return self._intersect_arrays(first, second, location)
        return self._intersect_objects(first, second, location)

    def _intersect_arrays(self, first: Array, second: Array, location: str) -> Node:
        def item(array: Array, index: int) -> Node:
            return array.prefix[index] if index < len(array.prefix) else array.rest

        length = max(len(first.prefix), len(second.prefix))
        prefix = tuple(self.intersect(item(first, index), item(second, index), location) for index in range(length))
        rest = self.intersect(first.rest, second.rest, location)
        return self.array(prefix, rest, max(first.min_items, second.min_items),
                          _min_bound(first.max_items, second.max_items), location)

    def _intersect_objects(self, first: Object, second: Object, location: str) -> Node:
        """A key's value is its schema on each side (declared, or that side's additionalProperties)."""
        by_name = {prop.name: prop for prop in first.properties}
        other = {prop.name: prop for prop in second.properties}
        properties = []
        for name in list(by_name) + [name for name in other if name not in by_name]:
            left = by_name[name].value if name in by_name else first.additional
            right = other[name].value if name in other else second.additional
            required = (name in by_name and by_name[name].required) or (name in other and other[name].required)
            properties.append(Property(name, self.intersect(left, right, location), required))
        additional = self.intersect(first.additional, second.additional, location)
        explicit = first.extra_keys or second.extra_keys
        return self.object(tuple(properties), additional, explicit, max(first.min_properties, second.min_properties),
                           _min_bound(first.max_properties, second.max_properties), location)


# -- normalized nodes: bounds tightened, impossible parts turned into Never ------------------------------


def make_text(dfa: Dfa, low: int, high: int | None, location: str, reach: int | None) -> Node:
    """A string node with its bounds tightened by the automaton and by what the output can reach."""
    if reach is not None and high is not None and high > reach:
        high = None  # no output can get there: the bound constrains nothing
    if reach is not None and low > reach:
        return Never(f"minLength {low} at {_describe(location)} is more than the longest output can write")
    if high is not None and low > high:
        return Never(f"minLength {low} is greater than maxLength {high} at {_describe(location)}")
    shortest, longest = dfa.min_length(), dfa.max_length()
    if shortest is None:
        return Never(f"no string satisfies the pattern and format at {_describe(location)}")
    if (high is not None and high < shortest) or (longest is not None and low > longest):
        return Never(f"no string of the allowed length satisfies the pattern or format at {_describe(location)}")
    if low <= shortest:
        low = 0
    if high is not None and longest is not None and longest <= high:
        high = None
    return Text(dfa, low, high)


def make_array(prefix: tuple[Node, ...], rest: Node, low: int, high: int | None, location: str,
               reach: int | None) -> Node:
    if reach is not None and high is not None and high > reach:
        high = None  # every item takes a character at least
    if reach is not None and low > reach:
        return Never(f"minItems {low} at {_describe(location)} is more than the longest output can write")
    for index, item in enumerate(prefix):
        if isinstance(item, Never):
            high = index if high is None else min(high, index)
            prefix = prefix[:index]
            break
    if isinstance(rest, Never):
        high = len(prefix) if high is None else min(high, len(prefix))
    if high is not None and low > high:
        return Never(f"the array at {_describe(location)} needs {low} items but can hold at most {high}")
    if high is not None and len(prefix) > high:
        prefix = prefix[:high]
    return Array(prefix, rest, low, high)


def make_object(properties: tuple[Property, ...], additional: Node, explicit: bool, low: int, high: int | None,
                location: str) -> Node:
    for prop in properties:
        if prop.required and isinstance(prop.value, Never):
            return Never(f"required property {prop.name!r} at {_describe(location)} can have no value "
                         f"({prop.value.reason})")
    required = sum(prop.required for prop in properties)
    if high is not None and required > high:
        return Never(f"the object at {_describe(location)} requires {required} properties but "
                     f"maxProperties is {high}")
    if high is not None and low > high:
        return Never(f"minProperties {low} is greater than maxProperties {high} at {_describe(location)}")
    extra = explicit and not isinstance(additional, Never)
    possible = sum(not isinstance(prop.value, Never) for prop in properties)
    if not extra and low > possible:
        return Never(f"the object at {_describe(location)} needs {low} properties but can have {possible}")
    return Object(properties, additional, extra, low, high)


# -- keyword checks ----------------------------------------------------------------------------------


def _check_keywords(schema: dict[str, Any], location: str) -> None:
    for key in schema:
        if not isinstance(key, str):
            raise SchemaError("schema keywords must be strings", location)
        if key in KNOWN or key.startswith("x-"):
            continue
        where = _where(location, key)
        if key in UNENFORCEABLE:
            raise SchemaError(f"'{key}' cannot be enforced by the grammar", where)
        raise SchemaError(f"unknown keyword '{key}' (not enforced, so refused)", where)
    if schema.get("uniqueItems") not in (None, False):
        raise SchemaError("'uniqueItems' cannot be enforced by the grammar", _where(location, "uniqueItems"))
    if "nullable" in schema and not isinstance(schema["nullable"], bool):
        raise SchemaError("nullable must be a boolean", _where(location, "nullable"))


def _types(schema: dict[str, Any], location: str) -> list[str] | None:
    if "type" not in schema:
        return None
    kinds = schema["type"]
    where = _where(location, "type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(kinds, list) or not kinds or not all(isinstance(kind, str) for kind in kinds):
        raise SchemaError("type must be a type name or a non-empty array of them", where)
    for kind in kinds:
        if kind not in TYPES:
            raise SchemaError(f"unknown type {kind!r}", where)
    if schema.get("nullable") is True and "null" not in kinds:
        kinds = kinds + ["null"]
    if "integer" in kinds and "number" in kinds:
        kinds = [kind for kind in kinds if kind != "integer"]
    return list(dict.fromkeys(kinds))


def _schema_list(schema: dict[str, Any], key: str, location: str) -> list[Any]:
    value = schema.get(key, [])
    if not isinstance(value, list) or (key in ("allOf", "anyOf", "oneOf") and not value):
        raise SchemaError(f"{key} must be a non-empty array of schemas", _where(location, key))
    return value


def _count(schema: dict[str, Any], key: str, location: str) -> int | None:
    """A non-negative integer keyword (an integral float like 5.0 counts)."""
    if key not in schema:
        return None
    value = schema[key]
    where = _where(location, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{key} must be a non-negative integer", where)
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise SchemaError(f"{key} must be a non-negative integer", where)
    if value < 0:
        raise SchemaError(f"{key} must be a non-negative integer", where)
    return int(value)


def _decimal(value: Any, location: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError("must be a number", location)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaError("must be a finite number (not NaN or Infinity)", location)
        return Decimal(repr(value))
    return Decimal(value)


def _numeric_bounds(schema: dict[str, Any], integer: bool, location: str):
    """The tightest lower and upper bounds as (value, strict), or None."""
    lower: list[tuple[Decimal, bool]] = []
    upper: list[tuple[Decimal, bool]] = []
    for key, side, strict in (("minimum", lower, False), ("maximum", upper, False)):
        if key in schema:
            side.append((_decimal(schema[key], _where(location, key)), strict))
    for key, side, plain in (("exclusiveMinimum", lower, "minimum"), ("exclusiveMaximum", upper, "maximum")):
        if key not in schema:
            continue
        value = schema[key]
        if isinstance(value, bool):  # draft 4: a flag on minimum/maximum
            if value and plain in schema:
                side[:] = [(bound, True) for bound, _ in side]
            continue
        side.append((_decimal(value, _where(location, key)), True))
    name = schema.get("format")
    if name in INTEGER_FORMATS:
        low, high = INTEGER_FORMATS[name]
        lower.append((Decimal(low), False))
        upper.append((Decimal(high), False))
    lowest = max(lower, key=lambda bound: (bound[0], bound[1])) if lower else None
    highest = min(upper, key=lambda bound: (bound[0], not bound[1])) if upper else None
    return lowest, highest


@functools.lru_cache(maxsize=1024)
def _number_automaton(integer: bool, lower, upper, step) -> Dfa:
    bounds = [bound for bound in (lower, upper) if bound is not None]
    integer_digits = max([numbers.SIGNIFICANT_DIGITS] + [len(str(int(abs(value)))) for value, _ in bounds]
                         + ([len(str(int(step)))] if step is not None else []))
    fraction_digits = max([0] + [_fraction_places(value) + 1 for value, _ in bounds]
                          + ([_fraction_places(step)] if step is not None else []))
    dfa = numbers.syntax(integer, integer_digits, fraction_digits)
    if lower is not None:
        dfa = automaton.intersect(dfa, automaton.from_regex(numbers.at_least(*lower)))
    if upper is not None:
        dfa = automaton.intersect(dfa, automaton.from_regex(numbers.at_most(*upper)))
    if step is not None:
        dfa = automaton.intersect(dfa, numbers.multiple_of(step))
    return dfa


def _fraction_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@functools.lru_cache(maxsize=1024)
def _pattern_automaton(pattern: str, location: str) -> Dfa:
    return automaton.from_regex(parse_pattern(pattern, location))


def _checked_value(value: Any, location: str) -> Any:
    """A JSON value from the schema (enum, const): finite numbers, text that UTF-8 can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError("NaN and Infinity are not JSON values", location)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaError("a string holds a lone surrogate", location) from None
    if isinstance(value, list):
        for item in value:
            _checked_value(item, location)
    if isinstance(value, dict):
        for key, item in value.items():
            _checked_value(key, location)
            _checked_value(item, location)
    return value


def _resolve_pointer(document: Any, pointer: str, location: str) -> Any:
    target = document
    fragment = unquote(pointer[1:])
    if not fragment:
        return target
    if not fragment.startswith("/"):
        raise SchemaError(f"$ref {pointer!r}: only JSON pointers ('#/...') are supported", location)
    for token in fragment[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            raise SchemaError(f"$ref {pointer!r} points at nothing in the schema", location)
    return target


def _identity(node: Node) -> tuple:
    return ("ref", node.name) if isinstance(node, Ref) else ("node", id(node))


def _min_bound(first: int | None, second: int | None) -> int | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _union(options: list[Node]) -> Node:
    flat: list[Node] = []
    for option in options:
        flat.extend(option.options if isinstance(option, Union_) else [option])
    if any(isinstance(option, AnyValue) for option in flat):
        return AnyValue()
    alive = [option for option in flat if not isinstance(option, Never)]
    if not alive:
        strong = [option for option in flat if isinstance(option, Never) and not option.weak]
        return strong[0] if strong else flat[0]
    return alive[0] if len(alive) == 1 else Union_(tuple(alive))


# -- membership of a literal value ---------------------------------------------------------------------


def _accepts(node: Node, value: Any, definition: Callable[[str], tuple[Node, ...]]) -> bool:
    """Whether JSON ``value`` is in the language of ``node`` (used to filter enum and const)."""
    if isinstance(node, Never):
        return False
    if isinstance(node, AnyValue):
        return True
    if isinstance(node, Ref):
        return all(_accepts(part, value, definition) for part in definition(node.name))
    if isinstance(node, Union_):
        return any(_accepts(option, value, definition) for option in node.options)
    if isinstance(node, Literal):
        return _same_json(node.value, value)
    if isinstance(node, Boolean):
        return isinstance(value, bool)
    if isinstance(node, Null):
        return value is None
    if isinstance(node, Number):
        return _is_number(value) and node.dfa.accepts(_number_text(value, node.integer))
    if isinstance(node, Text):
        return (isinstance(value, str) and node.dfa.accepts(value) and len(value) >= node.min_length
                and (node.max_length is None or len(value) <= node.max_length))
    if isinstance(node, Array):
        return _array_accepts(node, value, definition)
    return _object_accepts(node, value, definition)


def _array_accepts(node: Array, value: Any, definition) -> bool:
    if not isinstance(value, list) or len(value) < node.min_items:
        return False
    if node.max_items is not None and len(value) > node.max_items:
        return False
    for index, item in enumerate(value):
        schema = node.prefix[index] if index < len(node.prefix) else node.rest
        if not _accepts(schema, item, definition):
            return False
    return True


def _object_accepts(node: Object, value: Any, definition) -> bool:
    if not isinstance(value, dict) or len(value) < node.min_properties:
        return False
    if node.max_properties is not None and len(value) > node.max_properties:
        return False
    declared = {prop.name: prop for prop in node.properties}
    for prop in node.properties:
        if prop.required and prop.name not in value:
            return False
    for key, item in value.items():
        schema = declared[key].value if key in declared else node.additional
        if not _accepts(schema, item, definition):
            return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: int | float, integer: bool) -> str:
    """A number as the grammar would write it: integral values without a fraction."""
    number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _same_json(first: Any, second: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(first, bool) or isinstance(second, bool):
        return isinstance(first, bool) and isinstance(second, bool) and first == second
    if _is_number(first) and _is_number(second):
        return first == second
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(_same_json(a, b) for a, b in zip(first, second))
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(_same_json(first[key], second[key]) for key in first)
    return type(first) is type(second) and first == second


# -- phase 3: empty definitions, shortest outputs ------------------------------------------------------


def minimum_cost(node: Node, costs: dict[str, float]) -> float:
    """A lower bound on the characters any output of ``node`` takes in JSON and in Gemma's syntax
    (a control token counts as one character)."""
    if isinstance(node, Never):
        return INFINITE
    if isinstance(node, AnyValue):
        return 1
    if isinstance(node, Literal):
        return _literal_cost(node.value)
    if isinstance(node, Number):
        return node.dfa.min_length() if not node.dfa.is_empty() else INFINITE
    if isinstance(node, (Boolean, Null)):
        return 4
    if isinstance(node, Text):
        return 2 + max(node.min_length, node.dfa.min_length() or 0)
    if isinstance(node, Union_):
        return min(minimum_cost(option, costs) for option in node.options)
    if isinstance(node, Ref):
        return costs.get(node.name, INFINITE)
    if isinstance(node, Array):
        in_prefix = min(node.min_items, len(node.prefix))
        cost = 2 + max(0, node.min_items - 1) + sum(minimum_cost(item, costs) for item in node.prefix[:in_prefix])
        beyond = node.min_items - in_prefix
        return cost + (beyond * minimum_cost(node.rest, costs) if beyond else 0)
    required = [prop for prop in node.properties if prop.required]
    return 2 + max(0, len(required) - 1) + sum(len(prop.name) + 1 + minimum_cost(prop.value, costs) for prop in required)


def _literal_cost(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, list):
        return 2 + max(0, len(value) - 1) + sum(_literal_cost(item) for item in value)
    if isinstance(value, dict):
        return 2 + max(0, len(value) - 1) + sum(len(key) + 1 + _literal_cost(item) for key, item in value.items())
    return len(json.dumps(value))


def restrict(tree: Tree, reject: Callable[[Node], str | None], limits: Limits = DEFAULT_LIMITS) -> Tree:
    """``tree`` without the leaves ``reject`` names a reason for (a syntax that cannot write them): an
    optional property or a union option goes away, a required one takes its object along. An
    unsatisfiable root is the SchemaError."""
    memo: dict[int, Node] = {}
    definitions = {name: _without_empty(body, {}, memo, reject) for name, body in tree.definitions.items()}
    root = _without_empty(tree.root, {}, memo, reject)
    return _prune(Tree(root, definitions), limits)[0]


def _prune(tree: Tree, limits: Limits) -> tuple[Tree, Tree]:
    """Definitions without a finite value become Never; so does every reference to them. Returns the
    tree (with only the definitions the root reaches) and a tree with every non-empty definition."""
    costs = {name: INFINITE for name in tree.definitions}
    for _ in range(len(costs) + 1):
        changed = False
        for name, body in tree.definitions.items():
            cost = minimum_cost(body, costs)
            if cost < costs[name]:
                costs[name] = cost
                changed = True
        if not changed:
            break
    empty = {name: (body.reason if isinstance(body, Never) else f"the definition {name!r} admits no finite value")
             for name, body in tree.definitions.items() if costs[name] == INFINITE}
    memo: dict[int, Node] = {}
    definitions = {name: _without_empty(body, empty, memo) for name, body in tree.definitions.items()
                   if name not in empty}
    root = _without_empty(tree.root, empty, memo)
    if isinstance(root, Never):
        raise SchemaError(f"no value can satisfy the schema: {root.reason}")
    cost = minimum_cost(root, costs)
    if limits.output_chars is not None and cost > limits.output_chars:
        raise SchemaError(f"the shortest value the schema allows takes {cost} characters, more than the "
                          f"longest output ({limits.output_chars} characters) can write")
    _check_left_recursion(root, definitions)
    return Tree(root, _reachable(root, definitions)), Tree(root, definitions)


def _without_empty(node: Node, empty: dict[str, str], memo: dict[int, Node],
                   reject: Callable[[Node], str | None] | None = None) -> Node:
    key = id(node)
    if key in memo:
        return memo[key]
    result = _rebuild(node, empty, memo, reject)
    memo[key] = result
    return result


def _rebuild(node: Node, empty: dict[str, str], memo: dict[int, Node],
             reject: Callable[[Node], str | None] | None) -> Node:
    again = lambda child: _without_empty(child, empty, memo, reject)  # noqa: E731
    reason = reject(node) if reject is not None else None
    if reason is not None:
        return Never(reason)
    if isinstance(node, Ref):
        return Never(empty[node.name]) if node.name in empty else node
    if isinstance(node, Union_):
        return _union([again(option) for option in node.options])
    if isinstance(node, Array):
        prefix = tuple(again(item) for item in node.prefix)
        rest = again(node.rest)
        if all(new is old for new, old in zip(prefix, node.prefix)) and rest is node.rest:
            return node
        return make_array(prefix, rest, node.min_items, node.max_items, "", None)
    if isinstance(node, Object):
        properties = tuple(Property(prop.name, again(prop.value), prop.required) for prop in node.properties)
        additional = again(node.additional)
        if all(new.value is old.value for new, old in zip(properties, node.properties)) and additional is node.additional:
            return node
        return make_object(properties, additional, node.extra_keys, node.min_properties, node.max_properties, "")
    return node


def _check_left_recursion(root: Node, definitions: dict[str, Node]) -> None:
    """A definition that is, through unions and references alone, itself (``anyOf: [{$ref: '#'}, ...]``)
    would be a left-recursive grammar: refuse it by name."""
    def heads(node: Node) -> list[str]:
        if isinstance(node, Ref):
            return [node.name]
        if isinstance(node, Union_):
            return [name for option in node.options for name in heads(option)]
        return []

    for start in definitions:
        seen, todo = set(), heads(definitions[start])
        while todo:
            name = todo.pop()
            if name == start:
                raise SchemaError(f"$ref {start!r} reaches itself without passing through an object or array")
            if name not in seen and name in definitions:
                seen.add(name)
                todo.extend(heads(definitions[name]))


def _reachable(root: Node, definitions: dict[str, Node]) -> dict[str, Node]:
    found: dict[str, Node] = {}
    todo = [root]
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Ref) and node.name in definitions and node.name not in found:
            found[node.name] = definitions[node.name]
            todo.append(definitions[node.name])
        elif isinstance(node, Union_):
            todo.extend(node.options)
        elif isinstance(node, Array):
            todo.extend(node.prefix + (node.rest,))
        elif isinstance(node, Object):
            todo.extend([prop.value for prop in node.properties] + [node.additional])
    return found


# -- the root of a tool's parameters ------------------------------------------------------------------


def objects_only(tree: Tree) -> Tree:
    """The tree's root restricted to objects (a tool call's arguments are always ``{...}``)."""
    root = _objects_in(tree.root, tree, 0)
    if isinstance(root, Never):
        raise SchemaError("the parameters of a tool must allow an object")
    return Tree(root, _reachable(root, tree.definitions))


def _objects_in(node: Node, tree: Tree, depth: int) -> Node:
    if depth > 64:
        raise SchemaError("the parameters' $ref chain is too long")
    if isinstance(node, (Object, Never)):
        return node
    if isinstance(node, AnyValue):
        return Object((), AnyValue(), True)
    if isinstance(node, Literal):
        return node if isinstance(node.value, dict) else Never("not an object")
    if isinstance(node, Union_):
        return _union([_objects_in(option, tree, depth + 1) for option in node.options])
    if isinstance(node, Ref):
        body = tree.definitions[node.name]
        inner = _objects_in(body, tree, depth + 1)
        return node if inner is body else inner
    return Never("not an object")


# -- oneOf: exactly one --------------------------------------------------------------------------------


def _check_exclusive(options: tuple[Node, ...], tree: Tree, location: str) -> None:
    """``oneOf`` is enforced as a union when no value can match two options; else it is refused."""
    for first in range(len(options)):
        for second in range(first + 1, len(options)):
            if not _disjoint(options[first], options[second], tree, 0):
                raise SchemaError(f"oneOf options {first} and {second} can match the same value, so 'exactly "
                                  "one' cannot be enforced (anyOf can)", location)


def _disjoint(first: Node, second: Node, tree: Tree, depth: int) -> bool:
    """True only when provably no value satisfies both (conservative: False when unsure)."""
    if depth > 16:
        return False
    first, second = _follow(first, tree), _follow(second, tree)
    if isinstance(first, Never) or isinstance(second, Never):
        return True
    if isinstance(first, AnyValue) or isinstance(second, AnyValue):
        return False
    if isinstance(first, Union_):
        return all(_disjoint(option, second, tree, depth + 1) for option in first.options)
    if isinstance(second, Union_):
        return all(_disjoint(first, option, tree, depth + 1) for option in second.options)
    if isinstance(second, Literal):
        first, second = second, first
    if isinstance(first, Literal):
        return not _accepts(second, first.value, lambda name: (tree.definitions.get(name, Never("")),))
    if type(first) is not type(second):
        return True
    if isinstance(first, Number) or isinstance(first, Text):
        return automaton.intersect(first.dfa, second.dfa).is_empty()
    if isinstance(first, Object):
        return _objects_disjoint(first, second, tree, depth)
    if isinstance(first, Array):
        return (first.max_items is not None and first.max_items < second.min_items) or \
               (second.max_items is not None and second.max_items < first.min_items)
    return False


def _objects_disjoint(first: Object, second: Object, tree: Tree, depth: int) -> bool:
    left = {prop.name: prop for prop in first.properties}
    right = {prop.name: prop for prop in second.properties}
    for name, prop in left.items():
        other = right[name].value if name in right else second.additional
        if prop.required and (isinstance(other, Never) or (name not in right and not second.extra_keys
                                                            and isinstance(second.additional, Never))):
            return True
        if prop.required and name in right and right[name].required and \
                _disjoint(prop.value, right[name].value, tree, depth + 1):
            return True
    for name, prop in right.items():
        other = left[name].value if name in left else first.additional
        if prop.required and isinstance(other, Never):
            return True
    return False


def _follow(node: Node, tree: Tree) -> Node:
    seen = set()
    while isinstance(node, Ref) and node.name not in seen:
        seen.add(node.name)
        node = tree.definitions.get(node.name, Never(f"{node.name} is empty"))
    return node
