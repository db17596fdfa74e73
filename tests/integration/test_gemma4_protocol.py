"""Gemma 4's protocol through the real server on the tiny random test model, with the openai SDK.

The weights are random, so only what the grammar and the parser guarantee is asserted, over many seeds:
every forced call and every JSON answer is valid, and no control marker ever reaches the client.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import pydantic
import pytest

from edge.formats.gemma4_parser import MARKERS

MODEL = "gemma4-tiny"
SEEDS = range(20)
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "detailed": {"type": "boolean"},
        "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                  "required": ["lat", "lon"]},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["rain", "wind"]}, "maxItems": 2},
    },
    "required": ["city", "unit", "where"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                      "parameters": WEATHER_PARAMETERS}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time.",
                                      "parameters": {"type": "object", "properties": {
                                          "zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"]}}},
]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"},
                   "colour": {"type": "string", "enum": ["red", "green"]},
                   "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 3}},
    "required": ["name", "age", "colour"], "additionalProperties": False,
}
# the demo model's vocabulary is 262,144 tokens: every grammar step checks them all, so keep it short
DEMO_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"},
                   "colour": {"type": "string", "enum": ["red", "green"]}},
    "required": ["name", "age", "colour"], "additionalProperties": False,
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


def assert_no_markers(*texts):
    for text in texts:
        for marker in MARKERS:
            assert marker not in (text or ""), (marker, text)


def assert_valid_calls(message, allowed=SCHEMAS):
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, allowed[call.function.name])
    assert_no_markers(message.content)


@pytest.mark.parametrize("seed", SEEDS)
def test_required_tool_call_is_valid(gemma4_client, seed):
    response = gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", seed=seed, max_tokens=300,
        temperature=1.0, extra_body={"enable_thinking": False})
    assert response.choices[0].finish_reason == "tool_calls"
    assert_valid_calls(response.choices[0].message)


@pytest.mark.parametrize("seed", SEEDS)
def test_named_tool_call_with_thinking_is_valid(gemma4_client, seed):
    response = gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, seed=seed, max_tokens=300, temperature=1.0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
        extra_body={"thinking_budget": 8})
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in message.tool_calls] == ["get_weather"]
    assert_valid_calls(message, {"get_weather": WEATHER_PARAMETERS})
    assert_no_markers(getattr(message, "reasoning_content", None))


def test_streamed_tool_call_has_stable_index_and_id(gemma4_client):
    stream = gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", seed=3, max_tokens=300,
        stream=True, extra_body={"enable_thinking": False})
    deltas = [tc for chunk in stream for choice in chunk.choices for tc in (choice.delta.tool_calls or [])]
    assert deltas
    by_index = {}
    for delta in deltas:
        by_index.setdefault(delta.index, []).append(delta)
    for index, parts in by_index.items():
        assert parts[0].id and parts[0].function.name
        assert {part.id for part in parts if part.id} == {parts[0].id}
        arguments = "".join(part.function.arguments or "" for part in parts)
        jsonschema.validate(json.loads(arguments), SCHEMAS[parts[0].function.name])


@pytest.mark.parametrize("seed", range(6))
def test_auto_tool_choice_never_leaks_and_any_call_is_valid(gemma4_client, seed):
    response = gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, seed=seed, max_tokens=60, temperature=1.0,
        extra_body={"enable_thinking": False})
    message = response.choices[0].message
    assert_no_markers(message.content)
    if message.tool_calls and response.choices[0].finish_reason == "tool_calls":
        assert_valid_calls(message)


def test_tool_choice_none_calls_nothing(gemma4_client):
    for seed in range(5):
        response = gemma4_client.chat.completions.create(
            model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none", seed=seed, max_tokens=40,
            extra_body={"enable_thinking": False})
        assert not response.choices[0].message.tool_calls
        assert response.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("thinking", [False, True])
def test_json_schema_output_is_valid(gemma4_client, seed, thinking):
    response = gemma4_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Describe a person."}], seed=seed, max_tokens=300,
        temperature=1.0, response_format={"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                                               "schema": ANSWER_SCHEMA}},
        extra_body={"enable_thinking": thinking, "thinking_budget": 6})
    content = response.choices[0].message.content
    assert not content.startswith("```")
    jsonschema.validate(json.loads(content), ANSWER_SCHEMA)
    assert response.choices[0].finish_reason == "stop"


def test_json_object_output_is_a_json_object(gemma4_client, gemma4_models):
    """The random test model rarely closes a free-form object within max_tokens (1 in 20 seeds at 400
    tokens), so unfinished answers are checked as the start of an object, and a logit_bias towards `"` and
    `}` makes the model end its objects: those must parse as objects."""
    from gguf import GGUFReader

    field = GGUFReader(gemma4_models.text_gguf).fields["tokenizer.ggml.tokens"]
    vocabulary = [bytes(field.parts[index]).decode(errors="replace") for index in field.data]
    closing = {str(vocabulary.index(piece)): 6 for piece in ('"', "}")}
    for seed in range(3):
        for bias in ({}, closing):
            response = gemma4_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "JSON please"}], seed=seed, max_tokens=200,
                response_format={"type": "json_object"}, logit_bias=bias, extra_body={"enable_thinking": False})
            content, finish = response.choices[0].message.content, response.choices[0].finish_reason
            assert_no_markers(content)
            assert content.lstrip().startswith("{")
            if bias:
                assert finish == "stop", content
            if finish == "stop":
                assert isinstance(json.loads(content), dict)


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=10)
    colour: str = pydantic.Field(pattern="^(red|green)$")


def test_parse_with_a_pydantic_model(gemma4_client):
    completion = gemma4_client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "A person."}], response_format=Person, seed=1,
        max_tokens=200, extra_body={"enable_thinking": False})
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and person.colour in ("red", "green")


def test_thinking_goes_to_reasoning_content_never_content(gemma4_client):
    response = gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, seed=2, max_tokens=40, extra_body={"thinking_budget": 10})
    message = response.choices[0].message
    assert_no_markers(message.content, getattr(message, "reasoning_content", None))
    assert response.usage.completion_tokens_details.reasoning_tokens >= 1 or not getattr(message, "reasoning_content", None)


def test_thinking_off_means_no_reasoning_at_all(gemma4_client):
    for effort in ("low", "minimal"):
        response = gemma4_client.chat.completions.create(
            model=MODEL, messages=ASK, seed=2, max_tokens=30, reasoning_effort=effort)
        assert getattr(response.choices[0].message, "reasoning_content", None) is None
        assert response.usage.completion_tokens_details.reasoning_tokens == 0


def test_tool_result_round_trip(gemma4_client):
    first = gemma4_client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", seed=5, max_tokens=300,
        extra_body={"enable_thinking": False})
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21})}]
    second = gemma4_client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, seed=5,
                                                   max_tokens=10, extra_body={"enable_thinking": False})
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    assert_no_markers(second.choices[0].message.content)


@pytest.mark.parametrize("body, param", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 2}},
        "required": ["n"]}}}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}},
     "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"s": {"type": "array", "uniqueItems": True}}}}}], "tool_choice": "required"},
     "tools"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
])
def test_unenforceable_or_inconsistent_requests_are_400(gemma4_server, body, param):
    request = {"model": MODEL, "messages": ASK, "max_tokens": 5, **body}
    response = httpx.post(f"{gemma4_server.base_url}/v1/chat/completions", json=request, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("seed", SEEDS)
def test_json_schema_on_the_demo_model(openai_client, demo_model_id, seed):
    response = openai_client.chat.completions.create(
        model=demo_model_id, messages=[{"role": "user", "content": "Describe a person as JSON."}], seed=seed,
        max_tokens=120, temperature=1.0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": DEMO_SCHEMA}})
    jsonschema.validate(json.loads(response.choices[0].message.content), DEMO_SCHEMA)
