"""Throughput of the Gemma 4 output parser in characters per second, fed token-sized chunks.

The parser runs once per generated token on the serving path, so it must stay far above any decode
speed (a fast GPU decodes ~150 tokens/s, i.e. well under 1,000 characters/s). Median of --runs.

    .venv/bin/python benchmarks/bench_parser.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from edge.formats.base import Piece
from edge.formats.gemma4_parser import Gemma4Parser
from edge.core.request import ToolSpec

Q = '<|"|>'
TOOL = ToolSpec("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"},
                                                                     "days": {"type": "integer"}}})
WORKLOADS = {
    "plain text": "The keeper climbed the stairs to light the lamp, and the sea was loud. " * 40,
    "thought + text": "<|channel>thought\n" + "Let me think about the weather and the sea. " * 20
                      + "<channel|>" + "It will be windy tomorrow, with rain at night. " * 20,
    "tool calls": (f"<|tool_call>call:get_weather{{city:{Q}Paris, {{France}}{Q},days:3}}<tool_call|>") * 40,
}


def chunks_of(text: str, size: int = 4) -> list[Piece]:
    """Token-sized pieces (Gemma's average token is ~4 characters); markers may be split anywhere."""
    return [Piece(text[i:i + size], False) for i in range(0, len(text), size)]


def characters_per_second(text: str, runs: int) -> list[float]:
    pieces = chunks_of(text)
    rates = []
    for _ in range(runs):
        parser = Gemma4Parser([TOOL])
        started = time.perf_counter()
        for piece in pieces:
            parser.feed(piece)
        parser.finish()
        rates.append(len(text) / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print("| workload | characters | chars/s median (min-max) |")
    print("| --- | --- | --- |")
    for name, text in WORKLOADS.items():
        rates = characters_per_second(text, args.runs)
        print(f"| {name} | {len(text)} | {statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) |")


if __name__ == "__main__":
    main()
