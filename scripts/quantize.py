"""Thin entry: ``python scripts/quantize.py SRC.gguf --type Q4_K_M --out DST.gguf`` (same as ``edge quantize``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.convert.cli import configure_quantize_parser, standalone_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(standalone_main(configure_quantize_parser, "Quantize a GGUF with the Gemma 4 recipe."))
