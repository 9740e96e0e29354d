"""evaluate(): task metrics and latency for one backend's pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.core.results import EvaluationResult, LatencyStats
from modeldeploy.evaluation.latency import latency_stats

log = logging.getLogger(__name__)


@dataclass
class RawLatency:
    """Every timed sample, in order (ms). The caller keeps them in a sidecar file (report
    plots, run comparison); results.json itself keeps only the statistics."""

    total: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class BackendEvaluation:
    """What evaluating one backend produced: its results.json entry, the raw timings and the
    predictions file (both published beside results.json, not inside it)."""

    result: EvaluationResult
    raw_latency_ms: RawLatency
    predictions: Path | None = None


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
    precision: str = "fp32",
) -> BackendEvaluation:
    """``precision``: what the backend runs as, recorded with its numbers.

    Warm up (untimed, unscored), then score and time every sample.

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
    result = EvaluationResult(
        precision=precision,
        metrics=evaluator.compute(),
        headline_metric=evaluator.headline_metric,
        num_samples=len(indices),
        warmup=min(warmup, len(indices)),
        latency_ms=LatencyStats(**latency_stats(totals)),
        stage_latency_ms={k: LatencyStats(**latency_stats(v)) for k, v in stages.items()},
    )
    written = evaluator.write_predictions(predictions_path) if predictions_path is not None else None
    return BackendEvaluation(result, RawLatency(totals, stages), Path(written) if written is not None else None)
