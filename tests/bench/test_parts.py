"""The harness's pieces without a server: corpus, quality maths, bytes per token, bandwidth, URL policy."""

from __future__ import annotations

import numpy as np
import pytest

from edge.bench import gguf_info
from edge.bench.bandwidth import measure_bandwidth, roofline
from edge.bench.corpus import DEFAULT_LICENSE, default_corpus, load_corpus
from edge.bench.errors import BenchError
from edge.bench.quality import log_softmax, make_windows
from edge.bench.serve import Target, check_url, resolve_targets
from edge.bench.stats import percentiles, summary


def test_default_corpus_is_english_prose_with_a_license():
    corpus = default_corpus()
    assert corpus.license == DEFAULT_LICENSE
    assert len(corpus.text.split()) > 10_000
    assert " the " in corpus.text and "   " not in corpus.text.splitlines()[0]
    assert len(corpus.sha256) == 64


def test_a_user_corpus_file_is_read(tmp_path):
    path = tmp_path / "prose.txt"
    path.write_text("It was a bright cold day in April, and the clocks were striking. " * 10)
    assert load_corpus(path).source == f"file {path}"
    path.write_text("too short")
    with pytest.raises(BenchError, match="too short"):
        load_corpus(path)


def test_windows_start_with_bos_and_score_the_second_half():
    windows = make_windows(list(range(100, 200)), bos=2, ctx=16, chunks=3)
    assert len(windows.windows) == 3
    assert all(window[0] == 2 and len(window) == 16 for window in windows.windows)
    assert windows.windows[1][1] == 100 + 15
    assert windows.first_scored == 8 and windows.scored_per_window == 7 and windows.n_scored == 21
    with pytest.raises(BenchError, match="fewer than one window"):
        make_windows([1, 2, 3], bos=2, ctx=16, chunks=1)


def test_log_softmax_is_normalised():
    rows = log_softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], dtype=np.float32))
    assert np.allclose(np.exp(rows).sum(axis=1), 1.0)


def test_embedding_tables_count_one_row_and_a_tied_head_is_streamed(wide):
    reader = gguf_info.open_gguf(wide.text_gguf)
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    per_token = gguf_info.bytes_per_token(reader)
    assert per_token.tied_output  # the test model, like Gemma, has no separate output.weight
    # F32 rows: token_embd 256 x 4 bytes, per_layer_token_embd 6 layers x 64 x 4 bytes
    assert per_token.lookups == 256 * 4 + 6 * 64 * 4
    others = sum(int(t.n_bytes) for name, t in tensors.items() if name != "per_layer_token_embd.weight")
    assert per_token.streamed == others
    assert gguf_info.file_type_name(reader) == "F32" and gguf_info.is_unquantized(reader)


def test_bandwidth_is_positive_and_gives_a_roofline():
    result = measure_bandwidth(threads=2, buffer_mib=32, repeats=2)
    assert result["bytes_per_s"]["median"] > 0 and result["threads"] == 2
    limit = roofline(50.0, 10**9, 2e10)
    assert limit == {"limit_tok_s": 20.0, "fraction": 2.5}


def test_summaries():
    assert summary([3, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert percentiles([1, 2, 3, 4])["p50"] == 2.5


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1/v1", "http://[::1]:80",
                                 "http://127.5.6.7:9"])
def test_loopback_urls_are_accepted(url):
    assert not check_url(url, allow_remote=False).endswith("/v1")


@pytest.mark.parametrize("url", ["http://10.0.0.1:8080", "http://192.168.1.2", "http://example.com",
                                 "http://8.8.8.8:80"])
def test_remote_urls_need_allow_remote(url):
    with pytest.raises(BenchError, match="--allow-remote"):
        check_url(url, allow_remote=False)
    assert check_url(url, allow_remote=True)


def test_bad_urls_and_model_counts_are_refused():
    with pytest.raises(BenchError, match="expected http"):
        check_url("ftp://127.0.0.1", allow_remote=False)
    with pytest.raises(BenchError, match="one per URL"):
        resolve_targets(["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"], ["a", "b"], False)
    assert resolve_targets(["http://127.0.0.1:1", "http://127.0.0.1:2"], ["m"], False) == [
        Target("http://127.0.0.1:1", "m"), Target("http://127.0.0.1:2", "m")]
