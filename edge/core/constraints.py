"""What decoding must follow: a GBNF grammar, optionally lazy (idle until a trigger token appears)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Constraint:
    """A GBNF grammar for the sampler; ``trigger_tokens`` makes it lazy (inactive until one appears)."""

    gbnf: str
    trigger_tokens: tuple[int, ...] = ()
