"""Fixtures shared by every test layer: the demo model and a real server on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
# Google's own Gemma 4 chat template, as every published Gemma 4 GGUF carries it (tests/fixtures/README.md)
GOOGLE_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "google-gemma-4-31B-it.jinja"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def demo_model_path() -> Path:
    from edge.runtime.sources import demo_model
    from edge.settings import Settings

    return demo_model(Settings().cache_dir).model


class RunningServer:
    def __init__(self, process: subprocess.Popen, base_url: str, log_path: Path):
        self.process = process
        self.base_url = base_url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 timeout: float = 120.0) -> RunningServer:
    """``edge serve`` in a subprocess on a free loopback port; returns once /health answers."""
    port = free_port()
    command = [sys.executable, "-m", "edge.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    log_file = log_path.open("w")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO,
                               env={**os.environ, **(env or {})})
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"edge serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return RunningServer(process, base_url, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"edge serve did not become healthy in {timeout}s:\n{log_path.read_text()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory, demo_model_path) -> RunningServer:
    """The real server on the embedded demo model, started the way the README starts it."""
    server = start_server([], tmp_path_factory.mktemp("demo-server") / "server.log")
    yield server
    stop_server(server)
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete, so -15 is a clean exit
    assert server.process.returncode in (0, -15), server.log()
    assert "Application shutdown complete" in server.log()


@pytest.fixture(scope="session")
def demo_model_id(demo_server) -> str:
    return httpx.get(f"{demo_server.base_url}/v1/models").json()["data"][0]["id"]


@pytest.fixture
def openai_client(demo_server):
    import openai

    return openai.OpenAI(base_url=f"{demo_server.base_url}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def gemma4_models(tmp_path_factory):
    """The project's tiny random Gemma 4 (text + vision), converted to F32 GGUF by the project's converter."""
    from edge.convert.fixtures import build_test_models

    return build_test_models(tmp_path_factory.mktemp("gemma4-server-model"), "tiny")


@pytest.fixture(scope="session")
def gemma4_server(tmp_path_factory, gemma4_models) -> RunningServer:
    server = start_server(["--model", str(gemma4_models.text_gguf.parent), "--model-alias", "gemma4-tiny"],
                          tmp_path_factory.mktemp("gemma4-server") / "server.log")
    yield server
    stop_server(server)


@pytest.fixture
def gemma4_client(gemma4_server):
    import openai

    return openai.OpenAI(base_url=f"{gemma4_server.base_url}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def gemma4_google_models(tmp_path_factory):
    """The same tiny random Gemma 4, converted with Google's chat template instead of the project's."""
    from edge.convert.fixtures import build_test_models

    return build_test_models(tmp_path_factory.mktemp("gemma4-google-model"), "tiny",
                             chat_template=GOOGLE_TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def gemma4_google_server(tmp_path_factory, gemma4_google_models) -> RunningServer:
    server = start_server(["--model", str(gemma4_google_models.text_gguf.parent), "--model-alias", "gemma4-google"],
                          tmp_path_factory.mktemp("gemma4-google-server") / "server.log")
    yield server
    stop_server(server)
