"""`edge plan`'s prediction against the measured peak RSS of a real `edge serve`.

For each model and context size: start `edge serve` on a loopback port, send the worst case the plan
describes (a prompt that fills the context window, and on a model with a vision projector the largest
image budget), read the server process's peak resident set (VmHWM in /proc/PID/status), stop it, and
compare with `plan_memory` for the same settings. The plan must be within ±15 %.

    .venv/bin/python benchmarks/bench_plan.py                    # demo + test model, ctx 2048 8192 16384
    .venv/bin/python benchmarks/bench_plan.py --ctx 4096 --models demo
    .venv/bin/python benchmarks/bench_plan.py --parallel 1 4     # once `edge serve --parallel` exists
    .venv/bin/python benchmarks/bench_plan.py --baseline         # re-measure RUNTIME_BASELINE_BYTES
    .venv/bin/python benchmarks/bench_plan.py --image-baseline   # re-measure IMAGE_BYTES_PER_PIXEL

Linux only (reads /proc). Writes benchmarks/results/plan-vs-rss.json and .md unless --no-write.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
TOLERANCE = 0.15
MAX_TOKENS = 8


@dataclass(frozen=True)
class Case:
    model: str  # "demo", "test" (text only) or "test+image" (one image at the largest budget as well)
    ctx: int
    parallel: int

    @property
    def with_image(self) -> bool:
        return self.model.endswith("+image")


@dataclass(frozen=True)
class Measurement:
    case: Case
    predicted: int
    measured: int
    prompt_tokens: int
    image: bool

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured


# -------------------------------------------------------------------------------------------- serving

def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    from tests.conftest import start_server  # the suite's own way of starting `edge serve`

    server = start_server(args, log, timeout=300)
    return server.process, server.base_url


def _image_part(tokens: int) -> dict:
    """A PNG exactly as large as the ``high`` budget allows (48-pixel tiles), sent at ``detail: high``."""
    from PIL import Image

    from edge.runtime.images import fit_size

    side = 48 * int(tokens ** 0.5) * 2  # larger than the budget: the server resizes it down to the budget
    width, height = fit_size(side, side, tokens)
    image = Image.linear_gradient("L").convert("RGB").resize((width, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url, "detail": "high"}}


def _messages(words: int, image: dict | None) -> list[dict]:
    text = " ".join(f"lighthouse{index % 97}" for index in range(words))
    content = [{"type": "text", "text": text}] + ([image] if image else [])
    return [{"role": "user", "content": content}]


def _anthropic_messages(messages: list[dict]) -> list[dict]:
    parts = []
    for part in messages[0]["content"]:
        if part["type"] == "text":
            parts.append({"type": "text", "text": part["text"]})
        else:
            media, data = part["image_url"]["url"][5:].split(";base64,")
            parts.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
    return [{"role": "user", "content": parts}]


def _count(base: str, model: str, messages: list[dict]) -> int:
    response = httpx.post(f"{base}/v1/messages/count_tokens", timeout=600,
                          json={"model": model, "messages": _anthropic_messages(messages)})
    if response.status_code == 200:
        return response.json()["input_tokens"]
    import re

    over = re.search(r"resulted in (\d+) tokens", response.text)  # longer than the window: still counted
    if response.status_code == 400 and over:
        return int(over.group(1))
    raise RuntimeError(f"count_tokens failed: {response.status_code} {response.text[:300]}")


def _fill_context(base: str, model: str, ctx: int, image: dict | None) -> tuple[list[dict], int]:
    """The longest prompt that leaves room for MAX_TOKENS: measure tokens per word, scale, then trim."""
    target = ctx - MAX_TOKENS - 4
    fixed = _count(base, model, _messages(1, image))
    per_word = (_count(base, model, _messages(65, image)) - fixed) / 64
    words = max(1, int((target - fixed) / per_word))
    while True:
        messages = _messages(words, image)
        counted = _count(base, model, messages)
        if counted <= target:
            return messages, counted
        words -= max(1, int((counted - target) / per_word))


def _worst_case(base: str, ctx: int, with_image: bool, image_tokens: int) -> int:
    """Fill the window and generate. The Anthropic count prices an image at the ``auto`` budget, chat at
    ``high``: a 400 ``context_length_exceeded`` says exactly how many tokens the prompt had, so trim by that."""
    import re

    model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
    image = _image_part(image_tokens) if with_image else None
    messages, counted = _fill_context(base, model, ctx, image)
    per_word = max(1.0, counted / max(1, len(messages[0]["content"][0]["text"].split())))
    words = len(messages[0]["content"][0]["text"].split())
    for _ in range(8):
        body = {"model": model, "messages": _messages(words, image), "max_tokens": MAX_TOKENS, "temperature": 0}
        if with_image:
            body["enable_thinking"] = False  # the Anthropic count has thinking off
        response = httpx.post(f"{base}/v1/chat/completions", timeout=None, json=body)  # a full window is slow
        if response.status_code == 200:
            return response.json()["usage"]["prompt_tokens"]
        found = re.search(r"\((\d+) in the messages", response.text)
        if response.status_code != 400 or not found:
            raise RuntimeError(f"the worst-case request failed: {response.status_code} {response.text[:300]}")
        words -= int((int(found.group(1)) + MAX_TOKENS - ctx) / per_word) + 1
    raise RuntimeError("could not fit the prompt to the context window")


# ------------------------------------------------------------------------------------------------ plan

def _predict(model_path: Path, mmproj: Path | None, args: list[str], with_image: bool) -> int:
    from edge.cli import build_parser
    from edge.device.doctor import repack_types_here
    from edge.device.plan import PlanConfig, plan_memory
    from edge.device.shape import shape_from_gguf
    from edge.settings import settings_from

    settings = settings_from(build_parser().parse_args(["serve", *args]), environ={})
    config = PlanConfig.from_settings(settings, repack_types_here(settings.extra_bufts), with_images=with_image)
    return plan_memory(shape_from_gguf(model_path, mmproj), config).host


def _model_files(name: str, work: Path) -> tuple[Path, Path | None, list[str]]:
    if name == "demo":
        from edge.runtime.sources import demo_model
        from edge.settings import Settings

        return demo_model(Settings().cache_dir).model, None, []
    from edge.convert.fixtures import build_test_models

    models = build_test_models(work / "test-model", "tiny")
    return models.text_gguf, models.mmproj_gguf, ["--model", str(models.text_gguf.parent)]


def run_case(case: Case, work: Path, serve_parallel: bool) -> Measurement:
    model_path, mmproj, model_args = _model_files(case.model.split("+")[0], work)
    # one worst-case request never sends a conversation to host memory: the plan's --cache-ram term is a
    # limit the server reaches only with traffic, so both sides leave it out
    args = [*model_args, "--ctx-size", str(case.ctx), "--cache-ram", "0"]
    if serve_parallel:
        args += ["--parallel", str(case.parallel)]
    from edge.settings import Settings

    image_tokens = Settings().image_high_tokens
    with_image = case.with_image
    if with_image and (mmproj is None or case.ctx < image_tokens + 256):
        raise SystemExit(f"{case.model} at ctx {case.ctx}: needs a projector and room for a {image_tokens}-token image")
    predicted = _predict(model_path, mmproj, args, with_image)
    process, base = _start(args, work / f"serve-{case.model}-{case.ctx}-{case.parallel}.log")
    try:
        prompt_tokens = _worst_case(base, case.ctx, with_image, image_tokens)
        measured = _peak_rss(process.pid)
    finally:
        _stop(process)
    return Measurement(case, predicted, measured, prompt_tokens, with_image)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -------------------------------------------------------------------------------------------- baseline

def measure_baseline(runs: int, work: Path) -> int:
    """The runtime's own resident size: a real `edge serve` of the tiny test model at the smallest
    context, after one short request, less everything the plan attributes to that model (a few MiB)."""
    from edge.device.plan import RUNTIME_BASELINE_BYTES

    model_path, mmproj, model_args = _model_files("test", work)
    args = [*model_args, "--ctx-size", "256", "--batch-size", "64", "--cache-ram", "0"]
    model_terms = _predict(model_path, mmproj, args, with_image=False) - RUNTIME_BASELINE_BYTES
    samples = []
    for run in range(runs):
        process, base = _start(args, work / f"baseline-{run}.log")
        try:
            model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
            httpx.post(f"{base}/v1/chat/completions", timeout=300, json={
                "model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}).raise_for_status()
            samples.append(_peak_rss(process.pid) - model_terms)
        finally:
            _stop(process)
    return int(statistics.median(samples))


IMAGE_REQUESTS = 6


def measure_image_cost(work: Path) -> float:
    """Host bytes per image pixel: the peak RSS that serving images at the largest budget adds to a text
    request, less the vision graph's buffer the plan computes, over one image's pixels. Several requests,
    not one: each decodes its image on whichever worker thread is free, and the allocator keeps what each
    thread freed, so the high-water mark settles only after a few (IMAGE_REQUESTS)."""
    from dataclasses import replace

    from edge.device.plan import PlanConfig, plan_memory
    from edge.device.shape import shape_from_gguf
    from edge.settings import Settings

    model_path, mmproj, model_args = _model_files("test", work)
    tokens = Settings().image_high_tokens
    process, base = _start([*model_args, "--ctx-size", "4096", "--cache-ram", "0"], work / "image-baseline.log")
    try:
        model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
        body = {"model": model, "max_tokens": 4, "enable_thinking": False}
        httpx.post(f"{base}/v1/chat/completions", timeout=600,
                   json={**body, "messages": _messages(64, None)}).raise_for_status()
        text_peak = _peak_rss(process.pid)
        for _ in range(IMAGE_REQUESTS):
            httpx.post(f"{base}/v1/chat/completions", timeout=600,
                       json={**body, "messages": _messages(64, _image_part(tokens))}).raise_for_status()
        image_peak = _peak_rss(process.pid)
    finally:
        _stop(process)
    plan = plan_memory(shape_from_gguf(model_path, mmproj), replace(PlanConfig(ctx_size=4096), image_tokens=tokens))
    encoder = next(term.host for term in plan.terms if term.name == "vision encoder compute")
    projector = shape_from_gguf(model_path, mmproj).projector
    pixels = tokens * (projector.patch_size * projector.merge) ** 2
    return (image_peak - text_peak - encoder) / pixels


# ---------------------------------------------------------------------------------------------- report

def _serve_supports_parallel() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "edge.cli", "serve", "--help"], capture_output=True,
                               text=True, cwd=REPO).stdout
    return "--parallel" in help_text


def _table(measurements: list[Measurement]) -> str:
    rows = ["| model | ctx | parallel | prompt tokens | image | plan MiB | measured peak RSS MiB | error |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for item in measurements:
        rows.append(f"| {item.case.model} | {item.case.ctx} | {item.case.parallel} | {item.prompt_tokens} | "
                    f"{'1120 tokens' if item.image else '-'} | {item.predicted / 2**20:.1f} | "
                    f"{item.measured / 2**20:.1f} | {item.error:+.1%} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["demo", "test", "test+image"],
                        choices=["demo", "test", "test+image"])
    parser.add_argument("--ctx", nargs="+", type=int, default=[2048, 8192, 16384],
                        help="context sizes (test+image skips those too small for its image)")
    parser.add_argument("--parallel", nargs="+", type=int, default=[1])
    parser.add_argument("--baseline", action="store_true", help="measure the runtime baseline and exit")
    parser.add_argument("--image-baseline", action="store_true", help="measure the bytes per image pixel and exit")
    parser.add_argument("--runs", type=int, default=5, help="baseline runs (median)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--name", default="plan-vs-rss", help="results file name under benchmarks/results")
    args = parser.parse_args(argv)
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="bench-plan-") as work:
            baseline = measure_baseline(args.runs, Path(work))
        print(f"runtime baseline (median of {args.runs}): {baseline / 2**20:.1f} MiB")
        return 0
    if args.image_baseline:
        with tempfile.TemporaryDirectory(prefix="bench-plan-") as work:
            print(f"image buffers: {measure_image_cost(Path(work)):.1f} bytes per pixel")
        return 0
    serve_parallel = _serve_supports_parallel()
    if not serve_parallel and args.parallel != [1]:
        parser.error("this `edge serve` has no --parallel flag yet: only --parallel 1 can be measured")
    measurements = []
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as work:
        for model in args.models:
            for ctx in args.ctx:
                if model.endswith("+image") and ctx < 1120 + 256:
                    continue
                for parallel in args.parallel:
                    measurement = run_case(Case(model, ctx, parallel), Path(work), serve_parallel)
                    print(f"{model} ctx {ctx} x{parallel}: plan {measurement.predicted / 2**20:.1f} MiB, "
                          f"measured {measurement.measured / 2**20:.1f} MiB ({measurement.error:+.1%})", flush=True)
                    measurements.append(measurement)
    table = _table(measurements)
    print(table)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        command = "benchmarks/bench_plan.py " + " ".join(argv if argv is not None else sys.argv[1:])
        (RESULTS / f"{args.name}.md").write_text(f"`{command.strip()}`\n\n{table}\n")
        (RESULTS / f"{args.name}.json").write_text(json.dumps([{
            "model": item.case.model, "ctx": item.case.ctx, "parallel": item.case.parallel,
            "prompt_tokens": item.prompt_tokens, "image": item.image, "predicted_bytes": item.predicted,
            "measured_peak_rss_bytes": item.measured, "error": round(item.error, 4)} for item in measurements],
            indent=2) + "\n")
    worst = max((abs(item.error) for item in measurements), default=0.0)
    print(f"worst error {worst:.1%} (tolerance ±{TOLERANCE:.0%})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    sys.exit(main())
