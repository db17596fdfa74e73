"""Argument parsing for ``edge bench quant`` and ``edge bench serve``.

``add_bench_command(subparsers)`` registers ``bench`` with its two sub-commands; each handler takes the
parsed Namespace and returns an exit code. Results go to ``--out`` as JSON + markdown + PNG plots, and
the markdown table is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.bench.errors import BenchError


def add_bench_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="benchmark quantizations, serving latency, bandwidth limit",
                                   description="Benchmarks whose numbers you can repeat: the quantization "
                                               "ladder and the serving latency of OpenAI-compatible servers.")
    commands = parser.add_subparsers(dest="bench_command", required=True)
    configure_quant_parser(commands.add_parser(
        "quant", help="quantize to each type and measure size, speed, memory and quality",
        description="Build the quant ladder from an F32/F16/BF16 GGUF or a Hugging Face Gemma 4 checkpoint "
                    "and measure every type against the unquantized model."))
    configure_serve_parser(commands.add_parser(
        "serve", help="streaming latency of OpenAI-compatible servers at several concurrencies",
        description="Drive one or more OpenAI-compatible servers (edge, llama-server, Ollama) with streaming "
                    "chat requests; loopback only unless --allow-remote."))
    return parser


def _common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(default_out), help=f"output folder (default {default_out})")
    parser.add_argument("--repeats", type=int, default=3, help="repeated runs summarised by median and range")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def configure_quant_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from edge.bench.ladder import LADDER

    parser.add_argument("source", help="F32/F16/BF16 GGUF, or a Hugging Face Gemma 4 checkpoint folder "
                                       "(any GGUF with --types none)")
    _common(parser, "bench-quant")
    parser.add_argument("--types", default=",".join(LADDER),
                        help=f"comma-separated quant types, or 'none' (default {','.join(LADDER)})")
    parser.add_argument("--corpus", type=Path, help="UTF-8 text for quality and prompts (default: the Python "
                                                    "Language Reference prose shipped with Python, PSF License)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all available)")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="prompt length for pp tok/s and TTFT")
    parser.add_argument("--gen-tokens", type=int, default=128, help="decoded tokens for decode tok/s")
    parser.add_argument("--ctx", type=int, default=512, help="window length for perplexity/KLD")
    parser.add_argument("--chunks", type=int, default=8, help="number of windows scored")
    parser.add_argument("--bandwidth-mib", type=int, default=512, help="buffer read to measure bandwidth")
    parser.set_defaults(handler=run_quant)
    return parser


def configure_serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--url", action="append", required=True,
                        help="server base URL (repeat for side-by-side), e.g. http://127.0.0.1:8080")
    parser.add_argument("--model", action="append",
                        help="model id: one for all URLs or one per --url (default: first of /v1/models)")
    _common(parser, "bench-serve")
    parser.set_defaults(repeats=1)
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated levels (default 1,2,4)")
    parser.add_argument("--requests", type=int, default=8, help="requests per level and repeat (default 8)")
    parser.add_argument("--max-tokens", type=int, default=128, help="max_tokens of each request")
    parser.add_argument("--prompt", help="user message (default: a fixed paragraph request)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--level-budget", type=float, default=300.0,
                        help="seconds per level after which no new request starts")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer")
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback URLs")
    parser.set_defaults(handler=run_serve)
    return parser


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchError(f"{flag} {text!r}: expected comma-separated integers") from None
    if not values:
        raise BenchError(f"{flag}: give at least one value")
    return values


def _types(text: str) -> tuple[str, ...]:
    from edge.convert.quantize import QUANT_TYPES

    if text.strip().lower() == "none":
        return ()
    types = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = [qtype for qtype in types if qtype not in QUANT_TYPES]
    if unknown:
        raise BenchError(f"--types: unknown {', '.join(unknown)}; choose from {', '.join(QUANT_TYPES)} or none")
    return types


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run_quant(args: argparse.Namespace) -> int:
    return _guarded("quant", lambda: _quant(args))


def _quant(args: argparse.Namespace) -> int:
    from edge.bench.corpus import load_corpus
    from edge.bench.ladder import LadderOptions, run_quant_ladder
    from edge.bench.report import quant_markdown

    _check_counts(repeats=args.repeats, prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens,
                  chunks=args.chunks, bandwidth_mib=args.bandwidth_mib)
    options = LadderOptions(types=_types(args.types), repeats=args.repeats, threads=args.threads,
                            prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens, ctx=args.ctx,
                            chunks=args.chunks, bandwidth_mib=args.bandwidth_mib, progress=not args.no_progress)
    report = run_quant_ladder(args.source, args.out, load_corpus(args.corpus), options)
    return _write(report, args.out, "quant", quant_markdown(report), args.no_plots)


def run_serve(args: argparse.Namespace) -> int:
    return _guarded("serve", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    from edge.bench.report import serve_markdown
    from edge.bench.serve import DEFAULT_PROMPT, ServeOptions, resolve_targets, run_serve_bench

    _check_counts(repeats=args.repeats, requests=args.requests, max_tokens=args.max_tokens)
    targets = resolve_targets(args.url, args.model, args.allow_remote)
    options = ServeOptions(concurrency=_int_list(args.concurrency, "--concurrency"), requests=args.requests,
                           max_tokens=args.max_tokens, prompt=args.prompt or DEFAULT_PROMPT, repeats=args.repeats,
                           request_timeout_s=args.timeout, level_budget_s=args.level_budget,
                           allow_remote=args.allow_remote, api_key=args.api_key, progress=not args.no_progress)
    report = run_serve_bench(targets, options)
    return _write(report, args.out, "serve", serve_markdown(report), args.no_plots)


def _write(report: dict, out: Path, kind: str, markdown: str, no_plots: bool) -> int:
    from edge.bench.report import write_json

    paths = [write_json(report, out / f"{kind}.json")]
    (out / f"{kind}.md").write_text(markdown + "\n", encoding="utf-8")
    paths.append(out / f"{kind}.md")
    if not no_plots:
        paths += _plots(report, out, kind)
    print(markdown)
    print("\nwrote " + ", ".join(str(path) for path in paths))
    return 0


def _plots(report: dict, out: Path, kind: str) -> list[Path]:
    """PNG figures when matplotlib is installed; without it the numbers are still all there."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("edge bench: matplotlib is not installed, plots skipped (pip install matplotlib)", file=sys.stderr)
        return []
    from edge.bench.plots import quant_plots, serve_plots

    return (quant_plots if kind == "quant" else serve_plots)(report, out)


def _guarded(kind: str, work) -> int:
    """BenchError is the user's to fix: one clear line and exit 2, no traceback."""
    try:
        return work()
    except BenchError as exc:
        print(f"edge bench {kind}: error: {exc}", file=sys.stderr)
        return 2
