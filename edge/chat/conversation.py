"""The conversation as Chat Completions messages, and the files /save writes and /load reads."""

from __future__ import annotations

import base64
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.chat.backends import ModelCard


@dataclass
class Options:
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # any other request field (--extra-body)


@dataclass
class Conversation:
    """Chat Completions messages, the system prompt, the thinking switch and the images waiting to be sent."""

    system: str | None = None
    thinking: bool = True
    messages: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # data: URLs for the next user message

    def request(self, card: ModelCard, options: Options) -> dict[str, Any]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        body: dict[str, Any] = {"model": card.id, "messages": system + self.messages, "stream": True,
                                "stream_options": {"include_usage": True}, "max_tokens": options.max_tokens,
                                "temperature": options.temperature}
        if options.seed is not None:
            body["seed"] = options.seed
        if card.thinking:
            body["enable_thinking"] = self.thinking
        return {**body, **options.extra}

    def add_user(self, text: str) -> None:
        if self.images:
            parts = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": url}}
                                                         for url in self.images]
            self.messages.append({"role": "user", "content": parts})
            self.images = []
        else:
            self.messages.append({"role": "user", "content": text})

    def to_json(self) -> str:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return json.dumps({"messages": system + self.messages, "enable_thinking": self.thinking},
                          ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Conversation":
        """A /save file, or an export of the page at / (its first conversation, the branch it showed)."""
        data = json.loads(text)
        if isinstance(data, dict) and data.get("format") == "edge-chat":
            return cls._from_page_export(data)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise ValueError('expected {"messages": [...]} or an export of the page')
        system = [m for m in data["messages"] if m.get("role") == "system"]
        rest = [m for m in data["messages"] if m.get("role") in ("user", "assistant", "tool")]
        return cls(system=system[0]["content"] if system else None, thinking=data.get("enable_thinking", True),
                   messages=rest)

    @classmethod
    def _from_page_export(cls, data: dict[str, Any]) -> "Conversation":
        conversations = data.get("conversations") or []
        if not conversations:
            raise ValueError("the export holds no conversation")
        stored = conversations[0]["messages"]
        shown: list[dict[str, Any]] = []
        current = conversations[0].get("leaf")
        while current:
            shown.insert(0, stored[current])
            current = stored[current].get("parent")
        conversation = cls()
        for message in shown:
            if message["role"] == "user":
                conversation.images = list(message.get("images") or [])
                conversation.add_user(message.get("content", ""))
            elif message["role"] == "assistant" and message.get("content"):
                conversation.messages.append({"role": "assistant", "content": message["content"]})
        return conversation


def image_data_url(path: Path) -> str:
    media_type = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"
