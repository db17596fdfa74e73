"""Schemathesis against the real server on the demo model, driven by the server's own /openapi.json:
valid and invalid bodies for every operation, bounded examples and tiny outputs. 0 × 5xx, 0 crashes,
and every documented answer matches its response schema."""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from edge.server.openapi import openapi_document

EXAMPLES_PER_OPERATION = 25
SMALL_OUTPUT = 4  # tokens: the fuzz is about input handling, not about generating
OUTPUT_LIMITS = {"ChatCompletionRequest": ("max_tokens", "max_completion_tokens"),
                 "ResponsesRequest": ("max_output_tokens",), "MessagesRequest": ("max_tokens",)}


def _cap(schema: dict) -> None:
    """Every integer branch of a token-limit field gets SMALL_OUTPUT as its maximum."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "integer":
            branch["maximum"] = SMALL_OUTPUT


@pytest.fixture(scope="module")
def api_schema(demo_server):
    document = httpx.get(f"{demo_server.base_url}/openapi.json", timeout=30).json()
    components = document["components"]["schemas"]
    served = [entry["id"] for entry in httpx.get(f"{demo_server.base_url}/v1/models", timeout=30).json()["data"]]
    for model, fields in OUTPUT_LIMITS.items():
        for field in fields:
            _cap(components[model]["properties"][field])
        # a limit is always sent (absent, the server would write up to 4096 tokens), and the model is
        # mostly the served one, so that valid bodies reach the generation
        components[model].setdefault("required", []).append(fields[0])
    for model in (*OUTPUT_LIMITS, "CountTokensRequest"):
        components[model]["properties"]["model"] = {"anyOf": [{"enum": served}, {"type": "null"}]}
    components["ThinkingEnabled"]["properties"]["budget_tokens"]["maximum"] = SMALL_OUTPUT - 1
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=demo_server.base_url)
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION)
    return schema


def test_the_document_covers_every_route(demo_server):
    document = httpx.get(f"{demo_server.base_url}/openapi.json", timeout=30).json()
    assert set(document["paths"]) >= {"/v1/chat/completions", "/v1/responses", "/v1/responses/{response_id}",
                                      "/v1/messages", "/v1/messages/count_tokens", "/v1/models",
                                      "/v1/models/{model_id}", "/health", "/metrics"}
    chat = document["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["additionalProperties"] is False and "messages" in chat["required"]
    post = document["paths"]["/v1/chat/completions"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
    assert "429" in post["responses"] and "529" in document["paths"]["/v1/messages"]["post"]["responses"]


# Every operation, known without a server: the document is built from edge's own tables. schemathesis'
# pytest plugin is not used (it does not run under pytest 9); its strategies and checks are.
_DOCUMENT = openapi_document("edge")
# negative data only where there is a body to get wrong: any text is a valid path parameter
CASES = [(path, method.upper(), mode) for path, item in _DOCUMENT["paths"].items() for method, operation in item.items()
         for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
         if mode is schemathesis.GenerationMode.POSITIVE or "requestBody" in operation]


@pytest.mark.parametrize("path, method, mode", CASES, ids=[f"{mode.value} {method} {path}" for path, method, mode in CASES])
def test_no_input_makes_a_5xx(api_schema, path, method, mode):
    operation = api_schema[path][method]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=300)
        calls.append(response.status_code)
        if os.environ.get("EDGE_FUZZ_VERBOSE") and response.status_code >= 400:
            print(response.text[:200])

    fuzz()
    assert calls and all(status < 500 for status in calls)
    print(f"{mode.value} {method} {path}: {len(calls)} cases, statuses {dict(sorted(Counter(calls).items()))}")
