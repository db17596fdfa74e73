"""Every client mistake is a 4xx naming what was wrong, and the server goes on serving."""

from __future__ import annotations

import httpx
import pytest

GOOD = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def http(demo_server):
    with httpx.Client(base_url=demo_server.base_url, timeout=60) as client:
        yield client


def assert_still_serving(http, model_id):
    response = http.post("/v1/chat/completions", json={**GOOD, "model": model_id})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    return body["error"]


BAD_BODIES = [
    ({"temperature": 3}, "temperature"),
    ({"temperature": "warm"}, "temperature"),
    ({"top_p": -0.5}, "top_p"),
    ({"max_tokens": 100000}, "max_tokens"),
    ({"max_tokens": "ten"}, "max_tokens"),
    ({"seed": -5}, "seed"),
    ({"top_logprobs": 30, "logprobs": True}, "top_logprobs"),
    ({"presence_penalty": 9}, "presence_penalty"),
    ({"stop": ["1", "2", "3", "4", "5"]}, "stop"),
    ({"n": 0}, "n"),
    ({"n": 129}, "n"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"content": "no role"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     "messages[0].content[0].image_url"),
    ({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}, "tools"),
    ({"frobnicate": True}, "frobnicate"),
]


@pytest.mark.parametrize("changes, param", BAD_BODIES)
def test_bad_field_is_400_naming_the_param(http, demo_model_id, changes, param):
    response = http.post("/v1/chat/completions", json={"model": demo_model_id, **GOOD, **changes})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert_still_serving(http, demo_model_id)


def test_missing_model_means_the_served_model(http, demo_model_id):
    response = http.post("/v1/chat/completions", json=GOOD)
    assert response.status_code == 200 and response.json()["model"] == demo_model_id


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b"\xff\xfe", b"null"])
def test_malformed_body_is_400(http, demo_model_id, body):
    response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in error_of(response)["message"]
    assert_still_serving(http, demo_model_id)


def test_unknown_model_is_404(http, demo_model_id):
    response = http.post("/v1/chat/completions", json={**GOOD, "model": "gpt-9"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert http.get("/v1/models/gpt-9").status_code == 404
    assert_still_serving(http, demo_model_id)


BODY_LIMIT = 32 * 1024 * 1024  # the default --max-body-bytes


def test_oversized_body_is_413(http, demo_model_id):
    huge = "x" * (BODY_LIMIT + 1024 * 1024)
    response = http.post("/v1/chat/completions",
                         json={"model": demo_model_id, "messages": [{"role": "user", "content": huge}]})
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert_still_serving(http, demo_model_id)


def test_oversized_chunked_body_is_413(http, demo_model_id):
    def chunks():
        yield b'{"model": "%s", "messages": [{"role": "user", "content": "' % demo_model_id.encode()
        for _ in range(BODY_LIMIT // (1024 * 1024) + 1):
            yield b"y" * (1024 * 1024)
        yield b'"}]}'

    response = http.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert_still_serving(http, demo_model_id)


@pytest.mark.parametrize("max_tokens", [None, 100])
def test_prompt_over_the_context_window_is_400_context_length_exceeded(http, demo_model_id, max_tokens):
    long_prompt = "lighthouse " * 9000  # ~9000 tokens against the default 8192-token window
    body = {"model": demo_model_id, "messages": [{"role": "user", "content": long_prompt}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "8192" in error["message"]
    assert_still_serving(http, demo_model_id)


def test_prompt_plus_max_tokens_over_the_window_is_refused_not_truncated(http, demo_model_id):
    prompt = "lighthouse " * 5000  # fits alone, not with 4096 more
    body = {"model": demo_model_id, "messages": [{"role": "user", "content": prompt}], "max_tokens": 4096}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400 and error_of(response)["code"] == "context_length_exceeded"


def test_unknown_route_and_wrong_method(http, demo_model_id):
    assert http.get("/v1/nothing-here").status_code == 404
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert error_of(response)["type"] == "invalid_request_error"
    assert_still_serving(http, demo_model_id)


def test_streaming_request_with_bad_input_fails_before_streaming(http, demo_model_id):
    response = http.post("/v1/chat/completions", json={"model": demo_model_id, **GOOD, "stream": True,
                                                        "temperature": 9})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")


def test_client_disconnect_mid_stream_stops_generation(http, demo_server, demo_model_id):
    body = {"model": demo_model_id, "stream": True, "max_tokens": 4000, "temperature": 0,
            "logit_bias": {"1": -100, "106": -100}, "messages": [{"role": "user", "content": "Count."}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        for index, _ in enumerate(response.iter_lines()):
            if index > 6:
                break
    # the worker is free again quickly: a 4000-token generation would take minutes
    response = http.post("/v1/chat/completions", json={**GOOD, "model": demo_model_id}, timeout=30)
    assert response.status_code == 200


def test_client_timeout_on_a_non_streaming_request_cancels_its_generation(http, demo_model_id):
    body = {"model": demo_model_id, "max_tokens": 4000, "temperature": 0,
            "logit_bias": {"1": -100, "106": -100}, "messages": [{"role": "user", "content": "Count."}]}
    with pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json=body, timeout=1.5)
    # a 4000-token generation would hold the worker for minutes; the next request is served at once
    response = http.post("/v1/chat/completions", json={**GOOD, "model": demo_model_id}, timeout=30)
    assert response.status_code == 200
