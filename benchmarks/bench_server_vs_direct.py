"""Decode tok/s and time to first token: edge's server (streaming) vs llama-cpp-python directly.

Both run in the same invocation on the same model, prompt, thread count and greedy sampling, one
after the other (never at the same time: they would share the CPU). End-of-turn tokens are banned
so that every run decodes exactly ``--tokens`` tokens.

- server: ``edge serve`` in a subprocess, a streaming ``/v1/chat/completions`` request read as SSE
  with httpx; TTFT is request sent → first content chunk, decode tok/s counts the chunks after it.
  The server runs with ``--no-prefix-cache`` so every prompt is evaluated cold, like the baseline;
  a second series with the prefix cache on shows what a repeated prompt costs.
- direct: a minimal llama-cpp-python loop (llama_decode + a greedy sampler chain), no HTTP, no
  parsing: the floor that edge's server adds its overhead to.

    .venv/bin/python benchmarks/bench_server_vs_direct.py [--model GGUF] [--runs 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT = ("You are the keeper of a lighthouse on a rocky coast. Describe, in detail, one night of "
          "storms: the sounds, the light, the ships you watch and what you think about until dawn.")


def banned_end_tokens(model) -> dict[int, float]:
    import llama_cpp

    return {token: -100.0 for token in range(model.n_vocab()) if llama_cpp.llama_vocab_is_eog(model.vocab, token)}


def direct_run(model, context, prompt_tokens: list[int], n_tokens: int, bias: dict[int, float]) -> dict:
    """One cold generation with llama-cpp-python's low-level API only."""
    from llama_cpp import _internals

    context.kv_cache_clear()
    batch = _internals.LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
    sampler = _internals.LlamaSampler()
    sampler.add_logit_bias(model.n_vocab(), bias)
    sampler.add_greedy()
    started = time.perf_counter()
    for start in range(0, len(prompt_tokens), 512):
        batch.set_batch(prompt_tokens[start:start + 512], n_past=start, logits_all=False)
        context.decode(batch)
    position = len(prompt_tokens)
    stamps = []
    for _ in range(n_tokens):
        token = sampler.sample(context, -1)
        model.token_to_piece(token)
        stamps.append(time.perf_counter())
        batch.set_batch([token], n_past=position, logits_all=False)
        context.decode(batch)
        position += 1
    sampler.close()
    batch.close()
    return _summarise(started, stamps)


def _summarise(started: float, stamps: list[float]) -> dict:
    decode_seconds = stamps[-1] - stamps[0]
    return {"ttft_ms": (stamps[0] - started) * 1000,
            "decode_tok_s": (len(stamps) - 1) / decode_seconds if decode_seconds > 0 else 0.0,
            "tokens": len(stamps)}


def server_run(base_url: str, model_id: str, n_tokens: int, bias: dict[int, float]) -> dict:
    body = {"model": model_id, "stream": True, "max_tokens": n_tokens, "temperature": 0,
            "logit_bias": {str(token): value for token, value in bias.items()},
            "messages": [{"role": "user", "content": PROMPT}]}
    stamps = []
    with httpx.Client(timeout=300) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    stamps.append(time.perf_counter())
    return _summarise(started, stamps)


def median_and_spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def measure_direct(model_path: Path, threads: int, runs: int, n_tokens: int) -> tuple[list[dict], int, dict]:
    from edge.formats.gemma3 import Gemma3Format
    from edge.runtime import llama
    from edge.core.request import Message, TextPart

    model = llama.load_model(model_path)
    context = llama.new_context(model, llama.ContextOptions(n_ctx=2048, n_batch=512, n_threads=threads))
    segments = Gemma3Format().render([Message("user", (TextPart(PROMPT),))])
    prompt_tokens = [t for s in segments for t in llama.tokenize(model, s.text, special=s.control)]
    bias = banned_end_tokens(model)
    direct_run(model, context, prompt_tokens, 8, bias)  # warm-up: page in the weights
    results = [direct_run(model, context, prompt_tokens, n_tokens, bias) for _ in range(runs)]
    context.close()
    model.close()
    return results, len(prompt_tokens), bias


def measure_server(model_path: Path, threads: int, runs: int, n_tokens: int, bias, prefix_cache: bool) -> list[dict]:
    from tests.conftest import start_server, stop_server

    args = ["--model", str(model_path), "--threads", str(threads), "--ctx-size", "2048", "--log-level", "warning"]
    if not prefix_cache:
        args.append("--no-prefix-cache")
    server = start_server(args, Path(os.environ.get("TMPDIR", "/tmp")) / "edge-bench-server.log")
    try:
        model_id = httpx.get(f"{server.base_url}/v1/models").json()["data"][0]["id"]
        server_run(server.base_url, model_id, 8, bias)  # warm-up
        return [server_run(server.base_url, model_id, n_tokens, bias) for _ in range(runs)]
    finally:
        stop_server(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF (default: the embedded demo model)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from edge.runtime.hardware import describe_machine
    from edge.runtime.sources import demo_model
    from edge.settings import Settings

    model_path = args.model or demo_model(Settings().cache_dir).model
    direct, prompt_tokens, bias = measure_direct(model_path, args.threads, args.runs, args.tokens)
    server_cold = measure_server(model_path, args.threads, args.runs, args.tokens, bias, prefix_cache=False)
    server_warm = measure_server(model_path, args.threads, args.runs, args.tokens, bias, prefix_cache=True)

    report = {"model": str(model_path), "prompt_tokens": prompt_tokens, "generated_tokens": args.tokens,
              "threads": args.threads, "machine": describe_machine(), "python": platform.python_version()}
    for name, results in (("direct", direct), ("server", server_cold), ("server_prefix_cached", server_warm)):
        report[name] = {key: median_and_spread([r[key] for r in results]) for key in ("ttft_ms", "decode_tok_s")}
    report["ratio_server_over_direct"] = {
        "decode_tok_s": report["server"]["decode_tok_s"]["median"] / report["direct"]["decode_tok_s"]["median"],
        "ttft_ms": report["server"]["ttft_ms"]["median"] / report["direct"]["ttft_ms"]["median"],
    }
    print(_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _table(report: dict) -> str:
    lines = [f"model {Path(report['model']).name}, prompt {report['prompt_tokens']} tokens, "
             f"{report['generated_tokens']} generated, {report['threads']} threads, "
             f"median of {report['direct']['decode_tok_s']['runs']} runs (min-max)", "",
             "| path | decode tok/s | TTFT ms |", "| --- | --- | --- |"]
    for name in ("direct", "server", "server_prefix_cached"):
        decode, ttft = report[name]["decode_tok_s"], report[name]["ttft_ms"]
        lines.append(f"| {name} | {decode['median']:.1f} ({decode['min']:.1f}-{decode['max']:.1f}) | "
                     f"{ttft['median']:.0f} ({ttft['min']:.0f}-{ttft['max']:.0f}) |")
    ratio = report["ratio_server_over_direct"]
    lines.append("")
    lines.append(f"server/direct: decode tok/s x{ratio['decode_tok_s']:.3f}, TTFT x{ratio['ttft_ms']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
