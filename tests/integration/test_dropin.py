"""Issue 15: clients of the hosted API and of llama.cpp's server work by changing only the base URL —
any of the served ids, no model at all, and every route without /v1, in every dialect, with the SDKs."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.conftest import start_server, stop_server

HELLO = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def aliased_server(tmp_path_factory, demo_model_path):
    server = start_server(["--model-alias", "local", "--model-alias", "gpt-4o-mini"],
                          tmp_path_factory.mktemp("aliased") / "server.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def http(aliased_server):
    with httpx.Client(base_url=aliased_server.base_url, timeout=120) as client:
        yield client


def test_models_lists_every_id(http):
    for path in ("/v1/models", "/models"):
        ids = [entry["id"] for entry in http.get(path).json()["data"]]
        assert ids == ["local", "gpt-4o-mini", "gemma-3-270m-q4_k_m"]
    assert http.get("/models/gpt-4o-mini").json()["id"] == "gpt-4o-mini"


@pytest.mark.parametrize("base", ["/v1", ""])
def test_openai_sdks_on_either_base_url(aliased_server, base):
    client = openai.OpenAI(base_url=aliased_server.base_url + base, api_key="unused", max_retries=0, timeout=120)
    for model in ("local", "gpt-4o-mini", "gemma-3-270m-q4_k_m"):
        reply = client.chat.completions.create(model=model, messages=HELLO, max_tokens=2)
        assert reply.model == model and reply.usage.completion_tokens >= 1
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=2, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    response = client.responses.create(model="local", input="Say hi.", max_output_tokens=2)
    assert response.model == "local" and client.responses.retrieve(response.id).id == response.id
    assert [model.id for model in client.models.list()] == ["local", "gpt-4o-mini", "gemma-3-270m-q4_k_m"]


def test_anthropic_sdk_with_an_alias(aliased_server):
    client = anthropic.Anthropic(base_url=aliased_server.base_url, api_key="unused", max_retries=0, timeout=120)
    message = client.messages.create(model="gpt-4o-mini", max_tokens=2, messages=HELLO)
    assert message.model == "gpt-4o-mini" and message.usage.output_tokens >= 1
    assert client.messages.count_tokens(model="local", messages=HELLO).input_tokens > 0


@pytest.mark.parametrize("path, body, check", [
    ("/chat/completions", {"messages": HELLO, "max_tokens": 2}, lambda b: b["object"] == "chat.completion"),
    ("/responses", {"input": "Say hi.", "max_output_tokens": 2}, lambda b: b["object"] == "response"),
    ("/messages", {"messages": HELLO, "max_tokens": 2}, lambda b: b["type"] == "message"),
    ("/messages/count_tokens", {"messages": HELLO}, lambda b: b["input_tokens"] > 0),
])
def test_no_model_means_the_served_one_on_both_forms(http, path, body, check):
    for prefix in ("/v1", ""):
        answer = http.post(prefix + path, json=body)
        assert answer.status_code == 200, answer.text
        assert check(answer.json())
        if "model" in answer.json():
            assert answer.json()["model"] == "local"


@pytest.mark.parametrize("path, anthropic_shape", [("/chat/completions", False), ("/responses", False),
                                                   ("/messages", True), ("/messages/count_tokens", True)])
def test_unknown_model_is_404_naming_the_served_ids(http, path, anthropic_shape):
    body = {"model": "gpt-9", "messages": HELLO, "input": "x", "max_tokens": 2}
    body = {key: value for key, value in body.items()
            if key in {"/chat/completions": ("model", "messages", "max_tokens"), "/responses": ("model", "input"),
                       "/messages": ("model", "messages", "max_tokens"),
                       "/messages/count_tokens": ("model", "messages")}[path]}
    for prefix in ("/v1", ""):
        answer = http.post(prefix + path, json=body)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert all(f"'{model_id}'" in error["message"] for model_id in ("local", "gpt-4o-mini", "gemma-3-270m-q4_k_m"))
        if anthropic_shape:
            assert answer.json()["type"] == "error" and error["type"] == "not_found_error"
        else:
            assert error["code"] == "model_not_found" and error["param"] == "model"


def test_any_model_serves_every_name_and_says_so_once(tmp_path, demo_model_path):
    server = start_server(["--any-model"], tmp_path / "server.log")
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        for name in ("gpt-4o", "llama-3-8b", "gpt-4o"):
            reply = client.chat.completions.create(model=name, messages=HELLO, max_tokens=1)
            assert reply.model == "gemma-3-270m-q4_k_m"
        claude = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        assert claude.messages.create(model="claude-sonnet-4", max_tokens=1, messages=HELLO).usage.output_tokens == 1
    finally:
        stop_server(server)
    assert server.log().count("--any-model: request for unknown model") == 1
