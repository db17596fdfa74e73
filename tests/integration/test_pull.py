"""``edge pull``, ``edge list`` and ``edge serve --model NAME`` through huggingface-hub's real download path,
against a hub-shaped HTTP server on loopback (tests/fake_hub.py) reached with ``HF_ENDPOINT``.

The E4B repo holds the project's tiny Gemma 4 (text + projector) under the published file names, so the
pulled "gemma-4-e4b" really serves; the E2B repo holds the 253 MB demo GGUF, larger than huggingface-hub's
10 MiB download chunk, so a connection dropped mid-file shows the resume with a Range request.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, start_server, stop_server
from tests.fake_hub import FakeHub

E4B_REPO = "ggml-org/gemma-4-E4B-it-GGUF"
E2B_REPO = "ggml-org/gemma-4-E2B-it-GGUF"
E4B_FILE = "gemma-4-E4B-it-Q4_K_M.gguf"
E4B_MMPROJ = "mmproj-gemma-4-E4B-it-bf16.gguf"
E2B_FILE = "gemma-4-E2B-it-Q4_K_M.gguf"
CHUNK = 10 * 1024 * 1024  # huggingface-hub's DOWNLOAD_CHUNK_SIZE


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def hub(gemma4_models, demo_model_path):
    repos = {
        E4B_REPO: {E4B_FILE: gemma4_models.text_gguf, E4B_MMPROJ: gemma4_models.mmproj_gguf,
                   "README.md": b"# gemma-4-E4B-it-GGUF (test copy)\n"},
        E2B_REPO: {E2B_FILE: demo_model_path},
    }
    with FakeHub(repos) as server:
        yield server


def hub_env(cache: Path, endpoint: str, offline: bool = False) -> dict[str, str]:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def edge(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def one_clear_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge: error: ")
    return lines[0]


def test_pull_fetches_model_and_projector_into_the_hub_cache(hub, tmp_path, gemma4_models):
    cache = tmp_path / "hub"
    result = edge(["pull", "gemma-4-e4b"], hub_env(cache, hub.url))
    assert result.returncode == 0, result.stderr
    snapshot = next((cache / "models--ggml-org--gemma-4-E4B-it-GGUF" / "snapshots").iterdir())
    assert sha256(snapshot / E4B_FILE) == sha256(gemma4_models.text_gguf)
    assert sha256(snapshot / E4B_MMPROJ) == sha256(gemma4_models.mmproj_gguf)
    assert not (snapshot / "README.md").exists()  # only the model and its projector are fetched
    # one announcement per file, then huggingface-hub's progress bar reaching the file's size
    assert f"edge: fetching {E4B_FILE} (2.7 MiB) from {E4B_REPO}" in result.stderr
    assert "100%" in result.stderr
    assert f"serve it with: edge serve --model gemma-4-e4b" in result.stdout

    again = edge(["pull", "gemma-4-e4b"], hub_env(cache, hub.url))  # already complete: nothing re-sent
    assert again.returncode == 0, again.stderr
    gets = [path for method, path, _ in hub.state.requests if method == "GET" and path.endswith(".gguf")]
    assert gets.count(f"/{E4B_REPO}/resolve/main/{E4B_FILE}") == 1


def test_a_dropped_connection_resumes_with_a_range_request(hub, tmp_path, demo_model_path):
    cache = tmp_path / "hub"
    hub.state.drop_after[E2B_FILE] = CHUNK + 5 * 1024 * 1024  # the first response breaks after 15 MiB
    result = edge(["pull", "gemma-4-e2b"], hub_env(cache, hub.url))
    assert result.returncode == 0, result.stderr
    assert "Trying to resume download" in result.stderr
    # the retry asks for the rest only: huggingface-hub kept the first full 10 MiB chunk
    assert hub.gets_of(E2B_FILE) == [None, f"bytes={CHUNK}-"]
    snapshot = next((cache / "models--ggml-org--gemma-4-E2B-it-GGUF" / "snapshots").iterdir())
    assert sha256(snapshot / E2B_FILE) == sha256(demo_model_path)


def test_list_names_what_is_cached(hub, tmp_path):
    cache = tmp_path / "hub"
    env = hub_env(cache, hub.url)
    assert edge(["list"], env).stdout.startswith("no GGUF models in the Hugging Face cache")
    assert edge(["pull", "gemma-4-e4b:Q4_K_M"], env).returncode == 0
    listing = edge(["list", "--known"], env)
    assert listing.returncode == 0, listing.stderr
    assert f"{E4B_REPO}  (edge serve --model gemma-4-e4b:Q4_K_M)" in listing.stdout
    assert E4B_FILE in listing.stdout and E4B_MMPROJ in listing.stdout
    assert "gemma-4-e4b-qat" in listing.stdout  # --known adds the catalogue
    parsed = json.loads(edge(["list", "--json"], env).stdout)
    (cached,) = parsed["cached"]
    assert cached["repo"] == E4B_REPO and cached["names"] == ["gemma-4-e4b:Q4_K_M"]
    assert sorted(file["projector"] for file in cached["files"]) == [False, True]


def test_serve_resolves_the_name_from_the_cache_offline(hub, tmp_path):
    cache = tmp_path / "hub"
    assert edge(["pull", "gemma-4-e4b"], hub_env(cache, hub.url)).returncode == 0
    requests_before = len(hub.state.requests)
    server = start_server(["--model", "gemma-4-e4b"], tmp_path / "serve.log",
                          env=hub_env(cache, hub.url, offline=True))
    try:
        models = httpx.get(f"{server.base_url}/v1/models").json()["data"]
        assert [model["id"] for model in models] == ["gemma-4-E4B-it-Q4_K_M"]
        reply = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120, json={
            "model": "gemma-4-E4B-it-Q4_K_M", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "enable_thinking": False})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] >= 1
    finally:
        stop_server(server)
    assert "(stays in the foreground" in server.log()
    assert len(hub.state.requests) == requests_before  # offline: the hub was never asked


def test_not_cached_while_offline_is_one_clear_line(hub, tmp_path):
    env = hub_env(tmp_path / "hub", hub.url, offline=True)
    line = one_clear_line(edge(["serve", "--model", "gemma-4-e4b"], env, timeout=120))
    assert f"{E4B_REPO} with a Q4_K_M GGUF is not in the local Hugging Face cache" in line
    assert "HF_HUB_OFFLINE=1" in line and "edge pull" in line
    one_clear_line(edge(["pull", "gemma-4-e4b"], env))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_hub_is_one_clear_line(tmp_path):
    env = hub_env(tmp_path / "hub", f"http://127.0.0.1:{closed_port()}")
    line = one_clear_line(edge(["pull", "gemma-4-e4b"], env))
    assert f"could not download {E4B_REPO} from http://127.0.0.1:" in line
    assert "ConnectError" in line
    # the path the issue reported: `edge info --model owner/repo` without a network
    line = one_clear_line(edge(["info", "--model", "someone/some-GGUF"], env, timeout=120))
    assert "could not download someone/some-GGUF" in line


@pytest.mark.parametrize("args, message", [
    (["pull", "gemma-9-huge"], "unknown model name 'gemma-9-huge'"),
    (["pull", "gemma-4-e4b:Q2_K"], "gemma-4-e4b has no Q2_K build (published: Q4_K_M, Q8_0, F16)"),
    (["serve", "--model", "gemma-4-e4b-qat:Q8_0"], "gemma-4-e4b-qat has no Q8_0 build (published: Q4_0)"),
])
def test_bad_names_are_one_clear_line(tmp_path, args, message):
    line = one_clear_line(edge(args, hub_env(tmp_path / "hub", f"http://127.0.0.1:{closed_port()}")))
    assert message in line


def test_a_repo_without_the_quant_lists_what_it_has(hub, tmp_path):
    line = one_clear_line(edge(["pull", f"{E4B_REPO}:Q8_0"], hub_env(tmp_path / "hub", hub.url)))
    assert f"Hugging Face repo {E4B_REPO} holds no model GGUF matching 'Q8_0'" in line
    assert E4B_FILE in line
