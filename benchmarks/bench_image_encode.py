"""Image encode time and tokens per image at each Gemma 4 token budget (70, 140, 280, 560, 1120).

For each budget one picture is loaded through ``edge.runtime.images`` (decode, EXIF, RGB, fit to the
budget) and encoded by llama.cpp's vision projector (``mtmd_encode_chunk``), one run after the other,
after one warm-up encode. Reported: the median of ``--runs`` timings and their spread (min..max), the
soft tokens of the image, and the load time (Pillow decode + resize) for comparison.

By default it builds the project's tiny random Gemma 4 (F32 text + mmproj) in a temporary folder, which
measures the pipeline's overhead rather than a real encoder; pass ``--model``/``--mmproj`` for E4B.

    .venv/bin/python benchmarks/bench_image_encode.py [--runs 7] [--threads 2] [--model GGUF --mmproj GGUF]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.convert.test_model import sample_image  # noqa: E402
from edge.runtime.images import GEMMA4_TOKEN_BUDGETS, ImagePolicy, load_image_bytes  # noqa: E402
from edge.runtime.llama import load_model, route_llama_logs  # noqa: E402
from edge.runtime.vision import VisionOptions, VisionProjector, options_for_fitted_images  # noqa: E402

PROMPT_TEMPLATE = "<bos><|turn>user\n{marker}Describe the picture.<turn|>\n<|turn>model\n"


@dataclass(frozen=True)
class BudgetResult:
    budget: int
    fitted_size: tuple[int, int]
    tokens: int
    load_ms: list[float]
    encode_ms: list[float]


def timed_ms(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return (time.perf_counter() - started) * 1000, result


def picture_jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(sample_image(width, height)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def bench_budget(projector: VisionProjector, picture: bytes, budget: int, runs: int) -> BudgetResult:
    """Load + fit the picture, then encode its image chunk ``runs`` times (after one warm-up)."""
    policy = ImagePolicy(auto_tokens=budget)  # "auto" reaches every budget through the policy
    load = lambda: load_image_bytes(picture, "image/jpeg", policy, "image", "auto")  # noqa: E731
    load_ms = [timed_ms(load)[0] for _ in range(runs)]
    loaded = load()
    prompt = PROMPT_TEMPLATE.format(marker=projector.marker)
    with projector.tokenize(prompt, [loaded.pixels]) as chunks:
        described = chunks.describe()
        index = [chunk.kind for chunk in described].index("image")
        projector.encode_image(chunks, index)  # warm-up: graph allocation happens on the first encode
        encode_ms = [timed_ms(lambda: projector.encode_image(chunks, index))[0] for _ in range(runs)]
    return BudgetResult(budget, (loaded.width, loaded.height), described[index].n_tokens, load_ms, encode_ms)


def run_benchmark(model_path: Path, mmproj_path: Path, runs: int, threads: int, size: tuple[int, int],
                  budgets: tuple[int, ...] = GEMMA4_TOKEN_BUDGETS) -> list[BudgetResult]:
    route_llama_logs()
    model = load_model(model_path)
    picture = picture_jpeg(*size)
    options = options_for_fitted_images(VisionOptions(n_threads=threads))
    with VisionProjector(mmproj_path, model, options) as projector:
        return [bench_budget(projector, picture, budget, runs) for budget in budgets]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def markdown_table(results: list[BudgetResult]) -> str:
    lines = ["| budget | fitted size | image tokens | load ms, median (min..max) | encode ms, median (min..max) "
             "| encode ms / token |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        per_token = statistics.median(result.encode_ms) / result.tokens
        lines.append(f"| {result.budget} | {result.fitted_size[0]}x{result.fitted_size[1]} | {result.tokens} "
                     f"| {spread(result.load_ms)} | {spread(result.encode_ms)} | {per_token:.3f} |")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", type=Path, help="text GGUF (default: build the tiny test model)")
    parser.add_argument("--mmproj", type=Path, help="mmproj GGUF matching --model")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=960)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = configure_parser(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args(argv)
    if (args.model is None) != (args.mmproj is None):
        raise SystemExit("--model and --mmproj go together")
    with tempfile.TemporaryDirectory() as scratch:
        if args.model is None:
            from edge.convert.fixtures import build_test_models

            models = build_test_models(scratch, "tiny")
            args.model, args.mmproj = models.text_gguf, models.mmproj_gguf
        results = run_benchmark(args.model, args.mmproj, args.runs, args.threads, (args.width, args.height))
    print(f"model {args.model.name}, projector {args.mmproj.name}; {args.width}x{args.height} JPEG; "
          f"{args.runs} runs, {args.threads} threads; {platform.processor() or platform.machine()}\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
