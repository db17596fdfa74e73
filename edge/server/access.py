"""Request ids, the one access line per request, and the log formats (text or JSON lines).

Every request gets an id (the client's ``x-request-id`` when it is a sane token, else a new one), which
the response echoes and every log line written while serving it carries.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from edge.core.events import Usage

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("edge_request_id", default="-")
access_log = logging.getLogger("edge.access")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def request_id_from(headers: dict[bytes, bytes]) -> str:
    presented = headers.get(b"x-request-id", b"").decode("latin-1")
    return presented if _CLIENT_REQUEST_ID.match(presented) else uuid.uuid4().hex


@dataclass
class RequestRecord:
    """What one request did, filled in as it is served and written out as its access line."""

    request_id: str
    method: str
    path: str
    route: str
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    error: str | None = None  # the error's code (or type): the reason a request failed
    key: str | None = None  # the API key's name
    admitted: bool = False
    first_event: float | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """A successful message: its generation finished and its 2xx answer carried no error."""
        return (self.usage is not None and self.error is None and self.status is not None
                and 200 <= self.status < 300)

    def access_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "method": self.method, "path": self.path, "status": self.status, "error": self.error,
            "key": self.key, "ms": round((time.perf_counter() - self.started) * 1000, 1)}
        if self.finish_reason is not None:
            fields["finish"] = self.finish_reason
        if self.usage is not None:
            fields.update(prompt_tokens=self.usage.prompt_tokens, cached_tokens=self.usage.cached_prompt_tokens,
                          completion_tokens=self.usage.completion_tokens)
        if self.timings:
            fields.update(prompt_ms=round(self.timings.get("prompt_ms", 0.0), 1),
                          decode_ms=round(self.timings.get("decode_ms", 0.0), 1))
        return fields


def write_access_line(record: RequestRecord) -> None:
    fields = record.access_fields()
    head = f"{fields.pop('method')} {fields.pop('path')} {fields.pop('status')}"
    text = " ".join(f"{name}={value}" for name, value in fields.items() if value is not None)
    access_log.info("%s %s", head, text, extra={"access": record.access_fields()})


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an access line carries its fields as keys of its own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(), "logger": record.name,
            "request_id": getattr(record, "request_id", "-"), "message": record.getMessage()}
        entry.update(getattr(record, "access", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


LOG_FORMATS = ("text", "json")


def configure_logging(level: str, log_format: str = "text") -> None:
    """One handler on the root logger, so edge's, uvicorn's and llama.cpp's lines share the format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
