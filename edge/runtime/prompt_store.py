"""Conversations that lost their slot, kept in host memory (``--cache-ram``).

A slot holds one conversation's keys/values. When a request takes a slot whose cache it does not
continue, the conversation there would be evaluated again on its next turn; instead the sequence's
state is copied here first (``kv_files.copy_out``), and a later prompt that continues it further than
any slot does has it copied back (``kv_files.copy_in``) into the slot it runs in. A copy costs a memory copy of the keys/values, where evaluating them again costs a
prefill: benchmarks/bench_vs_llama_server.py measures both (llama-server keeps a cache like it).

Entries are dropped least recently used first once the limit is passed; an entry that the saved one
extends is dropped at once, since the new one serves every prompt the old one could. With
``--persist-cache`` they are written beside the slots at shutdown and read back at start.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from llama_cpp import _internals

from edge.runtime import kv_files


@dataclass(eq=False)  # compared by identity
class StoredPrompt(kv_files.SavedSequence):
    last_used: int = 0


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

    def save(self, context: _internals.LlamaContext, seq_id: int, tokens: list[int]) -> bool:
        """Copies sequence ``seq_id``, which holds ``tokens``, unless it does not fit the limit at all."""
        if not tokens or self.holds(tokens):
            return False
        saved = kv_files.copy_out(context, seq_id, tokens, self.limit)
        if saved is None:
            return False
        # an entry the new one extends serves nothing the new one does not
        self.entries = [entry for entry in self.entries if saved.tokens[:len(entry.tokens)] != entry.tokens]
        self.entries.append(StoredPrompt(saved.tokens, saved.state, saved.oldest, next(self._clock)))
        self._drop_to(self.limit)
        return True

    def restore(self, context: _internals.LlamaContext, entry: StoredPrompt, seq_id: int) -> bool:
        """Replaces sequence ``seq_id``'s cache with ``entry``'s; False (and an empty sequence) on failure."""
        entry.last_used = next(self._clock)
        if kv_files.copy_in(context, entry, seq_id):
            return True
        if entry in self.entries:  # a save just before may have dropped it already
            self.entries.remove(entry)
        self.size = sum(kept.size for kept in self.entries)
        return False

    def write(self, directory: Path) -> int:
        """Writes every entry, least recently used first, replacing what an earlier shutdown wrote;
        returns the bytes written."""
        for stale in directory.glob("kept-*.bin"):
            stale.unlink()
        ordered = sorted(self.entries, key=lambda entry: entry.last_used)
        return sum(kv_files.write_file(directory / f"kept-{index:04d}.bin", entry)
                   for index, entry in enumerate(ordered))

    def read(self, directory: Path) -> int:
        """Reads what ``write`` left, up to the limit (the most recently used first); returns the tokens
        read. A file that is not whole is removed, never half loaded."""
        restored = 0
        for path in sorted(directory.glob("kept-*.bin"), reverse=True):
            saved = kv_files.read_file(path)
            if saved is not None and self.size + saved.size <= self.limit:
                # older than anything used from now on, in the order the files were written
                self.entries.append(StoredPrompt(saved.tokens, saved.state, saved.oldest, -len(self.entries)))
                self.size += saved.size
                restored += len(saved.tokens)
        return restored

    def _drop_to(self, limit: int) -> None:
        entries = sorted(self.entries, key=lambda entry: entry.last_used)
        total = sum(entry.size for entry in entries)
        while entries and total > limit:
            total -= entries.pop(0).size
        self.entries, self.size = entries, total
