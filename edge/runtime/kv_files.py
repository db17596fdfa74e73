"""Saving the cached conversations to disk at shutdown and restoring them at start (``--persist-cache``).

A restarted assistant then finds its system prompt, and the conversations it was in, already evaluated:
restoring a sequence's keys/values is a file read, where evaluating them again is a prefill
(benchmarks/bench_persist_cache.py measures both). The files are keyed by everything that shapes the
cache's layout — the model file, the KV type, the sliding-window layout, the window — so a file made
under another configuration is never loaded; a file llama.cpp refuses is removed.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from pathlib import Path

import llama_cpp
from llama_cpp import _internals

log = logging.getLogger("edge.runtime")


def cache_directory(root: Path, model_path: Path, kv_type: str, swa_full: bool, ctx_size: int) -> Path:
    stat = model_path.stat()
    identity = f"{model_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{kv_type}|{swa_full}|{ctx_size}"
    return root / "kv" / hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def save_sequence(context: _internals.LlamaContext, path: Path, seq_id: int, tokens: list[int]) -> int:
    """Writes one sequence's keys/values and its tokens; returns the bytes written (0 on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (llama_cpp.llama_token * len(tokens))(*tokens)
    partial = path.with_suffix(".partial")
    written = llama_cpp.llama_state_seq_save_file(context.ctx, str(partial).encode(), seq_id, array, len(tokens))
    if written:
        partial.replace(path)
    else:
        partial.unlink(missing_ok=True)
    return written


def load_sequence(context: _internals.LlamaContext, path: Path, seq_id: int, capacity: int) -> list[int]:
    """Restores a saved sequence into ``seq_id``; returns its tokens ([] when the file does not fit)."""
    tokens = (llama_cpp.llama_token * capacity)()
    count = ctypes.c_size_t(0)
    read = llama_cpp.llama_state_seq_load_file(context.ctx, str(path).encode(), seq_id, tokens, capacity,
                                               ctypes.byref(count))
    if not read:
        log.warning("discarding %s: llama.cpp could not restore it into this context", path)
        path.unlink(missing_ok=True)
        context.kv_cache_seq_rm(seq_id, 0, -1)
        return []
    return list(tokens[:count.value])
