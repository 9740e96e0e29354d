"""Latency statistics over timed samples (the timer itself is ``core.timing.StageTimer``).

``StageTimer`` is re-exported here for projects outside this repository that import it
from its former place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modeldeploy.core.timing import StageTimer

__all__ = ["LATENCY_KEYS", "StageTimer", "latency_stats"]

LATENCY_KEYS = ("mean", "std", "min", "max", "p50", "p90", "p95", "p99")


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """mean/std/min/max/p50/p90/p95/p99 in ms (linear-interpolated percentiles)."""
    if len(samples_ms) == 0:
        raise ValueError("latency_stats needs at least one sample")
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
    }
