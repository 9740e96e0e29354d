"""Compare a test backend's raw outputs with a reference backend's, output by output.

An output passes iff it has the reference's shape, contains no NaN/Inf on EITHER side, and
its max absolute difference is within tolerance. Each failure mode has its own reason so a
report says *why* (shape vs. non-finite vs. drift).

Why non-finite fails even when both sides agree: a checkpoint whose weights are +inf makes
every backend output NaN, and "NaN equals NaN" would verify a useless model. An output that
legitimately carries NaN/Inf (e.g. a masked -inf logit) is listed in
``verification.allow_nonfinite``; then the non-finite positions must coincide exactly
(same NaN mask, same signed infinities) and the finite values are compared as usual.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

import torch

from modeldeploy.core.results import NonFiniteCounts, OutputComparison


class _Labels(TypedDict):
    """The fields every Comparison of one output starts from (typed so ``**base`` checks)."""

    reference: str
    test: str
    output: str
    sample: int


@dataclass
class Comparison:
    reference: str
    test: str
    output: str
    sample: int
    max_abs_diff: float | None
    mean_abs_diff: float | None
    max_rel_diff: float | None
    mean_rel_diff: float | None
    passed: bool
    reason: str | None = (
        None  # None | "ShapeMismatch" | "NonFinite" | "ToleranceExceeded" | "MissingOutput" | "DtypeMismatch"
    )
    shape: list[int] | list[list[int]] | None = None  # [ref shape, test shape] on ShapeMismatch
    nonfinite: dict[str, int] | None = None  # {"reference": n, "test": n} NaN/Inf element counts when any

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
    allow_nonfinite: Collection[str] = (),
) -> list[Comparison]:
    out: list[Comparison] = []
    for name, r in ref.items():
        base = _Labels(reference=reference, test=test_label, output=name, sample=sample)
        if name not in test:
            out.append(
                Comparison(
                    **base,
                    max_abs_diff=None,
                    mean_abs_diff=None,
                    max_rel_diff=None,
                    mean_rel_diff=None,
                    passed=False,
                    reason="MissingOutput",
                )
            )
            continue
        t = test[name]
        r64 = r.detach().to("cpu", torch.float64)
        t64 = t.detach().to("cpu", torch.float64)
        if tuple(r64.shape) != tuple(t64.shape):
            out.append(
                Comparison(
                    **base,
                    max_abs_diff=None,
                    mean_abs_diff=None,
                    max_rel_diff=None,
                    mean_rel_diff=None,
                    passed=False,
                    reason="ShapeMismatch",
                    shape=[list(r64.shape), list(t64.shape)],
                )
            )
            continue
        if r64.numel() == 0:
            out.append(
                Comparison(
                    **base,
                    max_abs_diff=0.0,
                    mean_abs_diff=0.0,
                    max_rel_diff=0.0,
                    mean_rel_diff=0.0,
                    passed=True,
                    shape=list(r64.shape),
                )
            )
            continue
        finite_ref, finite_test = torch.isfinite(r64), torch.isfinite(t64)
        counts = {"reference": int((~finite_ref).sum()), "test": int((~finite_test).sum())}
        if name in allow_nonfinite:
            # allowed: the non-finite pattern must be identical (NaN where NaN, +inf where +inf)
            same_nan = torch.equal(torch.isnan(r64), torch.isnan(t64))
            inf_r, inf_t = torch.isinf(r64), torch.isinf(t64)
            same_inf = torch.equal(inf_r, inf_t) and bool((r64[inf_r] == t64[inf_t]).all())
            nonfinite = not (same_nan and same_inf)
        else:
            nonfinite = bool(counts["reference"] or counts["test"])
        both = finite_ref & finite_test
        diff = torch.where(both, (t64 - r64).abs(), torch.zeros_like(r64))
        rel = diff / (r64.abs().nan_to_num(0.0, 0.0, 0.0) + eps)
        max_abs: float | None
        mean_abs: float | None
        max_rel: float | None
        mean_rel: float | None
        if bool(both.any()):
            max_abs, mean_abs = float(diff.max()), float(diff[both].mean())
            max_rel, mean_rel = float(rel.max()), float(rel[both].mean())
        else:  # nothing finite to compare: no number would be honest
            max_abs = mean_abs = max_rel = mean_rel = None
        if nonfinite:
            passed, reason = False, "NonFinite"
        elif max_abs is not None and max_abs > tolerance:
            passed, reason = False, "ToleranceExceeded"
        else:
            passed, reason = True, None
        out.append(
            Comparison(
                **base,
                max_abs_diff=max_abs,
                mean_abs_diff=mean_abs,
                max_rel_diff=max_rel,
                mean_rel_diff=mean_rel,
                passed=passed,
                reason=reason,
                shape=list(r64.shape),
                nonfinite=counts if (counts["reference"] or counts["test"]) else None,
            )
        )
    return out


def summarize(comparisons: list[Comparison]) -> list[OutputComparison]:
    """One row per (reference, test, output): worst case over samples — what results.json lists."""
    rows: dict[tuple[str, str, str], OutputComparison] = {}
    for c in comparisons:
        key = (c.reference, c.test, c.output)
        row = rows.get(key)
        if row is None:
            row = rows[key] = OutputComparison(
                reference=c.reference,
                test=c.test,
                output=c.output,
                max_abs_diff=0.0,
                mean_abs_diff=0.0,
                max_rel_diff=0.0,
                passed=True,
                reason=None,
                samples=0,
                sample_max_abs_diff=[],
            )
        row.samples += 1
        per_sample = row.sample_max_abs_diff = row.sample_max_abs_diff or []
        per_sample.append(c.max_abs_diff)  # small (num_verify_samples): the report's error histogram
        if c.max_abs_diff is None or row.max_abs_diff is None:
            row.max_abs_diff = row.mean_abs_diff = row.max_rel_diff = None  # incomparable (shape/missing)
        else:
            row.max_abs_diff = max(row.max_abs_diff, c.max_abs_diff)
            row.max_rel_diff = max(row.max_rel_diff or 0.0, c.max_rel_diff or 0.0)
            row.mean_abs_diff = (row.mean_abs_diff or 0.0) + (
                (c.mean_abs_diff or 0.0) - (row.mean_abs_diff or 0.0)
            ) / row.samples
        if c.nonfinite:
            nf = row.nonfinite = row.nonfinite or NonFiniteCounts()
            nf.reference += c.nonfinite.get("reference", 0)
            nf.test += c.nonfinite.get("test", 0)
        if not c.passed:
            row.passed = False
            row.reason = row.reason or c.reason
    return list(rows.values())
