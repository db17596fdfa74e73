"""Where answers come from: the model in this process, or a running server over streamed Chat Completions.

Both take the same request body and yield the core's events, so the chat cannot tell them apart.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from edge.core.events import Event, Finish, ReasoningDelta, TextDelta, Usage
from edge.errors import EdgeError


@dataclass(frozen=True)
class ModelCard:
    id: str
    vision: bool
    thinking: bool


class Backend(Protocol):
    card: ModelCard

    def stream(self, body: dict[str, Any], cancelled: threading.Event) -> Iterator[Event]: ...


class ChatError(Exception):
    """A request the model or the server refused; shown, and the conversation goes on."""


class LocalBackend:
    """The model in this process, through the same translator and engine calls as the server."""

    def __init__(self, engine, image_policy):
        from edge.api.context import ServingContext

        self.engine = engine
        self.serving = ServingContext(engine.chat_format, engine.model.n_vocab(), engine.vision is not None,
                                      image_policy)
        self.card = ModelCard(engine.info.id, engine.vision is not None, engine.chat_format.supports_thinking)

    def stream(self, body: dict[str, Any], cancelled: threading.Event) -> Iterator[Event]:
        from edge.api.openai_chat import ChatCompletionRequest, to_generation_request
        from edge.api.validation import validate_body

        try:
            request = to_generation_request(validate_body(ChatCompletionRequest, body), self.serving)
            prepared = self.engine.prepare(request)
        except EdgeError as error:
            raise ChatError(_described(error.message, error.param)) from None
        yield from self.engine.generate(prepared, cancelled)


class RemoteBackend:
    """A running edge (or any OpenAI-compatible server), over streamed Chat Completions."""

    def __init__(self, url: str, api_key: str | None, model: str | None):
        import httpx

        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=600), headers=self.headers)
        models = self._get("/v1/models")["data"]
        chosen = next((m for m in models if m["id"] == model), None) if model else (models[0] if models else None)
        if chosen is None:
            raise ChatError(f"{self.url} serves {[m['id'] for m in models]}, not {model!r}")
        can = chosen.get("capabilities", {})
        self.card = ModelCard(chosen["id"], bool(can.get("vision")), bool(can.get("thinking")))

    def _get(self, path: str) -> Any:
        import httpx

        try:
            response = self.client.get(self.url + path)
        except httpx.HTTPError as error:
            raise ChatError(f"cannot reach {self.url}: {error}") from None
        if response.status_code != 200:
            raise ChatError(_error_text(response.status_code, response.read()))
        return response.json()

    def stream(self, body: dict[str, Any], cancelled: threading.Event) -> Iterator[Event]:
        import httpx

        reason, usage = "stop", Usage(0, 0)
        try:
            with self.client.stream("POST", self.url + "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise ChatError(_error_text(response.status_code, response.read()))
                for chunk in _sse_chunks(response.iter_lines()):
                    if cancelled.is_set():
                        reason = "cancelled"
                        break  # leaving the block closes the connection: the server cancels
                    if chunk.get("error"):
                        raise ChatError(_described(chunk["error"].get("message", "error"), chunk["error"].get("param")))
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices", []):
                        delta = choice.get("delta") or {}
                        if delta.get("reasoning_content"):
                            yield ReasoningDelta(delta["reasoning_content"])
                        if delta.get("content"):
                            yield TextDelta(delta["content"])
                        reason = choice.get("finish_reason") or reason
        except httpx.HTTPError as error:
            raise ChatError(f"the connection to {self.url} failed: {error}") from None
        yield Finish(reason, usage)


def _sse_chunks(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            if data == "[DONE]":
                return
            yield json.loads(data)


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                 (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
                 (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0))


def _error_text(status: int, body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return _described(f"{status}: {error['message']}", error.get("param"))
    except (ValueError, KeyError, TypeError):
        return f"{status}: {body[:200].decode(errors='replace')}"


def _described(message: str, param: str | None) -> str:
    return f"{message} (parameter {param})" if param else message
