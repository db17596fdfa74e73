"""One model, one fresh process: load time, peak RSS, prompt and decode speed, time to first token.

Run as ``python -m edge.bench.probe MODEL --prompt-file F`` and read the JSON on the last stdout line.
A fresh process per run makes the peak RSS that model's alone (plus this interpreter and llama.cpp,
reported separately as ``rss_before_load_bytes``). The model is loaded through edge.runtime.llama so the
AMX crash policy applies. Decoding is greedy with end-of-generation tokens banned, so every run decodes
exactly ``--gen-tokens`` tokens; one short warm-up run (excluded) pages the weights in first.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def rss_bytes(field: str = "VmRSS") -> int:
    """A line of /proc/self/status in bytes (Linux; 0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_bytes() -> int:
    """This process's peak RSS. VmHWM first: Linux carries ``ru_maxrss`` across fork + exec, so a probe
    started by a large parent would report the parent's size; VmHWM belongs to the probe's own memory."""
    peak = rss_bytes("VmHWM")
    if peak:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def prompt_tokens(model, text: str, count: int) -> list[int]:
    """The first ``count`` tokens of the text after BOS, the text repeated if it is too short."""
    from edge.runtime import llama

    body = llama.tokenize(model, text, special=False)
    if not body:
        raise SystemExit("probe: the prompt text produced no tokens")
    while len(body) < count:
        body = body + body
    return [model.token_bos()] + body[:count - 1]


def eog_mask(model) -> np.ndarray:
    import llama_cpp

    return np.array([bool(llama_cpp.llama_vocab_is_eog(model.vocab, t)) for t in range(model.n_vocab())])


def generate(model, context, tokens: list[int], n_gen: int, n_batch: int, banned: np.ndarray) -> dict:
    """Prompt, then ``n_gen`` greedy tokens; the timings of one run."""
    from llama_cpp import _internals

    from edge.runtime import llama

    context.kv_cache_clear()
    batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
    n_vocab = model.n_vocab()
    started = time.perf_counter()
    llama.decode_tokens(context, batch, tokens, 0, n_batch)
    prompt_done = time.perf_counter()
    token = _greedy(llama.logits_row(context, n_vocab), banned)
    first_token = time.perf_counter()
    for position in range(len(tokens), len(tokens) + n_gen - 1):
        llama.decode_tokens(context, batch, [token], position, n_batch)
        token = _greedy(llama.logits_row(context, n_vocab), banned)
    finished = time.perf_counter()
    batch.close()
    return {"pp_tok_s": len(tokens) / (prompt_done - started), "ttft_ms": (first_token - started) * 1000,
            "tg_tok_s": (n_gen - 1) / (finished - first_token) if n_gen > 1 else 0.0}


def _greedy(logits: np.ndarray, banned: np.ndarray) -> int:
    return int(np.argmax(np.where(banned, -np.inf, logits)))


def probe(model_path: str, text: str, n_prompt: int, n_gen: int, threads: int, n_batch: int = 512) -> dict:
    from edge.runtime import llama

    before = rss_bytes()
    started = time.perf_counter()
    model = llama.load_model(model_path)
    context = llama.new_context(model, llama.ContextOptions(n_ctx=n_prompt + n_gen + 16, n_batch=n_batch,
                                                            n_threads=threads))
    load_s = time.perf_counter() - started
    tokens = prompt_tokens(model, text, n_prompt)
    banned = eog_mask(model)
    generate(model, context, tokens[:16], min(n_gen, 4), n_batch, banned)  # warm-up, not reported
    run = generate(model, context, tokens, n_gen, n_batch, banned)
    context.close()
    model.close()
    return {"load_s": load_s, "rss_before_load_bytes": before, "peak_rss_bytes": peak_rss_bytes(),
            "prompt_tokens": len(tokens), "gen_tokens": n_gen, **run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="measure one GGUF in this process; prints JSON")
    parser.add_argument("model")
    parser.add_argument("--prompt-file", required=True, help="UTF-8 text the prompt is cut from")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    text = Path(args.prompt_file).read_text(encoding="utf-8")
    result = probe(args.model, text, args.prompt_tokens, args.gen_tokens, args.threads)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
