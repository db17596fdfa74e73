"""A sequence's keys/values as bytes: copied out of the context, kept, written to disk, read back.

A sequence's state (``llama_state_seq_get_data``: its cells in every layer) is what both caches keep.
The host-memory cache (``prompt_store.py``, ``--cache-ram``) holds it as bytes; ``--persist-cache`` writes
the slots and those bytes in one file format at shutdown and reads them back at start, so a restarted
assistant finds its system prompt, and the conversations it was in, already evaluated: restoring is a
file read and a memory copy, where evaluating them again is a prefill (benchmarks/bench_persist_cache.py
measures both). The folders are keyed by everything that shapes the cache's layout — the model file,
the KV type, the sliding-window layout, the window — so a file made under another configuration is
never loaded; a file that is not whole, or that llama.cpp refuses, is removed.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import _internals

from edge.runtime import llama

log = logging.getLogger("edge.runtime")

_MAGIC = b"EDGESEQ01"
_HEADER = struct.Struct("<9sqqq")  # magic, token count, oldest position, state bytes


@dataclass(eq=False)  # compared by identity
class SavedSequence:
    tokens: tuple[int, ...]
    state: ctypes.Array  # the bytes llama_state_seq_get_data wrote
    oldest: int  # oldest position held in every layer (more than 0 once a trimmed window wrapped)

    @property
    def size(self) -> int:
        return len(self.state)


def cache_directory(root: Path, model_path: Path, kv_type: str, swa_full: bool, ctx_size: int) -> Path:
    stat = model_path.stat()
    identity = f"{model_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{kv_type}|{swa_full}|{ctx_size}"
    return root / "kv" / hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def _buffer(size: int) -> ctypes.Array:
    """``size`` bytes for llama.cpp to fill, left uninitialised (a ctypes array would zero them first:
    milliseconds for a long conversation, on the scheduler's thread)."""
    return (ctypes.c_uint8 * size).from_buffer(np.empty(size, dtype=np.uint8))


def copy_out(context: _internals.LlamaContext, seq_id: int, tokens: list[int],
             limit: int | None = None) -> SavedSequence | None:
    """Sequence ``seq_id``, which holds ``tokens``, as bytes; None if it is larger than ``limit``."""
    size = llama_cpp.llama_state_seq_get_size(context.ctx, seq_id)
    if not size or (limit is not None and size > limit):
        return None
    state = _buffer(size)
    if llama_cpp.llama_state_seq_get_data(context.ctx, state, size, seq_id) != size:
        return None
    return SavedSequence(tuple(tokens), state, llama.oldest_position(context, seq_id))


def copy_in(context: _internals.LlamaContext, saved: SavedSequence, seq_id: int) -> bool:
    """Replaces sequence ``seq_id``'s cache with ``saved``; False (and an empty sequence) on failure."""
    context.kv_cache_seq_rm(seq_id, 0, -1)
    if llama_cpp.llama_state_seq_set_data(context.ctx, saved.state, saved.size, seq_id):
        return True
    context.kv_cache_seq_rm(seq_id, 0, -1)
    return False


def write_file(path: Path, saved: SavedSequence) -> int:
    """Writes ``saved`` whole or not at all (through a partial file); returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as file:
        file.write(_HEADER.pack(_MAGIC, len(saved.tokens), saved.oldest, saved.size))
        file.write(struct.pack(f"<{len(saved.tokens)}i", *saved.tokens))
        file.write(memoryview(saved.state))
    partial.replace(path)
    return path.stat().st_size


def read_file(path: Path) -> SavedSequence | None:
    """What ``write_file`` wrote; None (and the file removed) when it is not a whole saved sequence."""
    saved = None
    with path.open("rb") as file:
        header = file.read(_HEADER.size)
        if len(header) == _HEADER.size:
            magic, n_tokens, oldest, size = _HEADER.unpack(header)
            whole = _HEADER.size + 4 * n_tokens + size == path.stat().st_size
            if magic == _MAGIC and n_tokens > 0 and size > 0 and whole:
                tokens = struct.unpack(f"<{n_tokens}i", file.read(4 * n_tokens))
                state = _buffer(size)
                file.readinto(state)  # straight into the buffer llama.cpp reads: no copy between
                saved = SavedSequence(tokens, state, oldest)
    if saved is None:
        log.warning("discarding %s: not a whole saved sequence", path)
        path.unlink(missing_ok=True)
    return saved


def save_sequence(context: _internals.LlamaContext, path: Path, seq_id: int, tokens: list[int]) -> int:
    """Writes one sequence's keys/values and its tokens; returns the bytes written (0 on failure)."""
    saved = copy_out(context, seq_id, tokens)
    return write_file(path, saved) if saved is not None else 0


def load_sequence(context: _internals.LlamaContext, path: Path, seq_id: int) -> list[int]:
    """Restores a saved sequence into ``seq_id``; returns its tokens ([] when it cannot be restored)."""
    saved = read_file(path)
    if saved is None:
        return []
    if not copy_in(context, saved, seq_id):
        log.warning("discarding %s: llama.cpp could not restore it into this context", path)
        path.unlink(missing_ok=True)
        return []
    return list(saved.tokens)
