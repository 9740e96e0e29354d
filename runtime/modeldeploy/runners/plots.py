"""The report's figures as PNG bytes (matplotlib, Agg: no display, no files).

Each function takes plain results.json / sidecar data and returns ``None`` when it has
nothing honest to draw (e.g. one backend has no raw latencies), so the report shows only
figures backed by measurements. Figures are small (≈ 510×290 px) to keep report.html light.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from modeldeploy.core.results import EvaluationResult, VerificationResult

SIZE = (6.4, 3.6)
DPI = 80


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def latency_distribution(raw: dict[str, list[float]]) -> bytes | None:
    """Violin (≥ 2 samples) of every timed sample per backend: tails and bimodality show here, not in p50."""
    data = {k: [float(x) for x in v if x is not None] for k, v in raw.items()}
    data = {k: v for k, v in data.items() if v}
    if not data:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    labels = list(data)
    multi = [k for k in labels if len(data[k]) >= 2]
    if multi:
        ax.violinplot([data[k] for k in multi], positions=[labels.index(k) + 1 for k in multi], showmedians=True)
    for i, k in enumerate(labels):
        ax.scatter([i + 1] * len(data[k]), data[k], s=6, alpha=0.5, color="black")
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=15, fontsize=8)
    ax.set_ylabel("latency per sample (ms)")
    ax.set_title("Latency distribution (every timed sample)")
    return _png(fig)


def stage_bars(evaluation: Mapping[str, EvaluationResult]) -> bytes | None:
    """Stacked p50 per stage and backend: where the time goes (preprocess vs model vs postprocess)."""
    rows = {k: e.stage_latency_ms for k, e in evaluation.items()}
    rows = {k: v for k, v in rows.items() if v}
    if not rows:
        return None
    stages: list[str] = []
    for v in rows.values():
        stages += [s for s in v if s not in stages]
    fig, ax = plt.subplots(figsize=SIZE)
    labels = list(rows)
    bottom = [0.0] * len(labels)
    for s in stages:
        vals = [float(rows[k][s].p50) if s in rows[k] else 0.0 for k in labels]
        ax.bar(labels, vals, bottom=bottom, label=s)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("Latency per stage (p50, stacked)")
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.legend(fontsize=7)
    return _png(fig)


def accuracy_vs_latency(evaluation: Mapping[str, EvaluationResult]) -> bytes | None:
    pts = []
    for k, e in evaluation.items():
        v, p50 = e.headline_value, e.latency_ms.p50
        if v is not None and isinstance(p50, (int, float)):
            pts.append((k, e.precision or "?", float(p50), v, e.headline_metric))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for k, prec, x, y, _ in pts:
        ax.scatter([x], [y], s=40)
        ax.annotate(f"{k} ({prec})", (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel(pts[0][4])
    ax.set_title("Accuracy vs latency per backend / precision")
    return _png(fig)


def pr_curves(label: str, curves: dict[str, Any]) -> bytes | None:
    curves = {c: v for c, v in curves.items() if v.get("recall") and v.get("precision")}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], label=name)
    first = next(iter(curves.values()))
    at = (
        f"IoU {first['iou']}"
        if "iou" in first
        else (f"centre distance {first['distance_m']} m" if "distance_m" in first else "")
    )
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Precision-recall per class, {label} {at}".strip())
    ax.legend(fontsize=7)
    return _png(fig)


def confusion_matrix(label: str, cm: dict[str, Any]) -> bytes | None:
    matrix, names = cm.get("matrix"), cm.get("labels")
    if not matrix or not names:
        return None
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(names)), names, fontsize=7, rotation=15)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(f"Confusion matrix, {label}", fontsize=9)
    fig.colorbar(im, ax=ax)
    return _png(fig)


def verification_errors(verification: VerificationResult) -> bytes | None:
    """Histogram of the per-sample max |test − reference| per compared output, with the tolerance."""
    series = {
        f"{c.test} {c.output}": [v for v in c.sample_max_abs_diff or [] if v is not None]
        for c in verification.comparisons
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    import numpy as np

    tol = verification.tolerance
    floor = 1e-12  # exact agreement (0.0) is drawn at the floor of the log axis
    vals = {k: [max(float(x), floor) for x in v] for k, v in series.items()}
    hi = max(max(max(v) for v in vals.values()), float(tol) if isinstance(tol, (int, float)) else 0.0)
    lo = min(min(v) for v in vals.values())
    bins = np.logspace(np.log10(lo) - 0.5, np.log10(hi) + 0.5, 25)
    fig, ax = plt.subplots(figsize=SIZE)
    # matplotlib accepts an array of bin edges; its stubs only name Sequence[float]
    ax.hist(list(vals.values()), bins=cast(Sequence[float], bins), label=list(vals))
    ax.set_xscale("log")
    if isinstance(tol, (int, float)):
        ax.axvline(tol, color="red", linestyle="--", label=f"tolerance {tol:g}")
    ax.set_xlabel("max |test − reference| per sample")
    ax.set_ylabel("samples")
    ax.set_title("Verification error per sample and output")
    ax.legend(fontsize=7)
    return _png(fig)
