"""evaluate(): task metrics and latency for one backend's pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.evaluation.latency import latency_stats

log = logging.getLogger(__name__)


def evaluate_backend(
    pipeline: BasePipeline,
    loader: BaseDataLoader,
    evaluator: BaseEvaluator,
    *,
    num_samples: int,
    warmup: int,
    predictions_path: Path | None = None,
    on_sample: Callable[[int, int], None] | None = None,
    verbose: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """Warm up (untimed, unscored), then score and time every sample.

    ``verbose`` (evaluation.verbose): one INFO line per timed sample (dataset index, total and
    per-stage latency), to find the sample behind an outlier in the latency distribution.

    Warm-up reuses the first samples so one-off costs (CUDA context, cuDNN autotune, ORT
    graph optimisation, lazy allocation) stay out of the statistics.
    """
    indices = loader.sample_indices(num_samples)
    if not indices:
        from modeldeploy.errors import DataError

        raise DataError("the dataset has no samples to evaluate", hint="check runtime_io.data_root / info_file")
    for i in indices[: min(warmup, len(indices))]:
        pipeline(loader.load_sample(i))
    evaluator.reset()
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    for n, i in enumerate(indices):
        sample = loader.load_sample(i)
        out = pipeline(sample)
        evaluator.add(out.prediction, sample)
        totals.append(out.total_ms)
        for k, v in out.stage_ms.items():
            stages.setdefault(k, []).append(v)
        if verbose:
            log.info(
                "evaluate %s sample %d/%d (index %s): %.3f ms (%s)",
                label,
                n + 1,
                len(indices),
                i,
                out.total_ms,
                ", ".join(f"{k} {v:.3f}" for k, v in out.stage_ms.items()) or "no stages",
                extra={"event": "sample", "current": n + 1, "total": len(indices)},
            )
        if on_sample:
            on_sample(n + 1, len(indices))
    metrics = evaluator.compute()
    result: dict[str, Any] = {
        "metrics": metrics,
        "headline_metric": evaluator.headline_metric,
        "num_samples": len(indices),
        "warmup": min(warmup, len(indices)),
        "latency_ms": latency_stats(totals),
        "stage_latency_ms": {k: latency_stats(v) for k, v in stages.items()},
        # every timed sample, in order: the caller keeps them in a sidecar file (report plots,
        # run comparison); results.json itself keeps only the statistics
        "raw_latency_ms": {"total": totals, "stages": stages},
    }
    if predictions_path is not None:
        written = evaluator.write_predictions(predictions_path)
        if written is not None:
            result["predictions"] = str(written)
    return result
