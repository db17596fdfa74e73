"""Thin entry: ``python scripts/convert.py SRC --out DIR [--outtype f32|f16|bf16|q8_0]`` (same as ``edge convert``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.convert.cli import configure_convert_parser, standalone_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(standalone_main(configure_convert_parser, "Convert a Gemma 4 checkpoint to GGUF + mmproj."))
