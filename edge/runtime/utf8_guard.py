"""Keeps generated text valid UTF-8 by banning byte tokens that would break a character.

Gemma's vocabulary falls back to single-byte tokens (``<0xE4>``) for rare characters. A model may pick
bytes that form no valid UTF-8 (a lone continuation byte, an overlong form, a surrogate). Decoding then
yields U+FFFD replacement characters, and llama.cpp's grammar, which counts characters its own lenient
way, may have accepted a string that is longer than ``maxLength`` once decoded. This sampler stage sees
the bytes written so far and leaves only the byte tokens that continue or start a valid sequence, so
every grammar-counted character is exactly one decoded character.
"""

from __future__ import annotations

import re

import numpy as np

import llama_cpp
from llama_cpp import _internals

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_NEVER_VALID = set(range(0x80, 0xC0)) | {0xC0, 0xC1} | set(range(0xF5, 0x100))  # as a first byte


def sequence_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def continuation_range(pending: bytes) -> tuple[int, int]:
    """Allowed values of the next byte after an incomplete sequence (RFC 3629's table)."""
    if len(pending) == 1:
        special = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}
        return special.get(pending[0], (0x80, 0xBF))
    return 0x80, 0xBF


class Utf8Guard:
    def __init__(self, model: _internals.LlamaModel):
        self.n_vocab = model.n_vocab()
        ids, values = [], []
        for token in range(self.n_vocab):
            if llama_cpp.llama_vocab_get_attr(model.vocab, token) & llama_cpp.LLAMA_TOKEN_ATTR_BYTE:
                match = _BYTE_TOKEN.match(llama_cpp.llama_vocab_get_text(model.vocab, token).decode("utf-8", "replace"))
                if match:
                    ids.append(token)
                    values.append(int(match.group(1), 16))
        self.byte_of = dict(zip(ids, values))
        self._ids = np.array(ids, dtype=np.int64)
        self._values = np.array(values, dtype=np.int64)
        self._never_first = self._ids[np.isin(self._values, sorted(_NEVER_VALID))]

    def new_state(self) -> "Utf8State":
        return Utf8State(self)


class Utf8State:
    """Per-request: the bytes of an incomplete character written so far."""

    def __init__(self, guard: Utf8Guard):
        self.guard = guard
        self.pending = b""

    def accept(self, token: int) -> None:
        value = self.guard.byte_of.get(token)
        if value is None:
            self.pending = b""  # whole tokens are whole characters
            return
        self.pending += bytes([value])
        if len(self.pending) >= sequence_length(self.pending[0]):
            self.pending = b""

    def apply(self, logits: np.ndarray) -> None:
        """Bans, in place, every byte token that cannot come next in valid UTF-8."""
        guard = self.guard
        if not self.pending:
            logits[guard._never_first] = -np.inf
            return
        low, high = continuation_range(self.pending)
        allowed = guard._ids[(guard._values >= low) & (guard._values <= high)]
        kept = logits[allowed].copy()
        logits[:] = -np.inf
        logits[allowed] = kept
