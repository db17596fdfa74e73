"""Streaming text helpers: bytes → text across token boundaries, and stop sequences.

Both hold text back rather than emit something that may turn out wrong: an incomplete UTF-8
sequence, or the beginning of a stop sequence.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


class Utf8Stream:
    """Token pieces are bytes; a multi-byte character may straddle two tokens."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


@dataclass(frozen=True)
class StopScan:
    emit: str  # text safe to send now
    stopped: bool
    sequence: str | None = None  # the stop sequence that matched


class StopMatcher:
    """Finds stop sequences in streamed text; the stop text itself is never emitted.

    Text that could be the start of a stop sequence is held back until it is decided."""

    def __init__(self, sequences: tuple[str, ...]) -> None:
        self._sequences = tuple(sequence for sequence in sequences if sequence)
        self._held = ""

    def feed(self, text: str) -> StopScan:
        if not self._sequences:
            return StopScan(text, False)
        buffer = self._held + text
        match = self._earliest_match(buffer)
        if match is not None:
            position, sequence = match
            self._held = ""
            return StopScan(buffer[:position], True, sequence)
        keep = self._longest_partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return StopScan(buffer[:len(buffer) - keep], False)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _earliest_match(self, buffer: str) -> tuple[int, str] | None:
        found = [(buffer.find(sequence), sequence) for sequence in self._sequences]
        found = [(position, sequence) for position, sequence in found if position >= 0]
        return min(found) if found else None

    def _longest_partial_suffix(self, buffer: str) -> int:
        longest = 0
        for sequence in self._sequences:
            for length in range(min(len(sequence) - 1, len(buffer)), longest, -1):
                if buffer.endswith(sequence[:length]):
                    longest = length
                    break
        return longest
