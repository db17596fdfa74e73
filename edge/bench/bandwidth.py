"""This machine's memory read bandwidth: the ceiling that memory-bound decoding cannot beat.

numpy sums a float64 buffer far larger than any cache (default 512 MiB), so every pass streams it from
DRAM. ``threads`` workers each sum their own slice at the same time (numpy releases the GIL inside the
reduction), because decoding also reads with all its threads. The first pass only pages the buffer in;
each repeat after it is timed and the median is reported with the spread.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edge.bench.stats import summary

DEFAULT_BUFFER_MIB = 512


def measure_bandwidth(threads: int = 1, buffer_mib: int = DEFAULT_BUFFER_MIB, repeats: int = 5) -> dict[str, object]:
    """Read bandwidth in bytes/s (median of ``repeats``) with ``threads`` concurrent readers."""
    buffer = np.ones(buffer_mib * 2**20 // 8, dtype=np.float64)
    slices = np.array_split(buffer, max(threads, 1))
    with ThreadPoolExecutor(max_workers=len(slices)) as pool:
        _read_all(pool, slices)  # page in and warm up
        rates = [buffer.nbytes / _timed(_read_all, pool, slices) for _ in range(max(repeats, 1))]
    return {"method": "numpy float64 sum over a buffer far larger than cache", "buffer_bytes": int(buffer.nbytes),
            "threads": len(slices), "bytes_per_s": summary(rates)}


def _read_all(pool: ThreadPoolExecutor, slices: list[np.ndarray]) -> float:
    return sum(pool.map(np.sum, slices))


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def roofline(decode_tok_s: float, bytes_per_token: int, bandwidth_bytes_per_s: float) -> dict[str, float]:
    """The decode speed memory allows (bandwidth ÷ bytes per token) and the fraction of it achieved."""
    limit = bandwidth_bytes_per_s / bytes_per_token if bytes_per_token else 0.0
    return {"limit_tok_s": limit, "fraction": decode_tok_s / limit if limit else 0.0}
