"""Property: every generated schema either compiles within budget or is refused with a SchemaError, and
every text sampled from a compiled grammar validates with jsonschema (format checks on), as JSON output
and, read back by the project's Gemma 4 parser, as the arguments of a tool call.

Sampling is a random walk through llama.cpp's grammar engine over the tiny Gemma 4 vocabulary: each
token is drawn uniformly from those the grammar allows, so the walk explores the grammar itself (a
model would only show what it likes). The schemas keep strings and arrays short so that walks end.
"""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.core.request import ToolSpec
from edge.formats.gemma4_grammar import tool_call_grammar
from edge.formats.gemma4_values import coerce_to_schema, parse_call
from edge.schema import SchemaError, json_grammar

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER
NAMES = ("id", "name", "tags", "when", "size", "kind", "note")
PATTERNS = ("^[a-z]{1,6}$", "^[A-Z][a-z]*-\\d{1,3}$", "^(yes|no|maybe)$", "x+y?", "^\\d{2}:\\d{2}$")
STRING_FORMATS = ("date", "date-time", "time", "uuid", "ipv4", "ipv6", "email", "hostname", "uri", "duration")
DECIMALS = (-2.5, -1, -0.25, 0, 0.1, 0.5, 1, 3.75, 10)


def _strings():
    return st.one_of(
        st.builds(lambda low, extra: {"type": "string", "minLength": low, "maxLength": low + extra},
                  st.integers(0, 4), st.integers(0, 4)),
        st.builds(lambda pattern: {"type": "string", "pattern": pattern}, st.sampled_from(PATTERNS)),
        st.builds(lambda name: {"type": "string", "format": name}, st.sampled_from(STRING_FORMATS)),
        st.builds(lambda values: {"type": "string", "enum": values},
                  st.lists(st.text("abc<|>\"\\ \n", min_size=0, max_size=4), min_size=1, max_size=3, unique=True)),
        st.builds(lambda low, high: {"type": "string", "minLength": low, "maxLength": high},
                  st.integers(3, 6), st.integers(0, 2)),  # unsatisfiable: refused
    )


def _numbers():
    def bounded(kind, low, width, exclusive, step):
        schema = {"type": kind}
        if low is not None:
            schema["exclusiveMinimum" if exclusive else "minimum"] = low
        if width is not None:
            schema["maximum"] = (low or 0) + width
        if step is not None:
            schema["multipleOf"] = step
        return schema

    return st.one_of(
        st.builds(bounded, st.just("integer"), st.none() | st.integers(-50, 50), st.none() | st.integers(1, 80),
                  st.booleans(), st.none() | st.sampled_from((2, 3, 5, 10))),
        st.builds(bounded, st.just("number"), st.none() | st.sampled_from(DECIMALS),
                  st.none() | st.sampled_from((0.5, 1, 2.25, 10)), st.booleans(),
                  st.none() | st.sampled_from((0.25, 0.5, 2))),
    )


def _leaves():
    return st.one_of(_strings(), _numbers(), st.just({"type": "boolean"}), st.just({"type": "null"}),
                     st.builds(lambda values: {"enum": values},
                               st.lists(st.sampled_from([1, "a", None, True, 2.5, [1], {"k": "v"}]), min_size=1,
                                        max_size=3, unique_by=json.dumps)))


def _containers(children):
    def obj(properties, required_mask, extra):
        names = list(properties)
        schema = {"type": "object", "properties": properties,
                  "required": [name for name, keep in zip(names, required_mask) if keep]}
        schema["additionalProperties"] = extra
        if extra is not False:
            schema["maxProperties"] = len(names) + 1
        return schema

    def array(items, low, extra, prefix):
        schema = {"type": "array", "items": items, "minItems": low, "maxItems": low + extra}
        if prefix is not None:
            schema["prefixItems"] = [prefix]
        return schema

    return st.one_of(
        st.builds(obj, st.dictionaries(st.sampled_from(NAMES), children, min_size=1, max_size=3),
                  st.lists(st.booleans(), min_size=3, max_size=3), st.sampled_from([False, {"type": "integer"}])),
        st.builds(array, children, st.integers(0, 2), st.integers(0, 2), st.none() | children),
        st.builds(lambda first, second: {"anyOf": [first, second]}, children, children),
        st.builds(lambda first, second: {"allOf": [{"type": "object", "properties": {"a": first}, "required": ["a"]},
                                                   {"properties": {"b": second}}]}, children, children),
        st.just({"$ref": "#/$defs/tree"}),
    )


TREE = {"type": "object", "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9},
                                         "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}, "maxItems": 2}},
        "required": ["v"], "additionalProperties": False}


def _with_definitions(schema):
    """References resolve against the document root, so the definitions live there."""
    return {**schema, "$defs": {"tree": TREE}} if "#/$defs/tree" in json.dumps(schema) else schema


def _rooted(schema):
    return st.one_of(st.just(_with_definitions(schema)),
                     st.just({"$defs": {"inner": schema, "tree": TREE}, "$ref": "#/$defs/inner"}))


SCHEMAS = st.recursive(_leaves(), _containers, max_leaves=4).flatmap(_rooted)


def _validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


@pytest.fixture(scope="module")
def tally():
    """Counts across all examples, so that the property cannot hold by never being tested."""
    counts = {"refused": 0, "validated": 0, "calls": 0}
    yield counts
    assert counts["refused"] >= 2 and counts["validated"] >= 50 and counts["calls"] >= 15, counts


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(schema=SCHEMAS)
def test_every_schema_compiles_or_is_refused_and_samples_validate(probe, tally, schema):
    try:
        grammar = json_grammar(schema)
    except SchemaError:
        tally["refused"] += 1
        return
    assert probe.compiles(grammar)
    validator = _validator(schema)
    rng = random.Random(json.dumps(schema, sort_keys=True))
    for _ in range(2):
        text = probe.sample(grammar, rng)
        if text is not None:
            errors = [error.message for error in validator.iter_errors(json.loads(text))]
            assert not errors, (text, errors)
            tally["validated"] += 1
    try:
        calls = tool_call_grammar([ToolSpec("answer", "", schema)], parallel=False, token=probe.token, thinking=False)
    except SchemaError as error:  # no object, or nothing Gemma's syntax can write: never a tool's parameters
        assert "must allow an object" in str(error) or "Gemma's call syntax" in str(error)
        return
    text = probe.sample(calls, rng)
    if text is not None:
        name, arguments = parse_call(text.removeprefix("<|tool_call>").removesuffix("<tool_call|>"))
        arguments = coerce_to_schema(arguments, schema)
        errors = [error.message for error in validator.iter_errors(arguments)]
        assert name == "answer" and not errors, (text, errors)
        tally["calls"] += 1
