"""edge against llama.cpp's own ``llama-server`` on the same GGUF, measured in one run, alternating.

Both servers run side by side (idle while the other is measured). Each round measures, on each server in
turn (the order flips every round; the single-client rows alternate run by run): single-client streaming
decode speed at the hosted API's sampling defaults (temperature 0.7, top_p 0.95, nothing else), time to
first token of a short prompt neither server has seen, 4 concurrent streaming clients (aggregate tok/s and
median TTFT), three conversations interleaved turn by turn (the share of each follow-up prompt found
cached, and the follow-ups' TTFT), the short prompts again once other traffic has taken their slots, and
the resident memory. The end-of-text tokens are banned through logit_bias so both generate the full length.

    .venv/bin/python benchmarks/bench_vs_llama_server.py --llama-server PATH/llama-server --rounds 3

llama-server is a baseline built from the llama.cpp vendored in the llama-cpp-python sdist
(``cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-server``), never a dependency.
The demo GGUF has no chat template, so llama-server gets ``--no-jinja --chat-template gemma``; the
script checks that both count the same prompt tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.bench.serve import stream_one  # noqa: E402
from soak import kept_bytes  # noqa: E402 - benchmarks/ is this script's folder
from tests.conftest import free_port  # noqa: E402

DEFAULTS = {"temperature": 0.7, "top_p": 0.95}
LONG_PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def start(command: list[str], base: str, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{command[0]} did not become healthy")


def rss_mib(process: subprocess.Popen) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


class Server:
    def __init__(self, name: str, base: str, process: subprocess.Popen, banned: dict[str, float]):
        self.name, self.base, self.process, self.banned = name, base, process, banned
        # a fresh loopback connection per request (well under a millisecond, the same for both): a reused
        # keep-alive connection the server has just closed would otherwise fail the request
        self.client = httpx.Client(limits=httpx.Limits(max_connections=8, max_keepalive_connections=0), timeout=300)

    def body(self, messages, max_tokens: int, stream: bool = True, **extra) -> dict:
        body = {"messages": messages, "max_tokens": max_tokens, "stream": stream,
                "logit_bias": self.banned, **DEFAULTS, **extra}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def stream(self, messages, max_tokens: int, **extra):
        return stream_one(self.client, self.base, self.body(messages, max_tokens, **extra), 300)

    def complete(self, messages, max_tokens: int) -> dict:
        response = self.client.post(f"{self.base}/v1/chat/completions", json=self.body(messages, max_tokens, False))
        response.raise_for_status()
        return response.json()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def decode_tok_s(server: Server) -> float:
    """Tokens after the first over the time from first to last: the decode speed one client sees."""
    result = server.stream(user(LONG_PROMPT), 256)
    assert result.ok, (server.name, result.error)
    return len(result.itl_ms) / (sum(result.itl_ms) / 1000)


NAMES = ("Ada Alba Bram Cleo Dara Emil Fern Gus Hana Ivo Juno Kai Lena Milo Nora Otto Pia Quin Rosa Sami Tova "
         "Uli Vera Wim Xena Yuri Zola Abel Bela Cato Dion Elke Finn Gwen Hugo Iris Jara Knut Lior Mara Nils "
         "Olga Pavel Rhea Sven Tilda Umar Vidar Wanda Yara Zeno Anja Boris Carla Dmitri Esme Felix").split()


def short_prompts(round_index: int, runs: int = 7) -> list[str]:
    """Short prompts neither server has seen in this run: they differ from each other, and from every
    earlier round's, at the first word of the message."""
    names = NAMES[round_index * runs:(round_index + 1) * runs]
    assert len(names) == runs, "more rounds than names"
    return [f"{name} says hi. Say hello back." for name in names]


def first_token_ms(server: Server, prompt: str) -> float:
    result = server.stream(user(prompt), 4)
    assert result.ok, (server.name, result.error)
    return result.ttft_ms


def ttft_ms(server: Server, prompts: list[str]) -> float:
    return statistics.median(first_token_ms(server, prompt) for prompt in prompts)


def alternating(servers: list[Server], runs, measure_one) -> dict[str, float]:
    """The median of ``measure_one(server, run)`` over ``runs``, the servers taking turns run by run (the
    first of each pair alternating too), so that the machine's noise falls on both alike."""
    values: dict[str, list[float]] = {server.name: [] for server in servers}
    for index, run in enumerate(runs):
        for server in (servers if index % 2 == 0 else servers[::-1]):
            values[server.name].append(measure_one(server, run))
    return {name: statistics.median(found) for name, found in values.items()}


def single_client(servers: list[Server], prompts: list[str], decode_runs: int = 4) -> dict[str, dict]:
    decode = alternating(servers, range(decode_runs), lambda server, _: decode_tok_s(server))
    ttft = alternating(servers, prompts, first_token_ms)
    return {name: {"decode_tok_s": decode[name], "ttft_ms": ttft[name]} for name in decode}


def four_clients(server: Server, round_index: int) -> tuple[float, float]:
    # new prompts every round, so that no round finds an earlier round's in either server's cache
    prompts = [f"Round {round_index}. {LONG_PROMPT} Version {index}." for index in range(4)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda prompt: server.stream(user(prompt), 128), prompts))
    wall = time.perf_counter() - started
    assert all(r.ok for r in results), [r.error for r in results]
    return sum(r.tokens for r in results) / wall, statistics.median(r.ttft_ms for r in results)


def cached_share(server: Server, response: dict) -> float:
    usage = response.get("usage") or {}
    prompt = usage.get("prompt_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is None and "timings" in response:  # llama-server's own accounting
        timings = response["timings"]
        cached, prompt = timings.get("cache_n", 0), timings.get("cache_n", 0) + timings.get("prompt_n", 0)
    return (cached or 0) / prompt if prompt else 0.0


def interleaved(server: Server, round_index: int, turns: int = 4) -> tuple[float, float]:
    """Three conversations, one turn each in turn; returns (median cached share, median follow-up TTFT)."""
    # an assistant's system prompt is long next to one turn: a few hundred tokens of instructions
    rules = " ".join(f"Rule {index}: answer kindly, briefly and truthfully." for index in range(25))
    systems = [f"Session {round_index}. You are {who}. {rules}"
               for who in ("a sailor", "a baker who loves bread", "an astronomer")]
    histories = [[{"role": "system", "content": system}] for system in systems]
    shares, ttfts = [], []
    for turn in range(turns):
        for history in histories:
            history.append({"role": "user", "content": f"Question {turn}: tell me one more thing about your work."})
            if turn:
                timed = server.stream(history, 1)
                ttfts.append(timed.ttft_ms)
            response = server.complete(history, 24)
            if turn:
                shares.append(cached_share(server, response))
            history.append({"role": "assistant", "content": response["choices"][0]["message"]["content"]})
    return statistics.median(shares), statistics.median(ttfts)


def measure(server: Server, round_index: int, prompts: list[str]) -> dict:
    aggregate, ttft4 = four_clients(server, round_index)
    share, follow_up = interleaved(server, round_index)
    # the same short prompts once more, now that other traffic has taken the slots they were in: both
    # servers keep conversations that lost their slot in host memory (edge --cache-ram, llama-server's
    # prompt cache) and restore them
    repeat = ttft_ms(server, prompts)
    return {"aggregate4_tok_s": aggregate, "ttft4_ms": ttft4, "cached_share": share,
            "follow_up_ttft_ms": follow_up, "repeat_ttft_ms": repeat, **rss_mib(server.process),
            "kept_mib": kept_mib(server)}


def kept_mib(server: Server) -> float:
    """edge's conversations kept in host memory now (part of its RSS); llama-server does not say."""
    return kept_bytes(server.base) / 2**20


def prompt_tokens(server: Server) -> int:
    return server.complete(user(LONG_PROMPT), 1)["usage"]["prompt_tokens"]


ROWS = [("decode_tok_s", "one streaming client, decode tok/s (temperature 0.7, top_p 0.95)", "≥ 1.0"),
        ("ttft_ms", "one client, time to first token of a new short prompt (ms)", "≤ 1.1"),
        ("aggregate4_tok_s", "4 concurrent streaming clients, aggregate tok/s", "≥ 1.0"),
        ("ttft4_ms", "4 concurrent clients, median time to first token (ms)", "≤ 1.5"),
        ("cached_share", "interleaved conversations: share of each follow-up prompt cached", "≥ 0.95 (edge)"),
        ("follow_up_ttft_ms", "interleaved conversations: follow-up time to first token (ms)", "—"),
        ("repeat_ttft_ms", "one client, the same short prompt again after other traffic (ms)", "—"),
        ("VmHWM", "peak resident memory (MiB)", "—"),
        ("kept_mib", "of which conversations kept in host memory at the end (edge, MiB)", "—")]


def table(rounds: list[dict]) -> str:
    lines = ["| what | edge | llama-server | ratio | target |", "| --- | --- | --- | --- | --- |"]
    for key, label, target in ROWS:
        edge = [r["edge"][key] for r in rounds]
        base = [r["llama-server"][key] for r in rounds]
        me, mb = statistics.median(edge), statistics.median(base)
        spread = lambda values: f"{statistics.median(values):.3g} ({min(values):.3g}–{max(values):.3g})"  # noqa: E731
        ratio = f"×{me / mb:.2f}" if mb else "—"
        lines.append(f"| {label} | {spread(edge)} | {spread(base)} | {ratio} | {target} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="GGUF (default: the demo model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx-size", type=int, default=8192, help="per slot")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench-vs-llama-server.json")
    args = parser.parse_args()
    if args.model is None:
        from edge.runtime.sources import demo_model
        from edge.settings import Settings

        args.model = demo_model(Settings().cache_dir).model
    logs = args.out.parent
    logs.mkdir(parents=True, exist_ok=True)
    edge_port, llama_port = free_port(), free_port()
    edge = start([sys.executable, "-m", "edge.cli", "serve", "--model", str(args.model), "--port", str(edge_port),
                  "--threads", str(args.threads), "--parallel", str(args.parallel), "--ctx-size", str(args.ctx_size),
                  "--log-level", "warning"], f"http://127.0.0.1:{edge_port}", Path("/tmp/bench-edge.log"))
    llama = start([str(args.llama_server), "-m", str(args.model), "--port", str(llama_port), "-t", str(args.threads),
                   "-tb", str(args.threads), "-np", str(args.parallel), "-c", str(args.ctx_size * args.parallel),
                   "-b", "512", "-ub", "512", "--no-jinja", "--chat-template", "gemma", "--no-webui",
                   "--log-disable"], f"http://127.0.0.1:{llama_port}", Path("/tmp/bench-llama-server.log"))
    try:
        banned = {"1": -100, "106": -100}  # <eos>, <end_of_turn> of the Gemma 3 vocabulary
        servers = [Server("edge", f"http://127.0.0.1:{edge_port}", edge, banned),
                   Server("llama-server", f"http://127.0.0.1:{llama_port}", llama, banned)]
        counts = {server.name: prompt_tokens(server) for server in servers}
        if len(set(counts.values())) != 1:
            raise SystemExit(f"the servers build different prompts: {counts}")
        rounds = []
        for index in range(args.rounds):
            order = servers if index % 2 == 0 else servers[::-1]
            prompts = short_prompts(index)
            single = single_client(order, prompts)
            rounds.append({server.name: {**single[server.name], **measure(server, index, prompts)} for server in order})
            print(f"round {index + 1}: {json.dumps(rounds[-1])}", flush=True)
        report = {"command": " ".join(sys.argv), "load_average": os.getloadavg(), "prompt_tokens": counts,
                  "model": str(args.model), "rounds": rounds, "table": table(rounds)}
        args.out.write_text(json.dumps(report, indent=2))
        print(report["table"])
        print(f"load average {os.getloadavg()}")
    finally:
        for process in (edge, llama):
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
