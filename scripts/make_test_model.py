"""Thin entry: ``python scripts/make_test_model.py --out DIR [--variant tiny|wide]`` writes the random
Gemma 4 test checkpoint (core: edge/convert/test_model.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.convert.cli import configure_test_model_parser, standalone_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(standalone_main(configure_test_model_parser, "Write the tiny Gemma 4 test checkpoint."))
