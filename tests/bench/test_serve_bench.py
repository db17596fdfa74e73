"""``edge bench serve`` against the real ``edge serve`` on the wide test model, with small counts."""

from __future__ import annotations

import json

import httpx
import pytest

from edge.bench.report import validate

from .conftest import edge_bench


@pytest.fixture(scope="module")
def wide_server(wide, tmp_path_factory):
    from tests.conftest import start_server, stop_server

    log = tmp_path_factory.mktemp("bench-serve") / "server.log"
    server = start_server(["--model", str(wide.text_gguf), "--threads", "1", "--ctx-size", "512",
                           "--log-level", "warning"], log)
    yield server
    stop_server(server)


def test_two_urls_side_by_side_with_discovery_and_explicit_model(wide_server, tmp_path):
    model = httpx.get(f"{wide_server.base_url}/v1/models").json()["data"][0]["id"]
    localhost = wide_server.base_url.replace("127.0.0.1", "localhost") + "/v1"
    result = edge_bench("serve", "--url", wide_server.base_url, "--url", localhost, "--model", model,
                        "--model", model, "--concurrency", "1,2", "--requests", "2", "--max-tokens", "3",
                        "--timeout", "60", "--level-budget", "60", "--out", str(tmp_path), "--no-progress",
                        timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "serve.json").read_text())
    validate(report)
    assert [target["model"] for target in report["targets"]] == [model, model]
    for target in report["targets"]:
        assert [level["concurrency"] for level in target["levels"]] == [1, 2]
        for level in target["levels"]:
            assert level["errors"] == 0 and level["completed"] == 2
            assert 0 < level["ttft_ms"]["p50"] <= level["ttft_ms"]["p95"]
            assert level["completion_tokens"] > 0 and level["aggregate_tok_s"]["median"] > 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass  # plots are optional: the numbers above are the benchmark
    else:
        assert (tmp_path / "serve_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 2 | 2 / 0 |" in (tmp_path / "serve.md").read_text()


def test_discovery_and_core_function(wide_server):
    from edge.bench.serve import ServeOptions, resolve_targets, run_serve_bench

    report = run_serve_bench(resolve_targets([wide_server.base_url], None, False),
                             ServeOptions(concurrency=(1,), requests=1, max_tokens=2, progress=False))
    validate(report)
    assert report["targets"][0]["usage_from_server"] is True


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    from tests.conftest import free_port

    result = edge_bench("serve", "--url", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path), timeout=60)
    assert result.returncode == 2
    assert "cannot list models" in result.stderr and "Traceback" not in result.stderr


def test_a_remote_url_is_refused_without_allow_remote(tmp_path):
    result = edge_bench("serve", "--url", "http://192.0.2.1:8080", "--out", str(tmp_path), timeout=60)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
