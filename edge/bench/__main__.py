"""``python -m edge.bench quant|serve ...``: the same command as ``edge bench``, without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys

from edge.bench.cli import add_bench_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge")
    commands = parser.add_subparsers(dest="command", required=True)
    add_bench_command(commands)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
