"""``edge bench serve``: streaming chat load against OpenAI-compatible servers, side by side.

Any server with ``/v1/chat/completions`` streaming works: edge's own, llama.cpp's ``llama-server``,
Ollama. Targets run one after the other, never together (they would share the CPU). For each target
and each concurrency level, ``requests`` streaming requests go out through ``concurrency`` workers;
each request records the time to its first text chunk (TTFT) and the gaps between text chunks
(inter-token latency; a server that sends several tokens per chunk shows fewer, longer gaps).
Aggregate tok/s is completion tokens (from the stream's usage when the server sends it, else
text chunks) over the level's wall time. Everything is bounded: per-request timeout, a per-level time
budget after which no new request starts, and loopback-only targets unless ``allow_remote``.
"""

from __future__ import annotations

import ipaddress
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from edge.bench.environment import build_info, hardware_info, run_info
from edge.bench.errors import BenchError
from edge.bench.progress import bar
from edge.bench.stats import percentiles, summary

SCHEMA_VERSION = 1
DEFAULT_PROMPT = ("Explain, in a few short paragraphs, how a lighthouse keeper in the nineteenth century "
                  "kept the light burning through a long winter night.")
_TEXT_FIELDS = ("content", "reasoning_content", "reasoning")


@dataclass(frozen=True)
class Target:
    url: str                 # base URL, without the /v1 suffix
    model: str | None = None  # None: the first id /v1/models lists


@dataclass(frozen=True)
class ServeOptions:
    concurrency: tuple[int, ...] = (1, 2, 4)
    requests: int = 8             # per level and repeat (at least the concurrency)
    max_tokens: int = 128
    prompt: str = DEFAULT_PROMPT
    repeats: int = 1
    request_timeout_s: float = 120.0
    level_budget_s: float = 300.0
    allow_remote: bool = False
    api_key: str | None = None
    progress: bool = True


@dataclass
class RequestResult:
    ok: bool
    ttft_ms: float = 0.0
    itl_ms: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str = ""


def check_url(url: str, allow_remote: bool) -> str:
    """The base URL (scheme://host:port[/path], no trailing /v1) or a BenchError; loopback unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BenchError(f"--url {url!r}: expected http://HOST:PORT")
    if not allow_remote and not _is_loopback(parts.hostname):
        raise BenchError(f"--url {url}: {parts.hostname} is not a loopback address; "
                         "pass --allow-remote to load a server on another machine")
    base = url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def discover_model(client: httpx.Client, base: str) -> str:
    """The first model id the server lists; a BenchError when it cannot be reached or lists none."""
    try:
        response = client.get(f"{base}/v1/models", timeout=10)
        response.raise_for_status()
        models = [entry["id"] for entry in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{base}: cannot list models at /v1/models ({exc}); is the server running? "
                         "Pass --model to skip discovery") from exc
    if not models:
        raise BenchError(f"{base}: /v1/models lists no model; pass --model")
    return models[0]


def stream_one(client: httpx.Client, base: str, body: dict, timeout: float) -> RequestResult:
    """One streaming chat request, timed chunk by chunk."""
    stamps: list[float] = []
    usage_tokens = None
    started = time.perf_counter()
    try:
        with client.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                return RequestResult(False, error=f"HTTP {response.status_code}: {response.text[:200]}")
            for line in response.iter_lines():
                chunk = _sse_json(line)
                if chunk is None:
                    continue
                if _has_text(chunk):
                    stamps.append(time.perf_counter())
                usage_tokens = (chunk.get("usage") or {}).get("completion_tokens", usage_tokens)
    except httpx.HTTPError as exc:
        return RequestResult(False, error=f"{type(exc).__name__}: {exc}")
    if not stamps:
        return RequestResult(False, error="the stream carried no text")
    return RequestResult(True, (stamps[0] - started) * 1000, [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])],
                         usage_tokens if usage_tokens else len(stamps))


def _sse_json(line: str) -> dict | None:
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    try:
        chunk = json.loads(payload)
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) else None


def _has_text(chunk: dict) -> bool:
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if any(delta.get(name) for name in _TEXT_FIELDS):
            return True
    return False


def request_body(model: str, options: ServeOptions, with_usage: bool) -> dict:
    body = {"model": model, "stream": True, "max_tokens": options.max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": options.prompt}]}
    if with_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def run_level(client: httpx.Client, base: str, body: dict, concurrency: int, options: ServeOptions) -> dict:
    """``requests`` requests through ``concurrency`` workers; none starts after the level's time budget."""
    count = max(options.requests, concurrency)
    deadline = time.perf_counter() + options.level_budget_s

    def one(_: int) -> RequestResult | None:
        if time.perf_counter() > deadline:
            return None
        return stream_one(client, base, body, options.request_timeout_s)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    done = [r for r in results if r is not None]
    ok = [r for r in done if r.ok]
    return {"wall_s": wall, "results": done, "ok": ok, "not_started": count - len(done),
            "tok_s": sum(r.tokens for r in ok) / wall if wall > 0 else 0.0}


def bench_target(target: Target, options: ServeOptions) -> dict:
    """All concurrency levels (``repeats`` times each) against one server."""
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    limits = httpx.Limits(max_connections=max(options.concurrency) + 1)
    with httpx.Client(headers=headers, limits=limits) as client:
        model = target.model or discover_model(client, target.url)
        with_usage = _warm_up(client, target.url, model, options)
        body = request_body(model, options, with_usage)
        levels = [_level_report(client, target.url, body, c, options)
                  for c in bar(options.concurrency, options.progress, f"{target.url} concurrency", unit="level")]
    return {"url": target.url, "model": model, "usage_from_server": with_usage, "levels": levels}


def _warm_up(client: httpx.Client, base: str, model: str, options: ServeOptions) -> bool:
    """One short request (not measured); also finds out whether the server accepts ``stream_options``."""
    short = ServeOptions(max_tokens=4, prompt=options.prompt)
    for with_usage in (True, False):
        result = stream_one(client, base, request_body(model, short, with_usage), options.request_timeout_s)
        if result.ok:
            return with_usage
    raise BenchError(f"{base}: the warm-up request for model {model!r} failed: {result.error}")


def _level_report(client: httpx.Client, base: str, body: dict, concurrency: int, options: ServeOptions) -> dict:
    runs = [run_level(client, base, body, concurrency, options) for _ in range(max(options.repeats, 1))]
    ok = [r for run in runs for r in run["ok"]]
    failed = [r for run in runs for r in run["results"] if not r.ok]
    return {"concurrency": concurrency, "requests": sum(len(run["results"]) for run in runs),
            "completed": len(ok), "errors": len(failed), "not_started": sum(run["not_started"] for run in runs),
            "error_messages": sorted({r.error for r in failed})[:5],
            "ttft_ms": percentiles(r.ttft_ms for r in ok),
            "itl_ms": percentiles(gap for r in ok for gap in r.itl_ms),
            "completion_tokens": sum(r.tokens for r in ok),
            "aggregate_tok_s": summary(run["tok_s"] for run in runs),
            "wall_s": summary(run["wall_s"] for run in runs)}


def resolve_targets(urls: list[str], models: list[str] | None, allow_remote: bool) -> list[Target]:
    """Pair ``--url`` values with ``--model`` values (one for all, or one per URL)."""
    if not urls:
        raise BenchError("give at least one --url")
    models = models or []
    if len(models) not in (0, 1, len(urls)):
        raise BenchError(f"{len(models)} --model values for {len(urls)} --url values: give one per URL, "
                         "one for all, or none (auto-discovery)")
    bases = [check_url(url, allow_remote) for url in urls]
    paired = models if len(models) == len(urls) else models * len(urls) if models else [None] * len(urls)
    return [Target(base, model) for base, model in zip(bases, paired)]


def run_serve_bench(targets: list[Target], options: ServeOptions = ServeOptions()) -> dict:
    """Benchmark each target in turn; returns the report (schema.json, kind ``serve``)."""
    for target in targets:
        check_url(target.url, options.allow_remote)
    if any(level < 1 for level in options.concurrency):
        raise BenchError("concurrency levels must be >= 1")
    results = [bench_target(target, options) for target in targets]
    return {"schema_version": SCHEMA_VERSION, "kind": "serve", **run_info(), "hardware": hardware_info(),
            "build": build_info(), "settings": _settings(options), "targets": results}


def _settings(options: ServeOptions) -> dict:
    return {"concurrency": list(options.concurrency), "requests": options.requests,
            "max_tokens": options.max_tokens, "prompt": options.prompt, "repeats": options.repeats,
            "request_timeout_s": options.request_timeout_s, "level_budget_s": options.level_budget_s,
            "allow_remote": options.allow_remote}
