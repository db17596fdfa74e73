"""``edge bench quant`` end to end on the wide test model: consistent numbers, never timed assertions."""

from __future__ import annotations

import jsonschema
import pytest

from edge.bench.corpus import load_corpus
from edge.bench.errors import BenchError
from edge.bench.ladder import LADDER, LadderOptions, run_quant_ladder
from edge.bench.report import load_schema, validate

from .conftest import QUICK_QUANT_FLAGS, edge_bench


def _rows(report):
    return {row["type"]: row for row in report["results"]}


def test_report_validates_against_the_documented_schema(ladder_run):
    _, report, _ = ladder_run
    jsonschema.Draft202012Validator.check_schema(load_schema())
    validate(report)
    assert report["kind"] == "quant"
    assert report["model"]["architecture"] == "gemma4"


def test_every_ladder_type_is_built_and_measured(ladder_run):
    _, report, _ = ladder_run
    rows = _rows(report)
    assert list(rows) == ["F32", *LADDER]
    assert rows["F32"]["is_reference"]
    assert all(row["status"] == "ok" for row in rows.values())


def test_sizes_decrease_down_the_ladder(ladder_run):
    _, report, _ = ladder_run
    sizes = [row["size_bytes"] for row in report["results"]]
    assert sizes == sorted(sizes, reverse=True)
    assert len(set(sizes)) == len(sizes)


def test_quality_numbers_are_consistent(ladder_run):
    _, report, _ = ladder_run
    rows = _rows(report)
    for row in rows.values():
        quality = row["quality"]
        assert quality["perplexity"] >= 1
        assert 0.0 <= quality["top1_agreement"] <= 1.0
        assert 0.0 <= quality["kld_mean"] <= quality["kld_p99"] or quality["kld_p99"] == 0.0
    assert rows["F32"]["quality"]["kld_mean"] == 0.0
    assert rows["Q8_0"]["quality"]["kld_mean"] < rows["Q4_0"]["quality"]["kld_mean"]
    assert rows["Q8_0"]["quality"]["top1_agreement"] >= rows["Q4_0"]["quality"]["top1_agreement"]


def test_speed_and_memory_are_positive_with_repeats(ladder_run):
    _, report, _ = ladder_run
    for row in report["results"]:
        speed = row["speed"]
        for key in ("load_s", "peak_rss_bytes", "pp_tok_s", "tg_tok_s", "ttft_ms"):
            assert speed[key]["n"] == 2
            assert 0 < speed[key]["min"] <= speed[key]["median"] <= speed[key]["max"]
        assert speed["peak_rss_bytes"]["median"] > speed["rss_before_load_bytes"]["median"]
        assert row["roofline"]["limit_tok_s"] > 0 and row["roofline"]["fraction"] > 0


def test_recipe_keeps_the_ple_table_at_8_bits(ladder_run):
    _, report, _ = ladder_run
    for row in report["results"][1:]:
        assert set(row["tensor_types"]["per_layer_token_embd"]) == {"Q8_0"}


def test_markdown_table_is_written_and_printed(ladder_run):
    out, _, stdout = ladder_run
    table = (out / "quant.md").read_text()
    assert "| Q4_K_M |" in table and "| F32 (ref) |" in table
    assert "| Q4_K_M |" in stdout


def test_plots_are_written(ladder_run):
    out, _, _ = ladder_run
    for name in ("size_vs_kld.png", "decode_tok_s.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_hugging_face_checkpoint_is_converted_first(wide, tmp_path):
    options = LadderOptions(types=("Q8_0",), repeats=1, threads=1, prompt_tokens=16, gen_tokens=4, ctx=16,
                            chunks=2, bandwidth_mib=32, progress=False)
    report = run_quant_ladder(wide.checkpoint, tmp_path, load_corpus(), options)
    validate(report)
    assert [row["type"] for row in report["results"]] == ["F16", "Q8_0"]
    assert (tmp_path / "reference").is_dir()


def test_an_already_quantized_model_is_measured_as_is_with_types_none(ladder_run, tmp_path):
    out, _, _ = ladder_run
    quantized = out / "gemma4-wide-Q4_0.gguf"
    result = edge_bench("quant", str(quantized), "--types", "none", "--out", str(tmp_path), "--no-plots",
                        *QUICK_QUANT_FLAGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Q4_0 (ref) |" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["/no/such/model.gguf"], "no such file"),
    (["{text}"], "not a GGUF file"),
    (["{quantized}"], "pass --types none"),
    (["{mmproj}"], "vision projector"),
    (["no-such-owner/no-such-model"], "not a convertible Gemma 4 checkpoint"),
    (["{f32}", "--types", "Q3_X"], "unknown Q3_X"),
    (["{f32}", "--corpus", "/no/such/corpus.txt"], "--corpus /no/such/corpus.txt: no such file"),
    (["{f32}", "--repeats", "0"], "--repeats must be >= 1"),
])
def test_bad_input_is_one_clear_error(ladder_run, wide, tmp_path, args, message):
    out, _, _ = ladder_run
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    paths = {"text": text, "quantized": out / "gemma4-wide-Q8_0.gguf", "f32": wide.text_gguf,
             "mmproj": wide.mmproj_gguf}
    args = [arg.format(**paths) for arg in args]
    result = edge_bench("quant", *args, "--out", str(tmp_path / "out"), "--no-progress", timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_core_function_raises_bench_error_for_a_missing_source(tmp_path):
    with pytest.raises(BenchError, match="no such file"):
        run_quant_ladder(tmp_path / "missing.gguf", tmp_path, load_corpus(), LadderOptions(progress=False))
