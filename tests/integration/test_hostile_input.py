"""Issue 12's findings, each a regression test against the real server: every hostile body is a 4xx in
its dialect's shape, and the keep-alive connection it came on goes on serving."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import httpx
import pytest

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
MESSAGES = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class KeepAlive:
    """One persistent HTTP/1.1 connection; ``request`` fails if the server dropped it."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.connection.connect()
        self.socket = self.connection.sock

    def request(self, path: str, body: bytes) -> tuple[int, dict]:
        self.connection.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = self.connection.getresponse()
        payload = response.read()
        assert self.connection.sock is self.socket, "the server closed the keep-alive connection"
        assert (response.getheader("connection") or "").lower() != "close"
        return response.status, json.loads(payload)

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def keep_alive(demo_server):
    connection = KeepAlive(demo_server.base_url)
    yield connection
    connection.close()


def _nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def _deep_raw(depth: int) -> bytes:
    return b'{"messages": [{"role": "user", "content": "hi"}], "metadata": ' + b"[" * depth + b"]" * depth + b"}"


CHAT_FINDINGS = [
    ("nested 100,000 deep", _deep_raw(100_000), None),
    ("5,000-digit seed", json.dumps(CHAT)[:-1].encode() + b', "seed": ' + b"9" * 5000 + b"}", None),
    ("lone surrogate in text", b'{"messages": [{"role": "user", "content": "a\\ud800b"}], "max_tokens": 2}',
     "messages[0].content"),
    ("lone surrogate in model", b'{"model": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}', "model"),
    ("superscript logit_bias key", json.dumps({**CHAT, "logit_bias": {"\u00b2": 1}}).encode(), "logit_bias"),
    ("5,000-digit logit_bias key", json.dumps({**CHAT, "logit_bias": {"1" * 5000: 1}}).encode(), "logit_bias"),
    ("NaN", json.dumps(CHAT)[:-1].encode() + b', "temperature": NaN}', None),
    ("Infinity", json.dumps(CHAT)[:-1].encode() + b', "top_p": Infinity}', None),
]


@pytest.mark.parametrize("name, raw, param", CHAT_FINDINGS, ids=[finding[0] for finding in CHAT_FINDINGS])
def test_chat_findings_are_400_and_the_connection_lives(keep_alive, name, raw, param):
    for path in ("/v1/chat/completions", "/chat/completions"):
        status, body = keep_alive.request(path, raw)
        assert status == 400, body
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
        if param is not None:
            assert body["error"]["param"] == param
        status, body = keep_alive.request(path, json.dumps(CHAT).encode())
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"


def test_anthropic_and_responses_findings_use_their_shapes(keep_alive):
    status, body = keep_alive.request("/v1/messages", b'{"max_tokens": 2, "messages": [{"role": "user", '
                                                      b'"content": "\\ud800"}]}')
    assert status == 400 and body["type"] == "error" and "messages[0].content" in body["error"]["message"]
    status, body = keep_alive.request("/messages", _deep_raw(100_000))
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    schema = b'{"type": "object", "properties": {"n": {"type": "number", "maximum": Infinity}}}'
    status, body = keep_alive.request("/v1/responses", b'{"input": "hi", "text": {"format": {"type": "json_schema", '
                                                       b'"name": "n", "schema": ' + schema + b'}}}')
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = keep_alive.request("/v1/responses", json.dumps({"input": "hi", "max_output_tokens": 2}).encode())
    assert status == 200 and body["status"] in ("completed", "incomplete")


def test_a_prompt_far_beyond_the_context_is_refused_from_its_length(demo_server):
    prompt = "lighthouse " * 2_000_000  # 22 MB: tokenizing it took 87 s and 1.7 GB
    with httpx.Client(base_url=demo_server.base_url, timeout=120) as http:
        for path, body in (("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}]}),
                           ("/v1/messages", {"max_tokens": 8, "messages": [{"role": "user", "content": prompt}]}),
                           ("/v1/messages/count_tokens", {"messages": [{"role": "user", "content": prompt}]})):
            response = http.post(path, json=body)
            assert response.status_code == 400, response.text
            message = json.dumps(response.json())
            assert "at least" in message and "characters" in message  # the bound, not a full tokenization
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200


# -- tools: Gemma 4 (the demo model has no tool format) ----------------------------------------------------

def _tool(parameters) -> dict:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


TOOL_FINDINGS = [
    ("parameters nested hundreds deep", {"tools": [_tool(_nested(300))]}),
    ("properties is a number", {"tools": [_tool({"type": "object", "properties": 5})]}),
    ("properties is a list", {"tools": [_tool({"type": "object", "properties": ["a", "b"]})]}),
    ("arguments nested hundreds deep", {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "f", "arguments": json.dumps(json.loads("[" * 400 + "]" * 400))}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}], "tools": [_tool({"type": "object"})]}),
]


@pytest.mark.parametrize("name, changes", TOOL_FINDINGS, ids=[finding[0] for finding in TOOL_FINDINGS])
def test_tool_findings_are_400(gemma4_server, name, changes):
    connection = KeepAlive(gemma4_server.base_url)
    try:
        body = {"model": "gemma4-tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}], **changes}
        status, answer = connection.request("/v1/chat/completions", json.dumps(body).encode())
        assert status == 400, answer
        assert answer["error"]["type"] == "invalid_request_error"
        status, answer = connection.request("/v1/chat/completions", json.dumps(
            {"model": "gemma4-tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}).encode())
        assert status == 200
    finally:
        connection.close()
