"""Every keyword of the schema layer, table-driven, through llama.cpp's own grammar engine.

Each case lists JSON texts the grammar must accept (and jsonschema, format checks on, must find
valid), texts it must reject (and jsonschema must find invalid), and texts that are valid JSON for the
schema but that the grammar never writes (its canonical spelling is narrower, never looser). Every case
runs twice: as JSON output, and as the argument of a Gemma 4 tool call in Gemma's own syntax.
"""

from __future__ import annotations

import json
from decimal import Decimal

import jsonschema
import pytest

from edge.core.request import ToolSpec
from edge.formats.gemma4_grammar import tool_call_grammar
from edge.schema import SchemaError, json_grammar

QUOTE = '<|"|>'
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def case(name, schema, accept=(), reject=(), narrow=(), validate_as=None):
    """``validate_as``: the schema jsonschema checks the texts against, where it lacks a keyword (OpenAPI's
    ``nullable``)."""
    return pytest.param(schema, list(accept), list(reject), list(narrow), validate_as, id=name)


CASES = [
    # strings
    case("minLength-maxLength", {"type": "string", "minLength": 2, "maxLength": 4},
         ['"ab"', '"abcd"', '"é\\n"'], ['"a"', '"abcde"', '""']),
    case("maxLength-escapes-count-once", {"type": "string", "maxLength": 2}, ['"\\"\\\\"', '"\\u0001x"'],
         ['"\\"\\\\x"']),
    case("control-characters-escaped", {"type": "string"}, ['"a\\tb\\nc"'], ['"a\tb"', '"a\nb"']),
    case("pattern-anchored", {"type": "string", "pattern": "^[a-z]{2,3}-\\d+$"}, ['"ab-1"', '"abc-123"'],
         ['"a-1"', '"abcd-1"', '"ab-"', '"AB-1"']),
    case("pattern-unanchored-searches", {"type": "string", "pattern": "ab"}, ['"ab"', '"xxaby"'], ['"ba"', '""']),
    case("pattern-alternation-groups", {"type": "string", "pattern": "^(?:red|gr(?:ee|a)n)$"},
         ['"red"', '"green"', '"gran"'], ['"grn"', '"redd"']),
    case("pattern-classes-escapes", {"type": "string", "pattern": "^[\\w.-]+@\\S+\\.[a-z]{2}$"},
         ['"a.b-c@x.io"'], ['"a b@x.io"', '"a@x.i"']),
    case("pattern-and-lengths", {"type": "string", "pattern": "^[a-c]+$", "minLength": 2, "maxLength": 3},
         ['"ab"', '"cba"'], ['"a"', '"abca"', '"ad"']),
    case("pattern-astral-and-negated", {"type": "string", "pattern": "^[^a-z]{1,2}$"}, ['"😀"', '"Z9"'],
         ['"a"', '"ZZZ"']),
    case("format-date-time", {"type": "string", "format": "date-time"},
         ['"2024-02-29T23:59:59Z"', '"1999-12-31T00:00:00.123456+05:30"'],
         ['"2023-02-29T00:00:00Z"', '"2024-13-01T00:00:00Z"', '"2024-01-01 00:00:00Z"'],
         ['"2024-01-01T00:00:00z"']),
    case("format-date", {"type": "string", "format": "date"}, ['"2000-02-29"', '"0001-01-01"'],
         ['"1900-02-29"', '"2021-04-31"', '"21-04-01"']),
    case("format-time", {"type": "string", "format": "time"}, ['"23:59:59Z"', '"08:30:00.5-02:00"'],
         ['"24:00:00Z"', '"12:60:00Z"']),
    case("format-duration", {"type": "string", "format": "duration"}, ['"P1Y2M3D"', '"PT5M"', '"P3W"', '"P1DT2H"'],
         ['"P"', '"PT"', '"1D"']),
    case("format-email", {"type": "string", "format": "email"}, ['"ann.lee+x@mail.example.com"'],
         ['"ann"'], ['"ann@localhost"', '"@x.com"', '"ann@"']),
    case("format-hostname", {"type": "string", "format": "hostname"}, ['"a-b.example.org"', '"localhost"'],
         ['"-a.com"', '"a..b"']),
    case("format-ipv4", {"type": "string", "format": "ipv4"}, ['"192.168.0.1"', '"0.0.0.0"'],
         ['"256.1.1.1"', '"1.2.3"', '"01.2.3.4"']),
    case("format-ipv6", {"type": "string", "format": "ipv6"}, ['"::1"', '"2001:db8::8a2e:370:7334"', '"::"'],
         ['"1::2::3"', '"12345::"', '"1:2:3:4:5:6:7:8:9"']),
    case("format-uuid", {"type": "string", "format": "uuid"}, ['"123e4567-e89b-12d3-a456-426614174000"'],
         ['"123e4567e89b12d3a456426614174000"', '"123e4567-e89b-12d3-a456-42661417400g"']),
    case("format-uri", {"type": "string", "format": "uri"}, ['"https://example.com/a/b?q=1#top"',
                                                            '"http://x.io:8080"'],
         ['"example.com"', '"/relative"']),
    case("format-unknown-is-an-annotation", {"type": "string", "format": "password"}, ['"anything"']),
    # numbers
    case("integer-range", {"type": "integer", "minimum": -3, "maximum": 12}, ["-3", "0", "12", "7"],
         ["-4", "13", "1.5"], ["1.0", "1e1"]),
    case("integer-exclusive", {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
         ["1", "99"], ["0", "100", "-1"]),
    case("integer-big-bounds", {"type": "integer", "minimum": 10**20}, ["100000000000000000000"],
         ["99999999999999999999"]),
    case("number-decimal-bounds", {"type": "number", "minimum": -1.25, "exclusiveMaximum": 2.5},
         ["-1.25", "0", "2.49", "2.4999", "-0.5"], ["-1.26", "2.5", "2.50", "3"], ["2e0"]),
    case("number-exclusive-zero", {"type": "number", "exclusiveMinimum": 0}, ["0.001", "5"], ["0", "0.0", "-0.1"],
         []),
    case("multipleOf-integer", {"type": "integer", "multipleOf": 3, "minimum": -10, "maximum": 10},
         ["-9", "0", "9"], ["1", "12", "-12"]),
    case("multipleOf-decimal", {"type": "number", "multipleOf": 0.25}, ["0.5", "-1.75", "3"], ["0.3", "1.1"]),
    case("int32-format", {"type": "integer", "format": "int32"}, ["2147483647", "-2147483648"],
         [], ["2147483648"]),  # jsonschema leaves int32 unchecked; OpenAPI means the range
    # arrays
    case("minItems-maxItems", {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
         ["[1]", "[1, 2, 3]"], ["[]", "[1,2,3,4]", '["a"]']),
    case("prefixItems-items-false", {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}],
                                     "items": False}, ['["a", true]', '["a"]', "[]"], ['["a", true, 1]', "[true]"]),
    case("prefixItems-then-items", {"type": "array", "prefixItems": [{"const": 1}], "items": {"type": "string"},
                                    "minItems": 2}, ['[1, "x"]', '[1, "x", "y"]'], ["[1]", '[2, "x"]']),
    case("tuple-items-draft7", {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
                                "items": [{"type": "integer"}], "additionalItems": False},
         ["[1]", "[]"], ["[1, 2]"]),
    # objects
    case("required-and-optional", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                                                    "c": {"type": "boolean"}}, "required": ["b"]},
         ['{"b": "x"}', '{"a": 1, "b": "x", "c": true}', '{"b": "x", "c": false}'],
         ['{"a": 1}', '{}', '{"b": 1}'], ['{"c": true, "b": "x"}', '{"b": "x", "z": 1}']),
    case("additionalProperties-false", {"type": "object", "properties": {"a": {"type": "integer"}},
                                        "additionalProperties": False}, ['{"a": 1}', '{}'], ['{"b": 1}']),
    case("additionalProperties-schema", {"type": "object", "properties": {"a": {"type": "integer"}},
                                         "additionalProperties": {"type": "integer", "maximum": 5}},
         ['{"a": 9, "x": 5}', '{"y": 1, "z": 2}'], ['{"x": 6}', '{"a": 1, "a": "s"}']),
    case("additionalProperties-true", {"type": "object", "additionalProperties": True},
         ['{"x": [1, {"y": null}], "z": "s"}', '{}']),
    case("maxProperties-over-extras", {"type": "object", "additionalProperties": {"type": "integer"},
                                       "maxProperties": 2}, ['{"a": 1, "b": 2}'], ['{"a": 1, "b": 2, "c": 3}']),
    case("defs-ref-recursion", {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
        "required": ["v", "next"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
         ['{"v": 1, "next": {"v": 2, "next": null}}'], ['{"v": 1}', '{"v": 1, "next": {"v": 2}}']),
    case("root-recursion", {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
                            "additionalProperties": False}, ['{"kids": [{"kids": []}, {}]}'], ['{"kids": [1]}']),
    # combinations
    case("anyOf", {"anyOf": [{"type": "integer", "maximum": 0}, {"type": "string", "maxLength": 1}]},
         ["-5", '"a"'], ["1", '"ab"']),
    case("oneOf-discriminated", {"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
         "required": ["kind", "lives"]},
        {"type": "object", "properties": {"kind": {"const": "dog"}, "good": {"type": "boolean"}},
         "required": ["kind", "good"]}], "discriminator": {"propertyName": "kind"}},
         ['{"kind": "cat", "lives": 9}', '{"kind": "dog", "good": true}'], ['{"kind": "cat", "good": true}']),
    case("allOf-objects", {"allOf": [
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]},
        {"properties": {"a": {"maximum": 5}, "b": {"type": "string"}}, "required": ["b"]}]},
         ['{"a": 5, "b": "x"}'], ['{"a": 6, "b": "x"}', '{"a": 1}']),
    case("allOf-respects-additionalProperties", {"allOf": [
        {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
        {"properties": {"b": {"type": "integer"}}}]}, ['{"a": 1}'], ['{"a": 1, "b": 2}']),
    case("ref-with-siblings", {"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n", "minimum": 2,
                               "description": "siblings apply too"}, ["2", "30"], ["1"]),
    case("enum-mixed", {"enum": ["a", 1, None, {"k": [True]}]}, ['"a"', "1", "null", '{"k": [true]}'],
         ['"b"', "2", "true"]),
    case("enum-filtered-by-type", {"type": "string", "enum": ["a", 1, "bb"], "maxLength": 1}, ['"a"'],
         ["1", '"bb"']),
    case("const", {"const": {"x": 1.5}}, ['{"x": 1.5}'], ['{"x": 1}']),
    case("nullable-type-list", {"type": ["string", "null"], "maxLength": 2}, ['"ab"', "null"], ["1", '"abc"']),
    case("nullable-openapi", {"type": "integer", "nullable": True}, ["3", "null"], ['"3"'],
         validate_as={"type": ["integer", "null"]}),
    case("annotations-ignored", {"type": "integer", "title": "t", "description": "d", "examples": [1], "default": 1,
                                 "deprecated": True, "readOnly": True, "writeOnly": False, "$comment": "c",
                                 "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x",
                                 "x-vendor": {"any": "thing"}}, ["1"], ['"1"']),
    case("empty-schema-any-value", {}, ['{"a": [1, "x", null, true, {"b": -2.5}]}', '"s"', "0"]),
    case("big-bounds-are-cheap", {"type": "array", "items": {"type": "string", "maxLength": 100000},
                                  "maxItems": 100000}, ['["' + "x" * 3000 + '", ""]']),
]


@pytest.mark.parametrize("schema, accept, reject, narrow, validate_as", CASES)
def test_json_grammar(probe, schema, accept, reject, narrow, validate_as):
    grammar = json_grammar(schema)
    checked = validate_as or schema
    validator = jsonschema.validators.validator_for(checked, default=jsonschema.Draft202012Validator)(
        checked, format_checker=FORMATS)
    for text in accept:
        assert validator.is_valid(json.loads(text)), f"test case wrong: {text} is invalid"
        assert probe.accepts(grammar, text), f"grammar rejects valid {text}"
    for text in reject:
        assert _invalid_json_or_value(validator, text), f"test case wrong: {text} is valid"
        assert not probe.accepts(grammar, text), f"grammar accepts invalid {text}"
    for text in narrow:
        assert validator.is_valid(json.loads(text)), f"test case wrong: {text} is invalid"
        assert not probe.accepts(grammar, text), f"{text} was expected outside the canonical spelling"


@pytest.mark.parametrize("schema, accept, reject, narrow, validate_as", CASES)
def test_gemma_call_grammar(probe, schema, accept, reject, narrow, validate_as):
    """The same case as the single argument ``v`` of a tool call in Gemma's syntax."""
    schema = {key: value for key, value in schema.items() if key != "$schema"}
    wrapped = {"type": "object", "properties": {"v": schema}, "required": ["v"], "additionalProperties": False}
    if "$defs" in schema:
        wrapped["$defs"] = schema["$defs"]
        wrapped["properties"] = {"v": {key: value for key, value in schema.items() if key != "$defs"}}
    direct = _refers_to_root(schema)  # '#' would mean the wrapper: the object schema is the parameters itself
    parameters = schema if direct else wrapped
    grammar = tool_call_grammar([ToolSpec("f", "", parameters)], parallel=False, token=probe.token, thinking=False)
    for text in accept:
        assert probe.accepts(grammar, _gemma_call(text, direct)), f"grammar rejects valid {text}"
    for text in reject:
        if _parses(text):
            assert not probe.accepts(grammar, _gemma_call(text, direct)), f"grammar accepts invalid {text}"


def _refers_to_root(schema) -> bool:
    return '"#"' in json.dumps(schema)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def _invalid_json_or_value(validator, text: str) -> bool:
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValueError:
        return True
    return not validator.is_valid(value)


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _gemma_call(json_text: str, direct: bool = False) -> str:
    value = json.loads(json_text, parse_float=Decimal)
    arguments = _gemma(value) if direct else f"{{v:{_gemma(value)}}}"
    return f"<|tool_call>call:f{arguments}<tool_call|>"


def _gemma(value) -> str:
    if isinstance(value, str):
        return f"{QUOTE}{value}{QUOTE}"
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{_gemma(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_gemma(item) for item in value) + "]"
    return str(value)


# -- refused: named keyword, named place ----------------------------------------------------------------

REFUSED = [
    ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "'not'", "properties.a.not"),
    ({"type": "array", "uniqueItems": True}, "'uniqueItems'", "uniqueItems"),
    ({"if": {"type": "string"}, "then": {"minLength": 1}}, "'if'", "if"),
    ({"type": "array", "contains": {"type": "integer"}}, "'contains'", "contains"),
    ({"type": "object", "patternProperties": {"^a": {}}}, "'patternProperties'", "patternProperties"),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, "'dependentRequired'", "dependentRequired"),
    ({"type": "object", "dependentSchemas": {"a": {}}}, "'dependentSchemas'", "dependentSchemas"),
    ({"type": "object", "propertyNames": {"maxLength": 3}}, "'propertyNames'", "propertyNames"),
    ({"type": "object", "unevaluatedProperties": False}, "'unevaluatedProperties'", "unevaluatedProperties"),
    ({"type": "array", "unevaluatedItems": False}, "'unevaluatedItems'", "unevaluatedItems"),
    ({"type": "string", "maxLenght": 3}, "unknown keyword 'maxLenght'", "maxLenght"),
    ({"type": "string", "pattern": "^(?=a)b$"}, "lookaround", "pattern"),
    ({"type": "string", "pattern": "^(a)\\1$"}, "backreference", "pattern"),
    ({"type": "string", "pattern": "\\bword\\b"}, "word boundary", "pattern"),
    ({"type": "string", "pattern": "^\\p{L}+$"}, "property escape", "pattern"),
    ({"type": "string", "format": "idn-email"}, "format 'idn-email'", "format"),
    ({"$ref": "https://example.com/schema.json"}, "only references inside the schema", "$ref"),
    ({"$ref": "#/$defs/missing"}, "points at nothing", "$ref"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "can match the same value", "oneOf"),
    ({"type": "integer", "minimum": float("nan")}, "NaN", "minimum"),
    ({"type": "object", "properties": 5}, "properties must be an object", "properties"),
    ({"type": "object", "properties": [{"type": "string"}]}, "properties must be an object", "properties"),
    ({"type": "strin"}, "unknown type 'strin'", "type"),
]


@pytest.mark.parametrize("schema, message, where", REFUSED)
def test_unenforceable_keywords_are_refused_by_name(schema, message, where):
    with pytest.raises(SchemaError) as raised:
        json_grammar(schema)
    assert message in str(raised.value)
    assert raised.value.location.endswith(where)


UNSATISFIABLE = [
    ({"type": "array", "minItems": 5, "maxItems": 2}, "needs 5 items but can hold at most 2"),
    ({"type": "string", "minLength": 3, "maxLength": 2}, "minLength 3 is greater than maxLength 2"),
    ({"enum": []}, "enum"),
    ({"type": "object", "required": ["x"], "additionalProperties": False}, "required property 'x'"),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer"),
    ({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, "no integer"),
    ({"type": "string", "pattern": "^a+$", "maxLength": 0}, "length"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "both types"),
    ({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}, "no finite value"),
    ({"type": "string", "const": "abc", "maxLength": 2}, "does not satisfy"),
]


@pytest.mark.parametrize("schema, message", UNSATISFIABLE)
def test_unsatisfiable_schemas_are_refused(schema, message):
    with pytest.raises(SchemaError) as raised:
        json_grammar(schema)
    assert message in str(raised.value)


def test_deep_nesting_is_refused_not_a_crash():
    schema = {"type": "string"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(SchemaError, match="deeper than"):
        json_grammar(schema)


def test_unreachable_bounds_follow_the_vocabulary():
    """With a vocabulary of 31-character pieces, 4,096 tokens spell at most 126,976 characters."""
    from edge.schema import limits_for_vocabulary

    limits = limits_for_vocabulary(31)
    with pytest.raises(SchemaError, match="more than the longest output"):
        json_grammar({"type": "string", "minLength": 200_000}, limits)
    with pytest.raises(SchemaError, match="more than the longest output"):
        json_grammar({"type": "array", "minItems": 200_000}, limits)
    assert "x1000000" not in json_grammar({"type": "string", "maxLength": 10**9}, limits)
    with pytest.raises(SchemaError, match="shortest value"):
        json_grammar({"type": "object", "properties": {f"p{i}": {"type": "string", "minLength": 100}
                                                       for i in range(2000)},
                      "required": [f"p{i}" for i in range(2000)]}, limits)


def test_gemma_strings_never_spell_a_marker(probe):
    tools = [ToolSpec("f", "", {"type": "object", "properties": {"s": {"type": "string"}}, "required": ["s"]})]
    grammar = tool_call_grammar(tools, parallel=False, token=probe.token, thinking=False)
    for text in ("a<b", "x|y", "|", "a>b", "<tool_call", "tool_call|", "1 < 2 | 3 > 0"):
        assert probe.accepts(grammar, f'<|tool_call>call:f{{s:{QUOTE}{text}{QUOTE}}}<tool_call|>'), text
    for text in ("<|tool_call>", "<tool_call|>", "a<|b", "a|>b", "<turn|>", "\0", "<", "ends with <"):
        assert not probe.accepts(grammar, f"<|tool_call>call:f{{s:{QUOTE}{text}{QUOTE}}}<tool_call|>"), text


def test_gemma_bounded_strings_keep_their_length_exactly(probe):
    tools = [ToolSpec("f", "", {"type": "object", "properties": {"s": {"type": "string", "minLength": 3,
                                                                      "maxLength": 5}}, "required": ["s"]})]
    grammar = tool_call_grammar(tools, parallel=False, token=probe.token, thinking=False)
    call = "<|tool_call>call:f{{s:{q}{text}{q}}}<tool_call|>"
    assert probe.accepts(grammar, call.format(q=QUOTE, text="a<|b".replace("|", "")))
    assert probe.accepts(grammar, call.format(q=QUOTE, text="a|b|c"))
    assert not probe.accepts(grammar, call.format(q=QUOTE, text="ab"))
    assert not probe.accepts(grammar, call.format(q=QUOTE, text="abcdef"))


def test_gemma_keys_bare_or_quoted(probe):
    tools = [ToolSpec("f", "", {"type": "object", "properties": {"plain_key": {"type": "integer"},
                                                                 "with space:colon": {"type": "integer"}},
                                "required": ["plain_key", "with space:colon"]})]
    grammar = tool_call_grammar(tools, parallel=False, token=probe.token, thinking=False)
    assert probe.accepts(grammar, f"<|tool_call>call:f{{plain_key:1,{QUOTE}with space:colon{QUOTE}:2}}<tool_call|>")


@pytest.mark.parametrize("parallel, max_calls, allowed", [(False, None, 1), (True, 2, 2), (True, None, 5)])
def test_number_of_calls(probe, parallel, max_calls, allowed):
    tools = [ToolSpec("f", "", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})]
    grammar = tool_call_grammar(tools, parallel=parallel, token=probe.token, thinking=False, max_calls=max_calls)
    call = "<|tool_call>call:f{n:1}<tool_call|>"
    assert probe.accepts(grammar, call * allowed)
    if max_calls is not None or not parallel:
        assert not probe.accepts(grammar, call * (allowed + 1))
    assert not probe.accepts(grammar, "")


def test_auto_grammar_is_lazy_until_a_call_opens(probe):
    tools = [ToolSpec("f", "", {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}},
                                "required": ["n"]})]
    grammar = tool_call_grammar(tools, parallel=True, token=probe.token, thinking=False)
    trigger = (probe.token("<|tool_call>"),)
    assert probe.accepts(grammar, "free text, then <|tool_call>call:f{n:3}<tool_call|>", triggers=trigger)
    assert not probe.accepts(grammar, "free text, then <|tool_call>call:f{n:4}<tool_call|>", triggers=trigger)


def test_thought_may_come_first(probe):
    from edge.formats.gemma4_grammar import json_output_grammar

    grammar = json_output_grammar({"type": "integer", "maximum": 9}, probe.token, thinking=True)
    assert probe.accepts(grammar, "<|channel>thought\nhmm, nine<channel|>9")
    assert probe.accepts(grammar, "7")
    assert not probe.accepts(grammar, "<|channel>thought\nhmm<channel|>10")


def test_every_grammar_compiles_in_llama_cpp(probe):
    for schema, *_ in [param.values for param in CASES]:
        assert probe.compiles(json_grammar(schema))


def test_max_tool_calls_reaches_the_format(probe):
    from edge.core.request import GenerationRequest, Message, TextPart, ToolChoice
    from edge.errors import InvalidRequestError
    from edge.formats.gemma4 import Gemma4Format

    gemma = Gemma4Format()
    tools = (ToolSpec("f", "", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),)
    ask = (Message("user", (TextPart("go"),)),)
    call = "<|tool_call>call:f{n:1}<tool_call|>"
    two = gemma.constraint(GenerationRequest(ask, tools=tools, tool_choice=ToolChoice("required"), max_tool_calls=2),
                           probe.token)
    assert probe.accepts(two.gbnf, call * 2) and not probe.accepts(two.gbnf, call * 3)
    none = GenerationRequest(ask, tools=tools, max_tool_calls=0)
    assert gemma.constraint(none, probe.token) is None and "<|tool_call>" in gemma.banned_tokens(none)
    with pytest.raises(InvalidRequestError) as raised:
        gemma.constraint(GenerationRequest(ask, tools=tools, tool_choice=ToolChoice("required"), max_tool_calls=0),
                         probe.token)
    assert raised.value.param == "max_tool_calls"
