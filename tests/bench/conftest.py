"""Session fixtures for the benchmark harness: the wide Gemma 4 test model and one small ladder run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.convert.fixtures import build_test_models
from edge.runtime.llama import route_llama_logs

REPO = Path(__file__).resolve().parents[2]
# short flags everywhere: these tests check the harness, never the speed
QUICK_QUANT_FLAGS = ["--repeats", "2", "--prompt-tokens", "32", "--gen-tokens", "8", "--ctx", "32",
                     "--chunks", "3", "--bandwidth-mib", "64", "--threads", "1", "--no-progress"]


def edge_bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.bench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="session", autouse=True)
def _quiet_llama():
    route_llama_logs()


@pytest.fixture(scope="session")
def wide(tmp_path_factory):
    """The wide test model (hidden 256: K-quants really apply) as checkpoint + F32 GGUF."""
    return build_test_models(tmp_path_factory.mktemp("bench-wide"), "wide")


@pytest.fixture(scope="session")
def ladder_run(wide, tmp_path_factory):
    """The whole ladder through the command line, once: (output folder, report, stdout)."""
    out = tmp_path_factory.mktemp("bench-ladder")
    result = edge_bench("quant", str(wide.text_gguf), "--out", str(out), *QUICK_QUANT_FLAGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads((out / "quant.json").read_text()), result.stdout
