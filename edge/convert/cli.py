"""Argument parsing for ``edge convert``, ``edge quantize`` and ``scripts/make_test_model.py``.

Each ``add_*_command(subparsers)`` registers a subcommand whose ``handler`` takes the parsed Namespace and
returns an exit code; the scripts build a standalone parser from the same ``configure_*`` functions.
"""

from __future__ import annotations

import argparse
import sys

from edge.convert.errors import ConversionError, QuantizationError
from edge.convert.gguf_out import OUT_TYPES
from edge.convert.quantize import QUANT_TYPES


def configure_convert_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("source", help="checkpoint folder, or a Hugging Face repo id such as google/gemma-4-E4B-it")
    parser.add_argument("--out", required=True, help="output folder for NAME-TYPE.gguf and mmproj-NAME-F16.gguf")
    parser.add_argument("--outtype", default="f16", choices=sorted(OUT_TYPES), help="weight type (default f16)")
    parser.add_argument("--name", default=None, help="model name in the file names and metadata")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_convert)
    return parser


def configure_quantize_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("source", help="input GGUF (F32/F16/BF16 text model)")
    parser.add_argument("--type", default="Q4_K_M", choices=sorted(QUANT_TYPES), help="target type")
    parser.add_argument("--imatrix", default=None, help="importance matrix (GGUF from llama-imatrix)")
    parser.add_argument("--out", required=True, help="output GGUF path")
    parser.add_argument("--threads", type=int, default=0, help="threads (0: all cores)")
    parser.set_defaults(handler=run_quantize)
    return parser


def add_convert_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("convert", help="Hugging Face Gemma 4 checkpoint -> GGUF + mmproj",
                                   description="Convert a Gemma 4 checkpoint to a text GGUF and an mmproj GGUF.")
    return configure_convert_parser(parser)


def add_quantize_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("quantize", help="quantize a GGUF with the Gemma 4 recipe",
                                   description="Quantize a GGUF; the PLE table and token embedding stay >= Q8_0.")
    return configure_quantize_parser(parser)


def run_convert(args: argparse.Namespace) -> int:
    from edge.convert.convert import convert_checkpoint

    try:
        result = convert_checkpoint(args.source, args.out, args.outtype, name=args.name,
                                    progress=not args.no_progress)
    except ConversionError as exc:
        print(f"edge convert: error: {exc}", file=sys.stderr)
        return 1
    print(f"text model: {result.text_gguf}")
    if result.mmproj_gguf:
        print(f"projector:  {result.mmproj_gguf}")
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    from edge.convert.quantize import quantize_gguf

    try:
        report = quantize_gguf(args.source, args.out, args.type, imatrix=args.imatrix, n_threads=args.threads)
    except QuantizationError as exc:
        print(f"edge quantize: error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


def configure_test_model_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from edge.convert.test_model import VARIANTS

    parser.add_argument("--out", required=True, help="output checkpoint folder")
    parser.add_argument("--variant", default="tiny", choices=sorted(VARIANTS))
    parser.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"], help="safetensors dtype")
    parser.set_defaults(handler=run_make_test_model)
    return parser


def run_make_test_model(args: argparse.Namespace) -> int:
    from edge.convert.test_model import make_test_model

    print(make_test_model(args.out, args.variant, args.dtype))
    return 0


def standalone_main(configure, description: str, argv: list[str] | None = None) -> int:
    """What the thin scripts run: one parser from ``configure``, then its handler."""
    parser = configure(argparse.ArgumentParser(description=description))
    args = parser.parse_args(argv)
    return args.handler(args)
