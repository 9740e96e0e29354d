"""Per-backend sidecar files beside results.json: raw per-sample latencies and PR curves.

results.json stays small (it is parsed by the operator, dashboards and ``compare``); the
bulky per-sample data lives in ``latency/<backend>.json`` and ``curves/<backend>.json``,
named from the evaluation entry (``latency_samples`` / ``pr_curves``, relative to the work
dir) and published with the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modeldeploy.core.results import EvaluationResult
from modeldeploy.evaluation.runner import RawLatency


def _safe(label: str) -> str:
    return label.replace(":", "_").replace("/", "_")


def write_eval_sidecars(work_dir: Path, label: str, entry: EvaluationResult, raw: RawLatency | None) -> list[Path]:
    """Write ``raw`` and ``entry.metrics['pr_curves']`` (moved out of the entry) to sidecar
    files named in ``entry``; returns the files written (to be published as artifacts)."""
    written: list[Path] = []
    if raw is not None:
        p = work_dir / "latency" / f"{_safe(label)}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "backend": label,
            "unit": "ms",
            "total": [round(float(v), 4) for v in raw.total],
            "stages": {k: [round(float(v), 4) for v in vs] for k, vs in raw.stages.items()},
        }
        p.write_text(json.dumps(doc, allow_nan=False))
        entry.latency_samples = str(p.relative_to(work_dir))
        written.append(p)
    curves = entry.metrics.pop("pr_curves", None)
    if curves:
        p = work_dir / "curves" / f"{_safe(label)}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"backend": label, "pr_curves": curves}, allow_nan=False))
        entry.pr_curves = str(p.relative_to(work_dir))
        written.append(p)
    return written


def read_sidecar(base: Path, rel: str | None) -> dict[str, Any] | None:
    """A sidecar named in results.json, or None when absent/unreadable (a report never fails on it)."""
    if not rel:
        return None
    p = (base / rel).resolve()
    try:
        p.relative_to(base.resolve())  # a results.json must not point the report outside its run
    except ValueError:
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
