"""Compile time and size of the largest accepted schemas, llama.cpp's grammar parse time, and the
latency to the first token on the demo model with each of them (against no schema, same run).

Compile = JSON Schema -> tree -> GBNF in Python (edge.schema); parse = llama.cpp building its
grammar sampler from that text with the demo model's 262,144-token vocabulary (the engine does it
once in ``prepare`` and once more when sampling starts); first token = ``prepare`` + prompt + the
first constrained token, through the engine. Median (min-max) of --runs.

    .venv/bin/python benchmarks/bench_schema_compile.py [--runs 5] [--json benchmarks/results/schema_compile.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import llama_cpp

from edge.core.request import GenerationRequest, Message, ResponseFormat, SamplingParams, TextPart
from edge.runtime.engine import Engine, EngineConfig
from edge.runtime.sources import resolve_model
from edge.schema import DEFAULT_LIMITS, Rules, json_rules, lower_schema
from edge.settings import Settings

MESSAGES = (Message("user", (TextPart("Describe it as JSON."),)),)


def _nested(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema, "b": {"type": "string", "maxLength": 4}},
                  "required": ["a"]}
    return schema


SCHEMAS = {
    "maxLength 100000": {"type": "string", "maxLength": 100000},
    "maxItems 100000 of bounded strings": {"type": "array", "items": {"type": "string", "maxLength": 100000},
                                           "maxItems": 100000},
    "10000 required properties": {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(10000)},
                                  "required": [f"p{i}" for i in range(10000)], "additionalProperties": False},
    "nesting 60 deep": _nested(60),
    "recursive tree, 200 definitions": {
        "$defs": {f"n{i}": {"type": "object", "properties": {
            "v": {"type": "integer", "minimum": i}, "next": {"anyOf": [{"$ref": f"#/$defs/n{(i + 1) % 200}"},
                                                                      {"type": "null"}]}},
            "required": ["v", "next"]} for i in range(200)}, "$ref": "#/$defs/n0"},
    "every format": {"type": "object", "properties": {name: {"type": "string", "format": name} for name in (
        "date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri")}},
    "pattern with length bounds": {"type": "string", "pattern": "^[a-z]+(-[a-z0-9]+)*$", "minLength": 10,
                                   "maxLength": 400},
    "decimal range with multipleOf": {"type": "number", "minimum": -1000.5, "exclusiveMaximum": 99999.25,
                                      "multipleOf": 0.25},
}


def compile_once(schema: dict) -> tuple[float, str, int]:
    start = time.perf_counter()
    rules = Rules(DEFAULT_LIMITS)
    root = json_rules(lower_schema(schema), rules)
    gbnf = f"root ::= {root}\n{rules.text()}"
    return time.perf_counter() - start, gbnf, len(rules.bodies) + 1


def parse_once(engine: Engine, gbnf: str) -> float:
    start = time.perf_counter()
    sampler = llama_cpp.llama_sampler_init_grammar(engine.model.vocab, gbnf.encode(), b"root")
    elapsed = time.perf_counter() - start
    assert sampler, "llama.cpp rejected the grammar"
    llama_cpp.llama_sampler_free(sampler)
    return elapsed


def first_token(engine: Engine, schema: dict | None) -> float:
    response_format = ResponseFormat("json_schema", schema) if schema is not None else ResponseFormat()
    request = GenerationRequest(messages=MESSAGES, max_tokens=1, response_format=response_format,
                                sampling=SamplingParams(temperature=0.0, seed=1))
    start = time.perf_counter()
    list(engine.generate(engine.prepare(request), threading.Event()))
    return time.perf_counter() - start


def _summary(values: list[float], scale: float = 1000.0) -> dict:
    return {"median_ms": round(statistics.median(values) * scale, 2), "min_ms": round(min(values) * scale, 2),
            "max_ms": round(max(values) * scale, 2)}


def run(runs: int) -> dict:
    engine = Engine.load(resolve_model(None, None, Settings().cache_dir), EngineConfig(ctx_size=2048, threads=2))
    results = {"baseline_first_token": _summary([first_token(engine, None) for _ in range(runs)]), "schemas": {}}
    for name, schema in SCHEMAS.items():
        compiled = [compile_once(schema) for _ in range(runs)]
        gbnf, rules = compiled[0][1], compiled[0][2]
        results["schemas"][name] = {
            "compile": _summary([seconds for seconds, _, _ in compiled]),
            "grammar_bytes": len(gbnf.encode()), "rules": rules,
            "llama_cpp_parse": _summary([parse_once(engine, gbnf) for _ in range(runs)]),
            "first_token": _summary([first_token(engine, schema) for _ in range(runs)]),
        }
    engine.close()
    return results


def markdown(results: dict) -> str:
    base = results["baseline_first_token"]
    lines = [f"no schema: first token {base['median_ms']} ms ({base['min_ms']}-{base['max_ms']})", "",
             "| schema | compile ms | GBNF bytes | rules | llama.cpp parse ms | first token ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in results["schemas"].items():
        lines.append(f"| {name} | {row['compile']['median_ms']} | {row['grammar_bytes']:,} | {row['rules']:,} | "
                     f"{row['llama_cpp_parse']['median_ms']} | {row['first_token']['median_ms']} "
                     f"({row['first_token']['min_ms']}-{row['first_token']['max_ms']}) |")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    return parser


def main() -> None:
    args = configure_parser(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args()
    results = run(args.runs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
