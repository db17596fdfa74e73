"""The command line: chat, info, and clear failures for bad models."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, free_port


def edge(*args: str, stdin: str = "", timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_chat_streams_answers_over_several_turns(demo_model_path):
    result = edge("chat", "--max-tokens", "6", "--temperature", "0", stdin="Hello there\nAnd again\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("model> ") == 2
    assert result.stdout.count("you> ") == 3


def test_chat_reset_and_end_of_input(demo_model_path):
    result = edge("chat", "--max-tokens", "3", stdin="Hi\n/reset\nHi\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("model> ") == 2


def test_info_reports_model_hardware_and_repacking_decision(demo_model_path):
    result = edge("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["model"]["architecture"] == "gemma3"
    assert info["model"]["chat_format"] == "gemma3"
    assert info["model"]["context_served"] == 8192
    assert info["llama_cpp_python_version"] == "0.3.36"
    assert "weight_repacking_reason" in info["runtime"]
    assert "CPU" in info["hardware"]["llama_cpp_system_info"]


def test_missing_model_file_fails_with_a_clear_message(tmp_path):
    # on a free port: serve checks the port first, and 8080 may be taken on a shared machine
    result = edge("serve", "--port", str(free_port()), "--model", str(tmp_path / "absent.gguf"), timeout=60)
    assert result.returncode == 2
    assert "edge: error:" in result.stderr and "absent.gguf" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_gguf_model_fails_with_a_clear_message(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 definitely a zip")
    result = edge("info", "--model", str(bogus), timeout=60)
    assert result.returncode == 2 and "not a GGUF" in result.stderr


def test_truncated_gguf_fails_with_a_clear_message(tmp_path, demo_model_path):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(demo_model_path.read_bytes()[:5_000_000])
    result = edge("info", "--model", str(truncated), timeout=60)
    assert result.returncode == 2 and "could not load" in result.stderr
    assert "Traceback" not in result.stderr


def test_context_beyond_training_is_refused(demo_model_path):
    result = edge("info", "--ctx-size", "65536", timeout=60)
    assert result.returncode == 2 and "trained context of 32768" in result.stderr


def test_a_text_model_given_as_projector_fails_with_a_clear_message(gemma4_models):
    model = str(gemma4_models.text_gguf)
    result = edge("info", "--model", model, "--mmproj", model, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "could not load the projector" in result.stderr and "Traceback" not in result.stderr


def test_info_on_gemma4_shows_the_format_and_projector(gemma4_models):
    result = edge("info", "--json", "--model", str(gemma4_models.text_gguf.parent), timeout=60)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["model"]["architecture"] == "gemma4" and info["model"]["chat_format"] == "gemma4"
    assert info["model"]["mmproj"].endswith(".gguf") and info["model"]["has_chat_template"] is True
