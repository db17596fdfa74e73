"""Summaries of repeated measurements: medians with their spread, latency percentiles."""

from __future__ import annotations

import statistics
from typing import Iterable

import numpy as np


def summary(values: Iterable[float]) -> dict[str, float | int]:
    """Median and range of repeated runs: the median resists the noise of a shared machine, the range
    shows how much there was."""
    values = [float(value) for value in values]
    if not values:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def percentiles(values: Iterable[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | int]:
    """``p50``/``p95``/... (linear interpolation) plus the sample count they rest on."""
    array = np.asarray(list(values), dtype=np.float64)
    result: dict[str, float | int] = {"n": int(array.size)}
    for point in points:
        result[f"p{point}"] = float(np.percentile(array, point)) if array.size else 0.0
    return result
