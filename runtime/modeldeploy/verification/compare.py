"""Compare a test backend's raw outputs with a reference backend's, output by output.

An output passes iff it has the reference's shape, contains no NaN/Inf where the
reference is finite, and its max absolute difference is within tolerance. Each failure
mode has its own reason so a report says *why* (shape vs. non-finite vs. drift).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch


@dataclass
class Comparison:
    reference: str
    test: str
    output: str
    sample: int
    max_abs_diff: Optional[float]
    mean_abs_diff: Optional[float]
    max_rel_diff: Optional[float]
    mean_rel_diff: Optional[float]
    passed: bool
    reason: Optional[str] = None  # None | "ShapeMismatch" | "NonFinite" | "ToleranceExceeded" | "MissingOutput" | "DtypeMismatch"
    shape: Optional[list[int]] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_outputs(
    ref: Mapping[str, torch.Tensor],
    test: Mapping[str, torch.Tensor],
    *,
    reference: str,
    test_label: str,
    tolerance: float,
    sample: int = 0,
    eps: float = 1e-6,
) -> list[Comparison]:
    out: list[Comparison] = []
    for name, r in ref.items():
        base = dict(reference=reference, test=test_label, output=name, sample=sample)
        if name not in test:
            out.append(Comparison(**base, max_abs_diff=None, mean_abs_diff=None, max_rel_diff=None, mean_rel_diff=None, passed=False, reason="MissingOutput"))
            continue
        t = test[name]
        r64 = r.detach().to("cpu", torch.float64)
        t64 = t.detach().to("cpu", torch.float64)
        if tuple(r64.shape) != tuple(t64.shape):
            out.append(Comparison(**base, max_abs_diff=None, mean_abs_diff=None, max_rel_diff=None, mean_rel_diff=None, passed=False, reason="ShapeMismatch", shape=[list(r64.shape), list(t64.shape)]))  # type: ignore[arg-type]
            continue
        if r64.numel() == 0:
            out.append(Comparison(**base, max_abs_diff=0.0, mean_abs_diff=0.0, max_rel_diff=0.0, mean_rel_diff=0.0, passed=True, shape=list(r64.shape)))
            continue
        finite_ref = torch.isfinite(r64)
        nonfinite = bool((~torch.isfinite(t64) & finite_ref).any()) or bool((torch.isnan(t64) != torch.isnan(r64)).any())
        diff = (t64 - r64).abs()
        diff = torch.where(finite_ref & torch.isfinite(t64), diff, torch.zeros_like(diff))
        rel = diff / (r64.abs() + eps)
        max_abs, mean_abs = float(diff.max()), float(diff.mean())
        max_rel, mean_rel = float(rel.max()), float(rel.mean())
        if nonfinite:
            passed, reason = False, "NonFinite"
        elif max_abs > tolerance:
            passed, reason = False, "ToleranceExceeded"
        else:
            passed, reason = True, None
        out.append(Comparison(**base, max_abs_diff=max_abs, mean_abs_diff=mean_abs, max_rel_diff=max_rel, mean_rel_diff=mean_rel, passed=passed, reason=reason, shape=list(r64.shape)))
    return out


def summarize(comparisons: list[Comparison]) -> list[dict[str, Any]]:
    """One row per (reference, test, output): worst case over samples — what results.json lists."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in comparisons:
        key = (c.reference, c.test, c.output)
        row = rows.setdefault(key, {"reference": c.reference, "test": c.test, "output": c.output, "max_abs_diff": 0.0, "mean_abs_diff": 0.0, "max_rel_diff": 0.0, "passed": True, "reason": None, "samples": 0})
        row["samples"] += 1
        if c.max_abs_diff is None or row["max_abs_diff"] is None:
            row["max_abs_diff"] = row["mean_abs_diff"] = row["max_rel_diff"] = None  # incomparable (shape/missing)
        else:
            row["max_abs_diff"] = max(row["max_abs_diff"], c.max_abs_diff)
            row["max_rel_diff"] = max(row["max_rel_diff"], c.max_rel_diff or 0.0)
            row["mean_abs_diff"] += ((c.mean_abs_diff or 0.0) - row["mean_abs_diff"]) / row["samples"]
        if not c.passed:
            row["passed"] = False
            row["reason"] = row["reason"] or c.reason
    return list(rows.values())
