"""Does saving the cache to disk pay? A restarted assistant's first answer, with and without it.

For system prompts of several lengths: the time to evaluate the prompt from scratch (what a restart
costs without ``--persist-cache``) against the time to restore the saved sequence from its file (what it
costs with it), alternating, on the demo model; plus the file's size.

    .venv/bin/python benchmarks/bench_persist_cache.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.core.request import GenerationRequest, Message, TextPart  # noqa: E402
from edge.runtime import kv_files, llama  # noqa: E402
from edge.runtime.engine import Engine, EngineConfig  # noqa: E402
from edge.runtime.sources import resolve_model  # noqa: E402
from edge.settings import Settings  # noqa: E402


def system_prompt(words: int) -> str:
    return " ".join(f"rule{index}: keep the light burning." for index in range(words // 5))


def measure(engine: Engine, words: int, folder: Path) -> dict:
    request = GenerationRequest(messages=(Message("system", (TextPart(system_prompt(words)),)),
                                          Message("user", (TextPart("Ready?"),))), max_tokens=1)
    tokens = list(engine.prepare(request).tokens)
    context = engine.context
    context.kv_cache_seq_rm(0, 0, -1)
    started = time.perf_counter()
    batch = llama.TokenBatch(engine.config.batch_size, 1)
    for start in range(0, len(tokens), engine.config.batch_size):
        batch.clear()
        chunk = tokens[start:start + engine.config.batch_size]
        for offset, token in enumerate(chunk):
            batch.add(token, start + offset, 0, start + offset == len(tokens) - 1)
        batch.decode(context)
    evaluate_s = time.perf_counter() - started
    path = folder / "slot.bin"
    size = kv_files.save_sequence(context, path, 0, tokens)
    context.kv_cache_seq_rm(0, 0, -1)
    os.posix_fadvise(os.open(path, os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)  # read it back from disk
    started = time.perf_counter()
    restored = kv_files.load_sequence(context, path, 0)
    restore_s = time.perf_counter() - started
    assert restored == tokens
    batch.close()
    return {"prompt_tokens": len(tokens), "evaluate_ms": evaluate_s * 1000, "restore_ms": restore_s * 1000,
            "file_mib": size / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--words", type=int, nargs="+", default=[200, 1000, 4000], help="system prompt sizes")
    args = parser.parse_args()
    files = resolve_model(None, None, Settings().cache_dir)
    engine = Engine.load(files, EngineConfig(ctx_size=8192, threads=args.threads, parallel=1))
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for words in args.words:
                runs = [measure(engine, words, Path(folder)) for _ in range(args.runs)]
                row = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                row["speedup"] = row["evaluate_ms"] / row["restore_ms"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        engine.close()
    print("| system prompt tokens | evaluate (ms) | restore from file (ms) | file (MiB) | restore is faster by |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['prompt_tokens']:.0f} | {row['evaluate_ms']:.0f} | {row['restore_ms']:.1f} | "
              f"{row['file_mib']:.1f} | ×{row['speedup']:.0f} |")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
