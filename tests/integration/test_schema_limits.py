"""Schemas that used to crash or stall the server: each now compiles and runs, or is a 400 naming the
parameter, and the server keeps serving (speed is measured by benchmarks/bench_schema_compile.py)."""

from __future__ import annotations

import json

import httpx
import pytest

MODEL = "gemma4-tiny"
ASK = [{"role": "user", "content": "Go."}]


def _response_format(schema):
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}


def _tool(parameters, choice="required"):
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}], "tool_choice": choice}


def _nested(depth):
    schema = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def _many_properties(count):
    return {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(count)},
            "required": [f"p{i}" for i in range(count)], "additionalProperties": False}


ACCEPTED = [
    pytest.param(_response_format({"type": "string", "maxLength": 100000}), id="maxLength-100000"),
    pytest.param(_response_format({"type": "array", "items": {"type": "integer"}, "maxItems": 100000}),
                 id="maxItems-100000"),
    pytest.param(_response_format({"type": "string", "minLength": 3000}), id="minLength-3000"),
    pytest.param(_response_format(_many_properties(3000)), id="3000-required-properties"),
    pytest.param(_response_format(_many_properties(10000)), id="10000-required-properties"),
    pytest.param(_tool({"type": "object", "properties": {"s": {"type": "string", "maxLength": 100000},
                                                         "xs": {"type": "array", "maxItems": 100000}},
                        "required": ["s"]}), id="tool-maxLength-100000"),
    # a tool is rendered into the prompt too: 200 properties still fit the 8,192-token context
    pytest.param(_tool(_many_properties(200), "auto"), id="tool-auto-200-properties"),
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_huge_bounds_compile_and_run(gemma4_server, body):
    request = {"model": MODEL, "messages": ASK, "max_tokens": 8, "enable_thinking": False, **body}
    response = httpx.post(f"{gemma4_server.base_url}/v1/chat/completions", json=request, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] in ("length", "stop", "tool_calls")


REFUSED = [
    pytest.param(_response_format({"type": "array", "minItems": 5, "maxItems": 2}), "response_format", "5 items",
                 id="minItems-above-maxItems"),
    pytest.param(_response_format({"type": "object", "required": ["x"], "additionalProperties": False}),
                 "response_format", "'x'", id="required-but-forbidden"),
    pytest.param(_response_format({"enum": []}), "response_format", "enum", id="empty-enum"),
    pytest.param(_response_format(_nested(300)), "response_format", "nested more than 64 levels", id="nested-300"),
    pytest.param(_response_format({"type": "object", "properties": {"a": {"not": {}}}}), "response_format",
                 "'not'", id="not"),
    pytest.param(_tool({"type": "object", "properties": 5}), "tools", "properties", id="properties-a-number"),
    pytest.param(_tool({"type": "object", "properties": [{"type": "string"}]}), "tools", "properties",
                 id="properties-a-list"),
    pytest.param(_tool(_nested(300), "none"), "tools", "nested more than 64 levels", id="tool-nested-300-even-with-none"),
    pytest.param(_tool({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}), "tools",
                 "uniqueItems", id="tool-uniqueItems"),
]


@pytest.mark.parametrize("body, param, named", REFUSED)
def test_unsatisfiable_or_malformed_schemas_are_400(gemma4_server, body, param, named):
    request = {"model": MODEL, "messages": ASK, "max_tokens": 8, **body}
    response = httpx.post(f"{gemma4_server.base_url}/v1/chat/completions", json=request, timeout=120)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # the body's own depth limit (64) names the exact path; the schema layer names the parameter
    assert error["param"].split(".")[0].split("[")[0] == param and named in error["message"], error


@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_nan_and_infinity_inside_a_schema_are_400(gemma4_server, where):
    schema = '{"type": "object", "properties": {"n": {"type": "number", "maximum": NaN, "minimum": -Infinity}}}'
    if where == "response_format":
        body = f'{{"model": "{MODEL}", "messages": {json.dumps(ASK)}, "max_tokens": 4, "response_format": ' \
               f'{{"type": "json_schema", "json_schema": {{"name": "x", "schema": {schema}}}}}}}'
    else:
        body = f'{{"model": "{MODEL}", "messages": {json.dumps(ASK)}, "max_tokens": 4, "tool_choice": "required", ' \
               f'"tools": [{{"type": "function", "function": {{"name": "f", "parameters": {schema}}}}}]}}'
    response = httpx.post(f"{gemma4_server.base_url}/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 400, response.text
    assert httpx.get(f"{gemma4_server.base_url}/health", timeout=10).status_code == 200


def test_responses_and_messages_refuse_with_their_400(gemma4_server):
    bad = {"type": "array", "minItems": 5, "maxItems": 2}
    responses = httpx.post(f"{gemma4_server.base_url}/v1/responses", timeout=60, json={
        "model": MODEL, "input": "Go.", "max_output_tokens": 4,
        "text": {"format": {"type": "json_schema", "name": "x", "schema": bad}}})
    assert responses.status_code == 400, responses.text
    messages = httpx.post(f"{gemma4_server.base_url}/v1/messages", timeout=60, json={
        "model": MODEL, "max_tokens": 4, "messages": ASK,
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"a": bad}, "required": ["a"]}}],
        "tool_choice": {"type": "any"}})
    assert messages.status_code == 400, messages.text
    assert "5 items" in messages.text
