"""Conversations that lost their slot, kept in host memory (``--cache-ram``).

A slot holds one conversation's keys/values. When a request takes a slot whose cache it does not
continue, the conversation there would be evaluated again on its next turn; instead the sequence's
state (``llama_state_seq_get_data``: its cells in every layer) is copied here first, and a later prompt
that continues it further than any slot does has it copied back (``llama_state_seq_set_data``) into the
slot it runs in. A copy costs a memory copy of the keys/values, where evaluating them again costs a
prefill: benchmarks/bench_vs_llama_server.py measures both (llama-server keeps a cache like it).

Entries are dropped least recently used first once the limit is passed; an entry that the saved one
extends is dropped at once, since the new one serves every prompt the old one could. With
``--persist-cache`` they are written beside the slots at shutdown and read back at start.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from llama_cpp import _internals

log = logging.getLogger("edge.runtime")

_MAGIC = b"EDGEKEPT1"
_HEADER = struct.Struct("<9sqqq")  # magic, token count, oldest position, state bytes


@dataclass(eq=False)
class StoredPrompt:
    tokens: tuple[int, ...]
    state: ctypes.Array  # the bytes llama_state_seq_get_data wrote
    oldest: int  # oldest position held in every layer (more than 0 once a trimmed window wrapped)
    last_used: int

    @property
    def size(self) -> int:
        return len(self.state)


class PromptStore:
    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.entries: list[StoredPrompt] = []
        self.size = 0  # bytes held, kept as one number so that /metrics may read it from any thread
        self._clock = itertools.count(1)

    def holds(self, tokens: list[int]) -> bool:
        """Whether an entry already serves every prompt ``tokens`` could (it starts with them)."""
        n = len(tokens)
        wanted = tuple(tokens)
        return any(entry.tokens[:n] == wanted for entry in self.entries)

    def save(self, context: _internals.LlamaContext, seq_id: int, tokens: list[int], oldest: int) -> bool:
        """Copies sequence ``seq_id``, which holds ``tokens``, unless it does not fit the limit at all."""
        if not tokens or self.holds(tokens):
            return False
        size = llama_cpp.llama_state_seq_get_size(context.ctx, seq_id)
        if not size or size > self.limit:
            return False
        state = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(context.ctx, state, size, seq_id) != size:
            return False
        saved = tuple(tokens)
        # an entry the new one extends serves nothing the new one does not
        self.entries = [entry for entry in self.entries if saved[:len(entry.tokens)] != entry.tokens]
        self.entries.append(StoredPrompt(saved, state, oldest, next(self._clock)))
        self._drop_to(self.limit)
        return True

    def restore(self, context: _internals.LlamaContext, entry: StoredPrompt, seq_id: int) -> bool:
        """Replaces sequence ``seq_id``'s cache with ``entry``'s; False (and an empty sequence) on failure."""
        context.kv_cache_seq_rm(seq_id, 0, -1)
        entry.last_used = next(self._clock)
        if llama_cpp.llama_state_seq_set_data(context.ctx, entry.state, entry.size, seq_id):
            return True
        context.kv_cache_seq_rm(seq_id, 0, -1)
        if entry in self.entries:  # a save just before may have dropped it already
            self.entries.remove(entry)
        self.size = sum(kept.size for kept in self.entries)
        return False

    def write(self, directory: Path) -> int:
        """Writes every entry, least recently used first, replacing what an earlier shutdown wrote;
        returns the bytes written. The state bytes are llama.cpp's own, read back as they are."""
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("kept-*.bin"):
            stale.unlink()
        written = 0
        for index, entry in enumerate(sorted(self.entries, key=lambda kept: kept.last_used)):
            path = directory / f"kept-{index:04d}.bin"
            partial = path.with_suffix(".partial")
            with partial.open("wb") as file:
                file.write(_HEADER.pack(_MAGIC, len(entry.tokens), entry.oldest, entry.size))
                file.write(struct.pack(f"<{len(entry.tokens)}i", *entry.tokens))
                file.write(memoryview(entry.state))
            partial.replace(path)
            written += path.stat().st_size
        return written

    def read(self, directory: Path) -> int:
        """Reads what ``write`` left, up to the limit (the most recently used first); returns the tokens
        read. A file that is not whole is removed, never half loaded."""
        restored = 0
        for path in sorted(directory.glob("kept-*.bin"), reverse=True):
            entry = _read_entry(path)
            if entry is None:
                log.warning("discarding %s: not a whole kept conversation", path)
                path.unlink(missing_ok=True)
            elif self.size + entry.size <= self.limit:
                entry.last_used = -len(self.entries)  # older than anything used from now on, in file order
                self.entries.append(entry)
                self.size += entry.size
                restored += len(entry.tokens)
        return restored

    def _drop_to(self, limit: int) -> None:
        entries = sorted(self.entries, key=lambda entry: entry.last_used)
        total = sum(entry.size for entry in entries)
        while entries and total > limit:
            total -= entries.pop(0).size
        self.entries, self.size = entries, total


def _read_entry(path: Path) -> StoredPrompt | None:
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        return None
    magic, n_tokens, oldest, size = _HEADER.unpack_from(data)
    if magic != _MAGIC or n_tokens <= 0 or size <= 0 or len(data) != _HEADER.size + 4 * n_tokens + size:
        return None
    tokens = struct.unpack_from(f"<{n_tokens}i", data, _HEADER.size)
    state = (ctypes.c_uint8 * size).from_buffer_copy(data, _HEADER.size + 4 * n_tokens)
    return StoredPrompt(tuple(tokens), state, oldest, 0)
