"""Decode speed of grammar-constrained output (JSON schema) against free text, in the same run.

Applying a GBNF grammar to every candidate of Gemma's 262,144-token vocabulary per token is what makes
constrained decoding slow; edge checks the chosen token first (edge/runtime/sampling.py TokenSampler).
``--full-pass`` measures the naive way (grammar on every candidate, every token) for comparison.
Demo model, greedy, end-of-turn banned, median (min-max) of --runs.

    .venv/bin/python benchmarks/bench_constrained.py [--runs 5] [--tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from edge.runtime import sampling
from edge.runtime.engine import Engine, EngineConfig
from edge.core.request import GenerationRequest, Message, ResponseFormat, SamplingParams, TextPart
from edge.runtime.sources import resolve_model
from edge.settings import Settings

SCHEMA = {"type": "object", "properties": {"bio": {"type": "string", "maxLength": 400}}, "required": ["bio"]}
MESSAGES = (Message("user", (TextPart("Describe a person as JSON."),)),)


def decode_speed(engine: Engine, response_format: ResponseFormat, tokens: int) -> float:
    request = GenerationRequest(messages=MESSAGES, max_tokens=tokens, response_format=response_format,
                                sampling=SamplingParams(temperature=0.0, logit_bias={1: -100.0, 106: -100.0}))
    finish = list(engine.generate(engine.prepare(request)))[-1]
    return finish.timings["decode_tokens_per_second"]


class FullPassSampler(sampling.TokenSampler):
    """The naive way: the grammar filters the whole vocabulary before every pick."""

    def sample(self, context):
        if self.grammar is None:
            return super().sample(context)
        token = self._pick(context, with_grammar=True)
        self.accept(token)
        return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    engine = Engine.load(resolve_model(None, None, Settings().cache_dir), EngineConfig(threads=2))
    cases = {"free text": ResponseFormat(), "json_schema": ResponseFormat("json_schema", SCHEMA)}
    results = {}
    for name, response_format in cases.items():
        decode_speed(engine, response_format, 8)  # warm-up
        results[name] = [decode_speed(engine, response_format, args.tokens) for _ in range(args.runs)]
    import edge.runtime.engine as engine_module

    engine_module.TokenSampler = FullPassSampler
    results["json_schema, full pass"] = [decode_speed(engine, cases["json_schema"], args.tokens)
                                         for _ in range(args.runs)]
    print(f"demo model {Path(engine.info.path).name}, {args.tokens} tokens, greedy, 2 threads, "
          f"median (min-max) of {args.runs}\n")
    print("| output | decode tok/s |\n| --- | --- |")
    for name, speeds in results.items():
        print(f"| {name} | {statistics.median(speeds):.1f} ({min(speeds):.1f}-{max(speeds):.1f}) |")


if __name__ == "__main__":
    main()
