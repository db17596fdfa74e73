"""The budget every schema compiles within, and what the output can spell at most.

A schema either fits these limits or is refused with a 400 before generation starts. The numbers are
sized so that the largest accepted grammar compiles in well under a second on a 2-core machine and
llama.cpp parses it in milliseconds (benchmarks/bench_schema_compile.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.core.request import MAX_OUTPUT_TOKENS


@dataclass(frozen=True)
class Limits:
    # characters the longest output could spell (MAX_OUTPUT_TOKENS x the vocabulary's longest piece);
    # None when the vocabulary is unknown: then no bound is treated as out of reach
    output_chars: int | None = None
    max_depth: int = 64  # nesting of schema objects inside one definition
    max_schema_nodes: int = 20_000  # schema objects lowered (properties, items, options, ...)
    max_definitions: int = 2_000  # $ref targets and the intersections made with them
    max_automaton_states: int = 100_000  # all automata of one schema together
    max_rules: int = 40_000  # GBNF rules of one grammar
    max_grammar_bytes: int = 4_000_000  # GBNF text of one grammar
    max_layered_states: int = 12_000  # a bounded string whose automaton has several states


def limits_for_vocabulary(longest_piece_chars: int) -> Limits:
    """The limits for a model whose longest token piece has ``longest_piece_chars`` characters."""
    return Limits(output_chars=MAX_OUTPUT_TOKENS * max(1, longest_piece_chars))


DEFAULT_LIMITS = Limits()
