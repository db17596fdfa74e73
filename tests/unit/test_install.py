"""scripts/install.sh: the exact commands per backend (--dry-run) and the progress filter of the build."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPT = REPO / "scripts" / "install.sh"
FILTER = REPO / "scripts" / "install-progress.awk"
BUILD_LOG = REPO / "tests" / "fixtures" / "install" / "pip-verbose-build.log"


def dry_run(*args: str, venv: Path) -> list[str]:
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no nvcc on PATH: CUDACXX falls back to JetPack's path
    result = subprocess.run([str(SCRIPT), "--dry-run", "--venv", str(venv), *args], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def pinned_llama_cpp_python() -> str:
    pyproject = (REPO / "pyproject.toml").read_text()
    return re.search(r'"(llama-cpp-python==[\d.]+)"', pyproject).group(1)


CHECK = ("V/bin/python -c 'import sys, llama_cpp; gpu = llama_cpp.llama_supports_gpu_offload(); "
         "print(\"llama.cpp GPU offload:\", gpu); sys.exit(0 if gpu or \"{backend}\" == \"cpu\" else 1)'")


def test_cpu_installs_edge_in_one_verbose_pip_run(tmp_path):
    venv = tmp_path / "v"
    assert [line.replace(str(venv), "V") for line in dry_run("--backend", "cpu", venv=venv)] == [
        "python3 -m venv V",
        "V/bin/python -m pip install --upgrade pip",
        "env CMAKE_ARGS=-DGGML_NATIVE=ON V/bin/python -m pip install -v -e '.[demo]'",
        CHECK.format(backend="cpu"),
    ]
    assert not venv.exists()  # a dry run changes nothing


@pytest.mark.parametrize("backend, args, cmake_args, cuda", [
    ("metal", (), "-DGGML_METAL=ON", False),
    ("cuda", (), "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native", True),
    ("cuda", ("--cuda-arch", "86;89"), "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=86;89", True),
    ("jetson", (), "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=87", True),
    ("jetson", ("--cuda-arch", "72"), "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=72", True),
    ("vulkan", (), "-DGGML_VULKAN=ON", False),
])
def test_gpu_backends_compile_llama_cpp_from_source_with_their_cmake_args(tmp_path, backend, args, cmake_args, cuda):
    venv = tmp_path / "v"
    lines = [line.replace(str(venv), "V") for line in dry_run("--backend", backend, "--extra", "dev", *args,
                                                               venv=venv)]
    compiler = " CUDACXX=/usr/local/cuda/bin/nvcc" if cuda else ""
    assignment = f"'CMAKE_ARGS={cmake_args}'" if " " in cmake_args else f"CMAKE_ARGS={cmake_args}"
    assert lines == [
        "python3 -m venv V",
        "V/bin/python -m pip install --upgrade pip",
        f"env {assignment}{compiler} V/bin/python -m pip install -v --no-cache-dir --force-reinstall "
        f"--no-binary llama-cpp-python {pinned_llama_cpp_python()}",
        "V/bin/python -m pip install -v -e '.[dev]'",
        CHECK.format(backend=backend),
    ]


def test_the_script_builds_the_llama_cpp_python_release_edge_is_pinned_to():
    assert f'LLAMA_CPP_PYTHON="{pinned_llama_cpp_python()}"' in SCRIPT.read_text()


@pytest.mark.parametrize("args", [("--backend", "tpu"), ("--extra", "everything"), ("--frobnicate",)])
def test_bad_arguments_print_the_usage(args):
    result = subprocess.run([str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 64
    assert "scripts/install.sh [--backend cpu|metal|cuda|jetson|vulkan]" in result.stderr
    assert "set -eu" not in result.stderr  # the usage is the comment block only


def test_dev_sh_passes_install_through(tmp_path):
    result = subprocess.run([str(REPO / "dev.sh"), "install", "--backend", "jetson", "--dry-run"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "EDGE_VENV": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "-DCMAKE_CUDA_ARCHITECTURES=87" in result.stdout


def run_filter(tmp_path: Path, tty: int) -> tuple[str, str]:
    log = tmp_path / "install.log"
    # bytes, not text: universal newlines would turn the terminal's carriage returns into line breaks
    result = subprocess.run(["awk", "-v", f"logfile={log}", "-v", f"tty={tty}", "-f", str(FILTER)],
                            input=BUILD_LOG.read_bytes(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr.decode(), log.read_text()


def test_a_build_in_a_log_shows_a_line_per_ten_percent_and_pips_milestones(tmp_path):
    shown, log = run_filter(tmp_path, tty=0)
    assert log == BUILD_LOG.read_text()  # the full output is kept
    steps = re.findall(r"compiling llama\.cpp: (\d+)/120 \((\d+)%\)", shown)
    assert [int(percent) for _, percent in steps] == list(range(0, 101, 10))
    assert "Building wheel for llama-cpp-python (pyproject.toml): started" in shown
    assert "Successfully installed edge-0.1.0 llama-cpp-python-0.3.36" in shown
    assert "-- The C compiler identification" not in shown  # CMake's chatter stays in the log
    assert len(shown.splitlines()) < 30


def test_a_build_on_a_terminal_redraws_one_line(tmp_path):
    shown, _ = run_filter(tmp_path, tty=1)
    assert shown.count("\r  compiling llama.cpp:") == 120
    assert "\r  compiling llama.cpp: 120/120 (100%)   \n" in shown
