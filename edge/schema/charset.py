"""Sets of Unicode scalar values as sorted, disjoint, non-adjacent inclusive intervals.

Regexes, formats and the two string encodings (JSON escapes, Gemma's raw text) all speak in these
sets, so one complement or intersection means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

MAX_CODE_POINT = 0x10FFFF
# UTF-16 surrogates are not characters: no valid UTF-8 text holds them, so no set ever does
SURROGATES = (0xD800, 0xDFFF)


@dataclass(frozen=True)
class CharSet:
    ranges: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def of(ranges: Iterable[tuple[int, int]]) -> "CharSet":
        return CharSet(_normalize(ranges))

    @staticmethod
    def chars(text: str) -> "CharSet":
        return CharSet.of((ord(c), ord(c)) for c in text)

    @staticmethod
    def range(low: str, high: str) -> "CharSet":
        return CharSet.of([(ord(low), ord(high))])

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __contains__(self, char: str | int) -> bool:
        point = ord(char) if isinstance(char, str) else char
        return any(low <= point <= high for low, high in self.ranges)

    def __or__(self, other: "CharSet") -> "CharSet":
        if not other.ranges:
            return self
        if not self.ranges:
            return other
        return CharSet(_merge(sorted(self.ranges + other.ranges)))

    def __and__(self, other: "CharSet") -> "CharSet":
        result, i, j = [], 0, 0
        while i < len(self.ranges) and j < len(other.ranges):
            low = max(self.ranges[i][0], other.ranges[j][0])
            high = min(self.ranges[i][1], other.ranges[j][1])
            if low <= high:
                result.append((low, high))
            if self.ranges[i][1] < other.ranges[j][1]:
                i += 1
            else:
                j += 1
        return CharSet(tuple(result))

    def __sub__(self, other: "CharSet") -> "CharSet":
        return self & other.complement()

    def complement(self) -> "CharSet":
        result, start = [], 0
        for low, high in self.ranges:
            if low > start:
                result.append((start, low - 1))
            start = high + 1
        if start <= MAX_CODE_POINT:
            result.append((start, MAX_CODE_POINT))
        return CharSet.of(result)

    def size(self) -> int:
        return sum(high - low + 1 for low, high in self.ranges)

    def first(self) -> int:
        return self.ranges[0][0]


def _normalize(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        for part_low, part_high in _without_surrogates(low, high):
            if merged and part_low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], part_high)
            else:
                merged.append([part_low, part_high])
    return tuple((low, high) for low, high in merged)


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted surrogate-free ranges -> disjoint, non-adjacent ones."""
    merged: list[list[int]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def _without_surrogates(low: int, high: int) -> list[tuple[int, int]]:
    low, high = max(low, 0), min(high, MAX_CODE_POINT)
    if low > high:
        return []
    s_low, s_high = SURROGATES
    if high < s_low or low > s_high:
        return [(low, high)]
    parts = []
    if low < s_low:
        parts.append((low, s_low - 1))
    if high > s_high:
        parts.append((s_high + 1, high))
    return parts


ANY = CharSet.of([(0, MAX_CODE_POINT)])
EMPTY = CharSet()
DIGITS = CharSet.range("0", "9")
# what a JSON string may carry raw; the rest is written as an escape
JSON_CONTROL = CharSet.of([(0, 0x1F)])
