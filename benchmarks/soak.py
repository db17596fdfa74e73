#!/usr/bin/env python3
"""Soak: streaming clients in every dialect against one server, some hanging up mid-stream, for a
fixed time; every completed stream is checked for well-formedness and the server's RSS is sampled.

    .venv/bin/python benchmarks/soak.py --minutes 30          # starts its own server on the demo model
    .venv/bin/python benchmarks/soak.py --url http://127.0.0.1:8080 --pid 1234 --minutes 5

Writes benchmarks/results/soak-<minutes>min.json (every RSS sample) and prints a summary. The pass
rule (also the CI test's, tests/integration/test_soak.py): no malformed stream, no 5xx, and after the
warm-up (the first quarter) RSS stays within ±5 % of its value at the end of the warm-up. The RSS sampled
leaves out the conversations the server keeps in host memory (``edge_cache_ram_bytes`` in /metrics): that
cache fills up to its --cache-ram limit by design, and is reported on its own. Traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
PROMPTS = ["Tell me about lighthouses.", "Write a short poem about the sea.", "List five birds.",
           "Explain how tides work.", "Describe a storm at night."]
RSS_TOLERANCE = 0.05


@dataclass
class SoakResult:
    duration_s: float
    clients: int
    completed: int = 0
    disconnected: int = 0
    malformed: list[str] = field(default_factory=list)
    server_errors: int = 0
    refused: int = 0  # 429/529/503: admission said no; allowed, counted
    client_timeouts: int = 0  # the client gave up waiting (a very busy machine); allowed, counted
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    kept_max: int = 0  # the most the conversation cache held at a sample (left out of rss_samples)

    def warm_rss(self) -> int | None:
        """RSS at the end of the warm-up (the first quarter of the run)."""
        warm = [rss for at, rss in self.rss_samples if at >= self.duration_s / 4]
        return warm[0] if warm else None

    def rss_drift(self) -> float:
        """Largest relative distance of a post-warm-up sample from the warm RSS."""
        baseline = self.warm_rss()
        if baseline is None:
            return 0.0
        return max(abs(rss - baseline) / baseline for at, rss in self.rss_samples if at >= self.duration_s / 4)

    @property
    def passed(self) -> bool:
        return not self.malformed and self.server_errors == 0 and self.rss_drift() <= RSS_TOLERANCE


def _events(lines: list[str]) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


def check_chat(lines: list[str]) -> str | None:
    if not lines or lines[-1] != "data: [DONE]":
        return "chat stream without [DONE]"
    events = _events(lines)
    finishes = [choice["finish_reason"] for event in events for choice in event.get("choices", []) if choice["finish_reason"]]
    if finishes[-1:] not in (["stop"], ["length"]) or len(finishes) != 1:
        return f"chat stream finish reasons {finishes}"
    if not events[-1].get("usage") or events[-1]["usage"]["completion_tokens"] < 1:
        return "chat stream without usage"
    return None


def check_responses(lines: list[str]) -> str | None:
    events = _events(lines)
    kinds = [event["type"] for event in events]
    if kinds[:2] != ["response.created", "response.in_progress"] or kinds[-1] not in ("response.completed",
                                                                                       "response.incomplete"):
        return f"responses stream events {kinds[:2]}…{kinds[-1:]}"
    if [event["sequence_number"] for event in events] != list(range(len(events))):
        return "responses sequence numbers out of order"
    text = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    written = "".join(part["text"] for item in final["output"] if item["type"] == "message" for part in item["content"])
    return None if text == written else "responses deltas differ from the final text"


def check_messages(lines: list[str]) -> str | None:
    events = _events(lines)
    kinds = [event["type"] for event in events]
    if kinds[:1] != ["message_start"] or kinds[-2:] != ["message_delta", "message_stop"]:
        return f"messages stream events {kinds[:1]}…{kinds[-2:]}"
    if kinds.count("content_block_start") != kinds.count("content_block_stop"):
        return "messages stream with unclosed blocks"
    return None if events[-2]["delta"]["stop_reason"] in ("end_turn", "max_tokens") else "messages stop_reason"


DIALECTS = {
    "chat": ("/v1/chat/completions", lambda prompt, n: {"messages": [{"role": "user", "content": prompt}],
                                                         "max_tokens": n, "stream": True,
                                                         "stream_options": {"include_usage": True}}, check_chat),
    "responses": ("/v1/responses", lambda prompt, n: {"input": prompt, "max_output_tokens": n, "stream": True,
                                                      "store": False}, check_responses),
    "messages": ("/v1/messages", lambda prompt, n: {"messages": [{"role": "user", "content": prompt}],
                                                    "max_tokens": n, "stream": True}, check_messages),
}


def _client(base_url: str, result: SoakResult, stop_at: float, seed: int, disconnect_rate: float,
            lock: threading.Lock) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=300)) as http:
        while time.monotonic() < stop_at:
            path, body, check = DIALECTS[rng.choice(list(DIALECTS))]
            hang_up_after = rng.randint(1, 12) if rng.random() < disconnect_rate else None
            try:
                outcome = _one_stream(http, path, body(rng.choice(PROMPTS), rng.randint(2, 24)), check, hang_up_after)
            except httpx.TimeoutException:
                outcome = "client timeout"
            with lock:
                if outcome == "completed":
                    result.completed += 1
                elif outcome == "disconnected":
                    result.disconnected += 1
                elif outcome == "5xx":
                    result.server_errors += 1
                elif outcome == "refused":
                    result.refused += 1
                elif outcome == "client timeout":
                    result.client_timeouts += 1
                else:
                    result.malformed.append(f"{path}: {outcome}")


def _one_stream(http: httpx.Client, path: str, body: dict, check, hang_up_after: int | None) -> str:
    with http.stream("POST", path, json=body) as response:
        if response.status_code >= 500 and response.status_code not in (503, 529):
            return "5xx"
        if response.status_code in (429, 503, 529):
            return "refused"
        if response.status_code != 200:
            return f"status {response.status_code}"
        lines = []
        for line in response.iter_lines():
            if line:
                lines.append(line)
            if hang_up_after is not None and len(lines) >= hang_up_after:
                return "disconnected"  # leaving the block closes the connection mid-stream
    problem = check(lines)
    return problem or "completed"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def kept_bytes(base_url: str) -> int:
    """What the server's host-memory conversation cache holds now (0 for a server without one)."""
    try:
        response = httpx.get(base_url + "/metrics", timeout=10)
    except httpx.HTTPError:
        return 0
    for line in response.text.splitlines() if response.status_code == 200 else ():
        if line.startswith("edge_cache_ram_bytes "):
            return int(float(line.split()[1]))
    return 0


def soak(base_url: str, pid: int, duration_s: float, clients: int = 4, disconnect_rate: float = 0.3,
         sample_every_s: float = 2.0, seed: int = 0) -> SoakResult:
    _loopback_only(base_url)
    result = SoakResult(duration_s=duration_s, clients=clients)
    started = time.monotonic()
    stop_at = started + duration_s
    lock = threading.Lock()
    threads = [threading.Thread(target=_client, args=(base_url, result, stop_at, seed + number, disconnect_rate, lock),
                                daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    while time.monotonic() < stop_at:
        _sample(result, base_url, pid, time.monotonic() - started)
        time.sleep(sample_every_s)
    for thread in threads:
        thread.join(timeout=180)
    _sample(result, base_url, pid, time.monotonic() - started)
    return result


def _sample(result: SoakResult, base_url: str, pid: int, at: float) -> None:
    kept = kept_bytes(base_url)
    result.kept_max = max(result.kept_max, kept)
    result.rss_samples.append((round(at, 1), rss_bytes(pid) - kept))


def _loopback_only(base_url: str) -> None:
    host = urlsplit(base_url).hostname or ""
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise SystemExit(f"soak: only loopback servers, not {host}")


def _start_server(extra: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "serve", "--port", str(port), *extra], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/health", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("soak: the server did not start")


def summary(result: SoakResult) -> dict:
    samples = [rss for _, rss in result.rss_samples]
    return {"duration_s": result.duration_s, "clients": result.clients, "completed": result.completed,
            "disconnected": result.disconnected, "refused": result.refused, "client_timeouts": result.client_timeouts,
            "server_errors": result.server_errors,
            "malformed": result.malformed[:20], "rss_warm_mib": round((result.warm_rss() or 0) / 2**20, 1),
            "rss_min_mib": round(min(samples) / 2**20, 1), "rss_max_mib": round(max(samples) / 2**20, 1),
            "rss_median_mib": round(statistics.median(samples) / 2**20, 1),
            "rss_drift_after_warmup": round(result.rss_drift(), 4),
            "kept_conversations_max_mib": round(result.kept_max / 2**20, 1), "passed": result.passed}


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--disconnect-rate", type=float, default=0.3, help="share of streams cut mid-way")
    parser.add_argument("--url", help="an already running server (needs --pid); default: start one")
    parser.add_argument("--pid", type=int, help="the server's process id, for its RSS")
    parser.add_argument("--out", type=Path, help="JSON result (default benchmarks/results/soak-<minutes>min.json)")
    parser.add_argument("server_args", nargs="*", help="extra `edge serve` flags for the server it starts")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = configure_parser(argparse.ArgumentParser(description=__doc__.split("\n\n")[0])).parse_args(argv)
    process = None
    if args.url:
        if args.pid is None:
            raise SystemExit("soak: --url needs --pid")
        base_url, pid = args.url, args.pid
    else:
        process, base_url = _start_server(args.server_args)
        pid = process.pid
    try:
        result = soak(base_url, pid, args.minutes * 60, args.clients, args.disconnect_rate,
                      sample_every_s=max(2.0, args.minutes * 60 / 600))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    report = {**summary(result), "rss_samples": result.rss_samples, "machine": os.uname().nodename,
              "cpus": os.cpu_count()}
    out = args.out or REPO / "benchmarks" / "results" / f"soak-{args.minutes:g}min.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(summary(result), indent=2))
    print(f"wrote {out}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
