"""A bounded soak (benchmarks/soak.py runs the same for 30 minutes): 4 streaming clients in every dialect,
some hanging up mid-stream, about 2 minutes. Every completed stream is well formed, nothing is a 5xx,
and the server's RSS stays within ±5 % after the warm-up."""

from __future__ import annotations

import sys

from tests.conftest import REPO, start_server, stop_server

sys.path.insert(0, str(REPO / "benchmarks"))
import soak  # noqa: E402

SOAK_SECONDS = 120


def test_soak_streams_stay_well_formed_and_memory_flat(tmp_path, demo_model_path):
    # a small host-memory cache, so that it reaches its limit early and drops conversations all along
    server = start_server(["--cache-ram", "16"], tmp_path / "server.log")
    try:
        result = soak.soak(server.base_url, server.process.pid, SOAK_SECONDS, clients=4, disconnect_rate=0.3)
    finally:
        stop_server(server)
    report = soak.summary(result)
    print(report)
    assert not result.malformed, result.malformed
    assert result.server_errors == 0
    assert result.completed >= 4 and result.disconnected >= 1, report  # it did something
    assert result.rss_drift() <= soak.RSS_TOLERANCE, report  # RSS less the kept conversations
    assert 0 < result.kept_max <= 16 * 2**20, report
    assert "Traceback" not in server.log()
