"""`edge doctor`, `edge plan` and `--profile` through the real CLI and the real engine."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def edge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def test_a_profile_reaches_the_engine_and_flags_override_it(gemma4_models):
    folder = str(gemma4_models.text_gguf.parent)
    result = edge("info", "--model", folder, "--profile", "raspberry-pi-5-8gb", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    runtime = info["runtime"]
    assert (runtime["threads"], runtime["batch_size"], runtime["kv_type"]) == (4, 128, "q8_0")
    assert info["model"]["context_served"] == 4096
    overridden = json.loads(edge("info", "--model", folder, "--profile", "raspberry-pi-5-8gb",
                                 "--ctx-size", "2048", "--kv-type", "f16", "--json").stdout)
    assert overridden["model"]["context_served"] == 2048 and overridden["runtime"]["kv_type"] == "f16"
    assert overridden["runtime"]["batch_size"] == 128  # the rest of the profile still applies


def test_plan_of_a_model_folder_includes_its_projector(gemma4_models):
    folder = str(gemma4_models.text_gguf.parent)
    plan = json.loads(edge("plan", "--model", folder, "--ctx-size", "4096", "--json").stdout)
    names = [term["name"] for term in plan["terms"]]
    assert names[:2] == ["weights", "vision projector weights"]
    assert "vision encoder compute" in names and "image buffers" in names
    assert plan["config"]["parallel"] == 4  # the serving default: one cache of ctx-size x parallel cells
    assert plan["kv_cells"] == 4096 * 4 and plan["verdict"]["fits"] is True
    text_only = json.loads(edge("plan", "--model", folder, "--no-images", "--json").stdout)
    assert "vision encoder compute" not in [term["name"] for term in text_only["terms"]]
    assert text_only["host_bytes"] < plan["host_bytes"]


def test_plan_by_name_without_the_file_reports_the_largest_context():
    result = edge("plan", "--model", "gemma-4-e4b", "--ctx-size", "8192", "--parallel", "2", "--no-swa-full")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("edge plan: gemma-4-e4b:Q4_K_M (known architecture (no file read))")
    assert "ctx 8,192 x 2 sequence(s)" in result.stdout and "SWA window" in result.stdout
    assert "18 KV-shared layers own none" in result.stdout
    assert "verdict for this machine:" in result.stdout and "largest ctx-size that fits" in result.stdout


def test_gpu_layers_on_a_cpu_build_are_planned_on_the_cpu_with_a_note():
    result = edge("plan", "--model", "gemma-4-e4b", "--n-gpu-layers", "99")
    assert result.returncode == 0, result.stderr
    assert "0 layer(s) on the GPU" in result.stdout
    assert "this llama.cpp build has no GPU backend" in result.stdout


def test_doctor_prints_every_section_and_a_command():
    result = edge("doctor")
    assert result.returncode == 0, result.stderr
    for label in ("os:", "cpu:", "memory:", "llama.cpp:", "build:", "bandwidth:", "repacking:", "recommendation:"):
        assert label in result.stdout
    assert "run: edge pull gemma-4-e4b" in result.stdout
