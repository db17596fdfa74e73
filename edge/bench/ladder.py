"""``edge bench quant``: the quantization ladder, from one unquantized source to the whole picture.

Steps: resolve the source (an F32/F16/BF16 GGUF, or a Hugging Face Gemma 4 checkpoint converted to F16
first) -> quantize each type with the project's Gemma 4 recipe (edge.convert.quantize) -> the reference
log-probs once -> per type: quality vs the reference, then ``repeats`` fresh-process probes (load, RSS,
speed) -> the memory bandwidth -> each decode speed as a fraction of bandwidth / bytes per token.
A type llama.cpp cannot make from this source is reported as skipped with the reason, not fatal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.bench import gguf_info
from edge.bench.bandwidth import measure_bandwidth, roofline
from edge.bench.corpus import Corpus
from edge.bench.environment import build_info, hardware_info, run_info
from edge.bench.errors import BenchError
from edge.bench.progress import bar
from edge.bench.quality import Windows, compare_pass, make_windows, reference_pass
from edge.bench.stats import summary

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name on the Hugging Face hub
LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "IQ4_XS")
SCHEMA_VERSION = 1
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LadderOptions:
    types: tuple[str, ...] = LADDER
    repeats: int = 3
    threads: int = 0              # 0: every available CPU
    prompt_tokens: int = 512
    gen_tokens: int = 128
    ctx: int = 512                # quality window
    chunks: int = 8               # quality windows
    bandwidth_mib: int = 512
    progress: bool = True
    probe_timeout_s: float = 600.0

    @property
    def thread_count(self) -> int:
        from edge.runtime.hardware import default_thread_count

        return self.threads or default_thread_count()


def run_quant_ladder(source: str | Path, out_dir: str | Path, corpus: Corpus,
                     options: LadderOptions = LadderOptions()) -> dict:
    """Build and measure the ladder; returns the report (schema.json, kind ``quant``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference = resolve_source(source, out, options)
    rows = [_reference_row(reference)] + [_quantize(reference, out, qtype, options) for qtype in options.types]
    prompt_file = out / "corpus.txt"
    prompt_file.write_text(corpus.text, encoding="utf-8")
    windows = tokenize_windows(reference, corpus, options)
    quality_reference = _measure_quality(rows, reference, windows, out, options)
    measure_speeds([row for row in rows if row["status"] == "ok"], prompt_file, options)
    bandwidth = measure_bandwidth(options.thread_count, options.bandwidth_mib, max(options.repeats, 3))
    _add_rooflines(rows, bandwidth["bytes_per_s"]["median"])
    return {"schema_version": SCHEMA_VERSION, "kind": "quant", **run_info(),
            "hardware": {**hardware_info(), "memory_bandwidth": bandwidth}, "build": build_info(),
            "model": gguf_info.model_info(reference), "corpus": {**corpus.describe(), "ctx": options.ctx,
                                                                 "windows": len(windows.windows),
                                                                 "scored_tokens": windows.n_scored},
            "settings": _settings(options), "reference": quality_reference, "results": rows}


def resolve_source(source: str | Path, out: Path, options: LadderOptions) -> Path:
    """An unquantized GGUF to quantize from: the file itself, or a checkpoint converted to F16."""
    path = Path(source)
    if path.is_dir() or (not path.exists() and path.suffix != ".gguf" and _REPO_ID.match(str(source))):
        return _convert(source, out, options.progress)
    reader = gguf_info.open_gguf(path)
    kind = reader.get_field("general.type")
    if kind is not None and kind.contents() == "mmproj":
        raise BenchError(f"{path} is a vision projector (mmproj); pass the text model GGUF")
    if options.types and not gguf_info.is_unquantized(reader):
        raise BenchError(f"{path} is {gguf_info.file_type_name(reader)}: the ladder quantizes from an F32, F16 "
                         "or BF16 GGUF (or a Hugging Face checkpoint); pass --types none to measure it as is")
    return path


def _convert(folder: str | Path, out: Path, progress: bool) -> Path:
    """A checkpoint folder or Hugging Face repo id -> an F16 reference GGUF in ``out/reference``."""
    from edge.convert.convert import convert_checkpoint
    from edge.convert.errors import ConversionError

    try:
        return convert_checkpoint(folder, out / "reference", "f16", progress=progress).text_gguf
    except ConversionError as exc:
        raise BenchError(f"{folder}: not a convertible Gemma 4 checkpoint ({exc})") from exc


def _reference_row(path: Path) -> dict:
    reader = gguf_info.open_gguf(path)
    return {"type": gguf_info.file_type_name(reader), "is_reference": True, **_file_facts(path)}


def _quantize(reference: Path, out: Path, qtype: str, options: LadderOptions) -> dict:
    from edge.convert.errors import QuantizationError
    from edge.convert.quantize import quantize_gguf

    from edge.runtime.llama import route_llama_logs

    target = out / f"{reference.stem.rsplit('-', 1)[0]}-{qtype}.gguf"
    route_llama_logs()  # llama.cpp's per-tensor quantize chatter goes to logging (DEBUG), not the terminal
    try:
        quantize_gguf(reference, target, qtype, n_threads=options.thread_count)
    except QuantizationError as exc:
        return {"type": qtype, "is_reference": False, "status": "skipped", "reason": str(exc)}
    return {"type": qtype, "is_reference": False, **_file_facts(target)}


def _file_facts(path: Path) -> dict:
    from edge.convert.quantize import tensor_types_by_group

    reader = gguf_info.open_gguf(path)
    return {"status": "ok", "file": str(path), "size_bytes": path.stat().st_size,
            "bits_per_weight": gguf_info.bits_per_weight(path),
            "bytes_per_token": gguf_info.bytes_per_token(reader).as_dict(),
            "tensor_types": tensor_types_by_group(path)}


def tokenize_windows(reference: Path, corpus: Corpus, options: LadderOptions) -> Windows:
    from edge.runtime import llama

    model = llama.load_model(reference)
    try:
        tokens = llama.tokenize(model, corpus.text, special=False)
        return make_windows(tokens, model.token_bos(), options.ctx, options.chunks)
    finally:
        model.close()


def _measure_quality(rows: list[dict], reference: Path, windows: Windows, out: Path,
                     options: LadderOptions) -> dict:
    """Reference log-probs once, then each quantized type against them."""
    store = out / "reference-logprobs.npy" if len(rows) > 1 else None
    ref = reference_pass(reference, windows, store, options.thread_count, options.progress)
    for row in rows:
        if row["status"] != "ok":
            continue
        if row["is_reference"]:
            row["quality"] = {"perplexity": ref["perplexity"], "kld_mean": 0.0, "kld_p99": 0.0,
                              "top1_agreement": 1.0, "scored_tokens": ref["scored_tokens"]}
        else:
            row["quality"] = compare_pass(Path(row["file"]), windows, store, options.thread_count,
                                          options.progress, row["type"])
    if store is not None:
        store.unlink(missing_ok=True)  # large for a real vocabulary; recomputed on the next run
    return {"file": str(reference), **ref}


def measure_speeds(rows: list[dict], prompt_file: Path, options: LadderOptions) -> None:
    """``repeats`` fresh-process probes per model, round-robin over the models so that a burst of load
    from elsewhere on the machine spreads over all types instead of hitting one; median and range."""
    runs: dict[str, list[dict]] = {row["file"]: [] for row in rows}
    schedule = [row["file"] for _ in range(max(options.repeats, 1)) for row in rows]
    for file in bar(schedule, options.progress, "speed", unit="run"):
        runs[file].append(run_probe(Path(file), prompt_file, options))
    keys = ("load_s", "peak_rss_bytes", "rss_before_load_bytes", "pp_tok_s", "tg_tok_s", "ttft_ms")
    for row in rows:
        done = runs[row["file"]]
        row["speed"] = {key: summary(run[key] for run in done) for key in keys}
        row["prompt_tokens"], row["gen_tokens"] = done[0]["prompt_tokens"], done[0]["gen_tokens"]


def run_probe(model: Path, prompt_file: Path, options: LadderOptions) -> dict:
    command = [sys.executable, "-m", "edge.bench.probe", str(model), "--prompt-file", str(prompt_file),
               "--prompt-tokens", str(options.prompt_tokens), "--gen-tokens", str(options.gen_tokens),
               "--threads", str(options.thread_count)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=options.probe_timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"probing {model} took longer than {options.probe_timeout_s:.0f}s") from exc
    if done.returncode != 0:
        raise BenchError(f"probing {model} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _add_rooflines(rows: list[dict], bandwidth: float) -> None:
    for row in rows:
        if row["status"] == "ok":
            row["roofline"] = roofline(row["speed"]["tg_tok_s"]["median"], row["bytes_per_token"]["total"], bandwidth)


def _settings(options: LadderOptions) -> dict:
    return {"types": list(options.types), "repeats": options.repeats, "threads": options.thread_count,
            "prompt_tokens": options.prompt_tokens, "gen_tokens": options.gen_tokens, "ctx": options.ctx,
            "chunks": options.chunks, "bandwidth_buffer_mib": options.bandwidth_mib}
