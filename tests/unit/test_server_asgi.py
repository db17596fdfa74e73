"""In-process ASGI tests of the server layer against a scripted fake engine: routes with and without
/v1, admission (429/529), the request deadline, the shutdown drain, the catch-all, ids, metrics, keys.

The fake engine decodes a fixed number of tokens at a set pace in the worker's real thread, so every
timing here is a bound the scripted engine makes certain, not a measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.core.events import Finish, TextDelta, Usage
from edge.formats import chat_format_for
from edge.runtime.engine import PreparedPrompt
from edge.runtime.sequence import END
from edge.server import app as app_module
from edge.server.metering import ApiKeys
from edge.settings import Settings

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
MESSAGES = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@dataclass
class FakeInfo:
    path: Path = Path("/models/fake-model.gguf")
    id: str = "fake-model"
    metadata: dict[str, str] = field(default_factory=lambda: {"general.architecture": "gemma3"})
    n_ctx: int = 4096
    origin: str = "test"
    created: int = 1


class FakeModel:
    def n_vocab(self) -> int:
        return 1000


class FakeEngine:
    """One slot, like ``--parallel 1``: a thread decodes the submitted prompts in turn, ``tokens`` tokens
    each, ``seconds_per_token`` apart; ``gate`` holds every generation at its start."""

    parallel = 1
    cache_ram_bytes = 0

    def __init__(self, tokens: int = 3, seconds_per_token: float = 0.0):
        self.info = FakeInfo()
        self.model = FakeModel()
        self.vision = None
        self.chat_format = chat_format_for("gemma3", None)
        self.tokens = tokens
        self.seconds_per_token = seconds_per_token
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.finish_reasons: list[str] = []
        self.running = 0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._decode_in_turn, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def prepare(self, request) -> PreparedPrompt:
        return PreparedPrompt(request, (1, 2, 3), request.max_tokens or self.tokens, 0)

    def submit(self, prepared: PreparedPrompt, emit, cancelled: threading.Event, choices: int = 1) -> None:
        self._jobs.put((prepared, emit, cancelled, choices))

    def _decode_in_turn(self) -> None:
        while (job := self._jobs.get()) is not None:
            prepared, emit, cancelled, choices = job
            self.running = 1
            for choice in range(choices):
                for event in self._generate(prepared, cancelled):
                    emit(choice, event)
                emit(choice, END)
            self.running = 0

    def _generate(self, prepared: PreparedPrompt, cancelled: threading.Event):
        self.started.set()
        self.gate.wait(30)
        produced = 0
        for _ in range(min(self.tokens, prepared.max_tokens)):
            if cancelled.is_set():
                break
            time.sleep(self.seconds_per_token)
            produced += 1
            yield TextDelta("tok ")
        reason = "cancelled" if cancelled.is_set() else "length"
        self.finish_reasons.append(reason)
        yield Finish(reason, Usage(3, produced), timings={"prompt_ms": 1.0, "decode_ms": 2.0})

    def wake(self) -> None:
        pass  # the decoding thread polls its cancel flag every token

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(30)

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_vocabulary_scan(monkeypatch):
    monkeypatch.setattr(app_module, "_token_pieces", lambda engine: [b"abcd"])


@contextlib.asynccontextmanager
async def served(engine: FakeEngine, tmp_path: Path, keys: ApiKeys | None = None, **settings: Any):
    app = app_module.create_app(replace(Settings(cache_dir=tmp_path), **settings), engine, keys)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            yield app, client


def run(coroutine):
    return asyncio.run(coroutine)


def sse_payloads(text: str) -> list[Any]:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


# -- drop-in: routes and model ids ---------------------------------------------------------------

ROUTE_CALLS = [
    ("POST", "/chat/completions", CHAT, "chat.completion"),
    ("POST", "/responses", {"input": "hi", "max_output_tokens": 4}, "response"),
    ("POST", "/messages", MESSAGES, "message"),
    ("POST", "/messages/count_tokens", {"messages": MESSAGES["messages"]}, None),
    ("GET", "/models", None, "list"),
    ("GET", "/models/fake-model", None, "model"),
]


@pytest.mark.parametrize("method, path, body, kind", ROUTE_CALLS)
def test_every_route_answers_without_v1_like_with_it(tmp_path, method, path, body, kind):
    async def scenario():
        async with served(FakeEngine(), tmp_path) as (_, client):
            answers = [await client.request(method, prefix + path, json=body) for prefix in ("/v1", "")]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            payload = answer.json()
            if kind is None:
                assert payload == {"input_tokens": 3}
            else:
                assert payload.get("object", payload.get("type")) == kind
        assert set(answers[0].json()) == set(answers[1].json())

    run(scenario())


def test_responses_by_id_without_v1(tmp_path):
    async def scenario():
        async with served(FakeEngine(), tmp_path) as (_, client):
            created = (await client.post("/responses", json={"input": "hi", "max_output_tokens": 2})).json()
            assert (await client.get(f"/responses/{created['id']}")).json()["id"] == created["id"]
            assert (await client.get(f"/v1/responses/{created['id']}")).json()["id"] == created["id"]

    run(scenario())


def test_model_ids_without_model_with_aliases_and_unknown(tmp_path):
    async def scenario():
        async with served(FakeEngine(), tmp_path, model_alias=("local", "gpt-4o-mini")) as (_, client):
            listed = [entry["id"] for entry in (await client.get("/models")).json()["data"]]
            assert listed == ["local", "gpt-4o-mini", "fake-model"]
            no_model = (await client.post("/chat/completions", json=CHAT)).json()
            assert no_model["model"] == "local"
            alias = (await client.post("/messages", json={**MESSAGES, "model": "gpt-4o-mini"})).json()
            assert alias["model"] == "gpt-4o-mini"
            unknown = await client.post("/chat/completions", json={**CHAT, "model": "gpt-9"})
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
            assert all(f"'{model_id}'" in unknown.json()["error"]["message"] for model_id in listed)
            unknown = await client.post("/messages", json={**MESSAGES, "model": "claude-9"})
            assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
            assert (await client.get("/models/gpt-9")).status_code == 404

    run(scenario())


def test_any_model_serves_every_name(tmp_path):
    async def scenario():
        async with served(FakeEngine(), tmp_path, any_model=True) as (_, client):
            answer = await client.post("/responses", json={"model": "gpt-4.1", "input": "hi", "max_output_tokens": 2})
            assert answer.status_code == 200 and answer.json()["model"] == "fake-model"

    run(scenario())


# -- auth, CORS and error shapes on both forms of every route -------------------------------------------

GOOD_BODIES = {"/chat/completions": CHAT, "/messages": MESSAGES, "/messages/count_tokens": {"messages": CHAT["messages"]},
               "/responses": {"input": "hi", "max_output_tokens": 2}, "/models": None}


@pytest.mark.parametrize("path, anthropic", [("/chat/completions", False), ("/v1/chat/completions", False),
                                             ("/messages", True), ("/v1/messages/count_tokens", True),
                                             ("/models", False), ("/responses", False)])
def test_keys_guard_both_forms_with_the_dialects_error(tmp_path, path, anthropic):
    async def scenario():
        async with served(FakeEngine(), tmp_path, ApiKeys({"alice": "sk-a"})) as (_, client):
            method = "GET" if path == "/models" else "POST"
            denied = await client.request(method, path, json=CHAT)
            assert denied.status_code == 401
            body = denied.json()
            assert body["error"]["type"] == "authentication_error"
            assert (body["type"] == "error") if anthropic else ("code" in body["error"])
            body = GOOD_BODIES[path.removeprefix("/v1")]
            allowed = await client.request(method, path, json=body, headers={"x-api-key": "sk-a"})
            assert allowed.status_code == 200, allowed.text
            for open_path in ("/health", "/metrics", "/openapi.json"):
                assert (await client.get(open_path)).status_code == 200

    run(scenario())


def test_cors_on_unprefixed_routes(tmp_path):
    async def scenario():
        async with served(FakeEngine(), tmp_path, ApiKeys({"a": "k"}), cors_origins=("https://app.example",)) as (_, client):
            preflight = await client.options("/chat/completions", headers={
                "origin": "https://app.example", "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type"})
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            denied = await client.post("/messages", json=MESSAGES, headers={"origin": "https://app.example"})
            assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "https://app.example"

    run(scenario())


def test_health_says_only_up_and_loaded(tmp_path):
    async def scenario():
        async with served(FakeEngine(), tmp_path, ApiKeys({"a": "k"})) as (_, client):
            assert (await client.get("/health")).json() == {"status": "ok"}

    run(scenario())


# -- admission ------------------------------------------------------------------------------------------

def test_beyond_the_queue_is_429_or_529_before_any_work(tmp_path):
    engine = FakeEngine()
    engine.gate.clear()

    async def scenario():
        async with served(engine, tmp_path, max_queue=1) as (_, client):
            running = asyncio.ensure_future(client.post("/chat/completions", json=CHAT))
            waiting = asyncio.ensure_future(client.post("/messages", json=MESSAGES))
            while not engine.started.is_set():
                await asyncio.sleep(0.01)
            refused = await client.post("/chat/completions", content=b"{not even read")
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "server_overloaded"
            overloaded = await client.post("/v1/messages", json=MESSAGES)
            assert overloaded.status_code == 529 and overloaded.json()["error"]["type"] == "overloaded_error"
            assert "retry-after" in overloaded.headers
            metrics = (await client.get("/metrics")).text
            assert "edge_queue_depth 1.0" in metrics and "edge_running_sequences 1.0" in metrics
            engine.gate.set()
            assert (await running).status_code == 200 and (await waiting).status_code == 200
            assert (await client.post("/chat/completions", json=CHAT)).status_code == 200

    run(scenario())


# -- the request deadline ---------------------------------------------------------------------------------

def test_request_timeout_ends_each_dialect_clearly(tmp_path):
    engine = FakeEngine(tokens=200, seconds_per_token=0.02)

    async def scenario():
        async with served(engine, tmp_path, request_timeout=0.3) as (_, client):
            plain = await client.post("/chat/completions", json={**CHAT, "max_tokens": 200})
            assert plain.status_code == 504 and plain.json()["error"]["code"] == "request_timeout"
            anthropic = await client.post("/messages", json={**MESSAGES, "max_tokens": 200})
            assert anthropic.status_code == 504 and anthropic.json()["error"]["type"] == "timeout_error"
            streamed = await client.post("/chat/completions", json={**CHAT, "max_tokens": 200, "stream": True})
            payloads = sse_payloads(streamed.text)
            assert payloads[-1] == "[DONE]"
            assert json.loads(payloads[-2])["error"]["code"] == "request_timeout"
            events = await client.post("/responses", json={"input": "hi", "max_output_tokens": 200, "stream": True})
            assert [json.loads(p)["type"] for p in sse_payloads(events.text)][-2:] == ["error", "response.failed"]
        assert engine.finish_reasons and set(engine.finish_reasons) == {"cancelled"}

    run(scenario())


# -- the shutdown drain -------------------------------------------------------------------------------------

def test_drain_answers_waiting_requests_and_ends_running_streams(tmp_path):
    engine = FakeEngine(tokens=500, seconds_per_token=0.01)

    async def scenario():
        async with served(engine, tmp_path, shutdown_grace=0.3, max_queue=4) as (app, client):
            stream = asyncio.ensure_future(client.post("/chat/completions",
                                                       json={**CHAT, "max_tokens": 500, "stream": True}))
            while not engine.started.is_set():
                await asyncio.sleep(0.01)
            waiting = asyncio.ensure_future(client.post("/chat/completions", json={**CHAT, "max_tokens": 500}))
            await asyncio.sleep(0.05)
            app.state.admission.begin_drain()
            answered = await waiting
            assert answered.status_code == 503 and answered.json()["error"]["code"] == "server_shutting_down"
            late = await client.post("/messages", json=MESSAGES)
            assert late.status_code == 503 and late.json()["type"] == "error"
            payloads = sse_payloads((await stream).text)
            assert payloads[-1] == "[DONE]" and json.loads(payloads[-2])["error"]["code"] == "server_shutting_down"
            assert any(json.loads(p).get("choices", [{}])[0].get("delta", {}).get("content") for p in payloads[:-2])

    run(scenario())


# -- the catch-all ------------------------------------------------------------------------------------------

def test_anything_a_translator_raises_is_the_dialects_400(tmp_path, monkeypatch):
    def broken(*args):
        raise KeyError("surprise")

    monkeypatch.setattr(app_module.openai_chat, "to_generation_request", broken)
    monkeypatch.setattr(app_module.anthropic_messages, "to_generation_request", broken)

    async def scenario():
        async with served(FakeEngine(), tmp_path) as (_, client):
            chat = await client.post("/chat/completions", json=CHAT)
            assert chat.status_code == 400 and chat.json()["error"]["type"] == "invalid_request_error"
            assert "KeyError" in chat.json()["error"]["message"]
            anthropic = await client.post("/messages", json=MESSAGES)
            assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"

    run(scenario())


def test_an_unexpected_error_is_a_500_in_the_dialects_shape(tmp_path, monkeypatch):
    def bug(self, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app_module.ServedModels, "resolve", bug)

    async def scenario():
        async with served(FakeEngine(), tmp_path) as (_, client):
            answer = await client.get("/models/x")
            assert answer.status_code == 500 and answer.json()["error"]["type"] == "server_error"
            answer = await client.post("/v1/messages", json=MESSAGES)
            assert answer.status_code == 500 and answer.json()["error"]["type"] == "api_error"
            assert (await client.get("/health")).status_code == 200

    run(scenario())


# -- request ids, access lines, metrics, keys ------------------------------------------------------------------

def test_request_id_is_taken_or_made_echoed_and_logged(tmp_path, caplog):
    async def scenario():
        async with served(FakeEngine(), tmp_path) as (_, client):
            given = await client.post("/chat/completions", json=CHAT, headers={"x-request-id": "trace-42"})
            made = await client.post("/chat/completions", json=CHAT, headers={"x-request-id": "bad id\x01"})
            bad = await client.post("/chat/completions", json={**CHAT, "temperature": 9})
            return given, made, bad

    with caplog.at_level(logging.INFO, logger="edge.access"):
        given, made, bad = run(scenario())
    assert given.headers["x-request-id"] == "trace-42"
    assert len(made.headers["x-request-id"]) == 32
    lines = [record for record in caplog.records if record.name == "edge.access"]
    ok = next(record for record in lines if record.access.get("status") == 200)
    assert ok.access["prompt_tokens"] == 3 and ok.access["completion_tokens"] == 3
    assert ok.access["prompt_ms"] == 1.0 and ok.access["decode_ms"] == 2.0 and ok.access["finish"] == "length"
    failed = next(record for record in lines if record.access.get("status") == 400)
    assert failed.access["error"] == "invalid_request_error"


def test_metrics_count_routes_tokens_errors_and_keys_by_name(tmp_path):
    async def scenario():
        async with served(FakeEngine(), tmp_path, ApiKeys({"alice": "sk-alice-secret"})) as (app, client):
            headers = {"authorization": "Bearer sk-alice-secret"}
            for path in ("/chat/completions", "/v1/chat/completions"):
                assert (await client.post(path, json=CHAT, headers=headers)).status_code == 200
            await client.post("/chat/completions", json={**CHAT, "temperature": 9}, headers=headers)
            await client.post("/chat/completions", json=CHAT)
            app.state.ledger.flush()
            return (await client.get("/metrics")).text

    text = run(scenario())
    assert 'edge_requests_total{route="/v1/chat/completions",status="200"} 2.0' in text
    assert 'edge_requests_total{route="/v1/chat/completions",status="401"} 1.0' in text
    assert 'edge_errors_total{type="invalid_request_error"} 1.0' in text
    assert 'edge_completion_tokens_total{route="/v1/chat/completions"} 6.0' in text
    assert 'edge_key_messages_total{key="alice"} 2.0' in text
    assert 'edge_key_prompt_tokens_total{key="alice"} 6.0' in text
    assert "edge_time_to_first_token_seconds_count" in text and "edge_inter_token_latency_seconds_count" in text
    assert "sk-alice-secret" not in text
    from edge.server.metering import LEDGER_NAME, read_usage

    assert [(row.key, row.messages) for row in read_usage(tmp_path / LEDGER_NAME)] == [("alice", 2)]
