"""Property: every generated schema either compiles within budget or is refused with a SchemaError, and
whatever the tiny Gemma 4 samples under a compiled grammar validates with jsonschema (format checks on),
as JSON output and as the arguments of a forced tool call.

The model's weights are random, so its outputs explore the grammar rather than any sensible answer;
the schemas keep strings and arrays short so that outputs end within ``max_tokens``.
"""

from __future__ import annotations

import json
import threading

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.core.events import Finish, TextDelta, ToolCallDelta
from edge.core.request import GenerationRequest, Message, ResponseFormat, SamplingParams, TextPart, ToolChoice, ToolSpec
from edge.errors import InvalidRequestError
from edge.runtime.engine import Engine, EngineConfig
from edge.runtime.sources import resolve_model
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
    def bounded(kind, low, high, exclusive, step):
        schema = {"type": kind}
        if low is not None:
            schema["exclusiveMinimum" if exclusive else "minimum"] = low
        if high is not None:
            schema["maximum"] = high
        if step is not None:
            schema["multipleOf"] = step
        return schema

    bound = st.none() | st.sampled_from(DECIMALS)
    return st.one_of(
        st.builds(bounded, st.just("integer"), st.none() | st.integers(-50, 50), st.none() | st.integers(-50, 50),
                  st.booleans(), st.none() | st.sampled_from((2, 3, 5, 10))),
        st.builds(bounded, st.just("number"), bound, bound, st.booleans(), st.none() | st.sampled_from((0.25, 0.5, 2))),
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
        st.builds(lambda inner: {"$defs": {"inner": inner}, "$ref": "#/$defs/inner"}, children),
        st.builds(lambda first, second: {"allOf": [{"type": "object", "properties": {"a": first}, "required": ["a"]},
                                                   {"properties": {"b": second}}]}, children, children),
        st.just({"$defs": {"tree": {"type": "object", "properties": {
            "v": {"type": "integer", "minimum": 0, "maximum": 9},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}, "maxItems": 2}},
            "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/tree"}),
    )


SCHEMAS = st.recursive(_leaves(), _containers, max_leaves=6)


@pytest.fixture(scope="module")
def engine(gemma4_models, tmp_path_factory):
    loaded = Engine.load(resolve_model(str(gemma4_models.text_gguf), None, tmp_path_factory.mktemp("cache")),
                         EngineConfig(ctx_size=1024, threads=2))
    yield loaded
    loaded.close()


def _run(engine: Engine, request: GenerationRequest):
    events = list(engine.generate(engine.prepare(request), threading.Event()))
    finish = next(event for event in events if isinstance(event, Finish))
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    calls = [event for event in events if isinstance(event, ToolCallDelta)]
    return finish.reason, text, calls


def _validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


ASK = (Message("user", (TextPart("Answer."),)),)


@pytest.fixture(scope="module")
def tally():
    """Counts across all examples, so that the property cannot hold by never being tested."""
    counts = {"refused": 0, "validated": 0, "calls": 0}
    yield counts
    assert counts["refused"] >= 1 and counts["validated"] >= 30 and counts["calls"] >= 5, counts


@settings(max_examples=45, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(schema=SCHEMAS)
def test_every_schema_compiles_or_is_refused_and_samples_validate(engine, tally, schema):
    try:
        json_grammar(schema)
    except SchemaError:
        with pytest.raises(InvalidRequestError):
            engine.prepare(GenerationRequest(messages=ASK, response_format=ResponseFormat("json_schema", schema)))
        tally["refused"] += 1
        return
    validator = _validator(schema)
    for seed in (1, 2):
        request = GenerationRequest(messages=ASK, max_tokens=160, response_format=ResponseFormat("json_schema", schema),
                                    sampling=SamplingParams(temperature=1.0, seed=seed))
        reason, text, _ = _run(engine, request)
        if reason == "stop":
            errors = [error.message for error in validator.iter_errors(json.loads(text))]
            assert not errors, (text, errors)
            tally["validated"] += 1
    if schema.get("type") == "object":
        tool = ToolSpec("answer", "", schema)
        request = GenerationRequest(messages=ASK, max_tokens=160, tools=(tool,), tool_choice=ToolChoice("required"),
                                    sampling=SamplingParams(temperature=1.0, seed=3))
        reason, _, calls = _run(engine, request)
        if reason == "tool_calls":
            for call in calls:
                errors = [error.message for error in validator.iter_errors(json.loads(call.arguments))]
                assert not errors, (call.arguments, errors)
                tally["calls"] += 1
