"""Regression gates: turn "the engine works but is worse" into a failed run (exit 3).

Verification's tolerance catches an engine that computes something else; a gate catches one
that is measurably worse than allowed: its headline metric dropped below the reference
backend's, its latency is over budget, or its timings are too noisy to trust (a shared or
throttled node turns a 5 ms model into 100 ms without any other signal). Each tripped limit
names the backend, the metric, both values and the limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from modeldeploy.config.sections import EvaluationGate, VerificationGate
from modeldeploy.core.results import (
    EvaluationResult,
    GateResult,
    GateViolation,
    RunResults,
    VerificationResult,
    number,
)
from modeldeploy.errors import RegressionDetected


def evaluation_violations(evaluation: Mapping[str, EvaluationResult], gate: EvaluationGate) -> list[GateViolation]:
    """Every limit of ``gate`` that some backend of results.json ``evaluation`` exceeds."""
    out: list[GateViolation] = []
    ref_label = next((k for k in evaluation if k.split(":")[0] == gate.reference), None)
    ref = evaluation.get(ref_label) if ref_label else None
    for label, e in evaluation.items():
        metric = e.headline_metric
        lat = e.latency_ms
        if gate.max_metric_drop is not None and ref is not None and label != ref_label and metric:
            a, b = number(ref.metrics.get(metric)), number(e.metrics.get(metric))
            if a is not None and b is not None and a - b > gate.max_metric_drop:
                out.append(
                    GateViolation(
                        backend=label,
                        metric=metric,
                        value=b,
                        reference=ref_label,
                        reference_value=a,
                        limit=f"drop <= {gate.max_metric_drop}",
                        observed=round(a - b, 6),
                    )
                )
        p50, mean, std = number(lat.p50), number(lat.mean), number(lat.std)
        if gate.max_latency_ms is not None and p50 is not None and p50 > gate.max_latency_ms:
            out.append(
                GateViolation(
                    backend=label,
                    metric="latency_p50_ms",
                    value=p50,
                    limit=f"<= {gate.max_latency_ms}",
                    observed=p50,
                )
            )
        if gate.max_cv is not None and mean and std is not None and std / mean > gate.max_cv:
            out.append(
                GateViolation(
                    backend=label,
                    metric="latency_cv",
                    value=round(std / mean, 4),
                    limit=f"<= {gate.max_cv}",
                    observed=round(std / mean, 4),
                )
            )
    return out


def verification_violations(verification: VerificationResult | None, gate: VerificationGate) -> list[GateViolation]:
    out: list[GateViolation] = []
    if not verification or gate.max_mean_abs_diff is None:
        return out
    for c in verification.comparisons:
        v = number(c.mean_abs_diff)
        if v is not None and v > gate.max_mean_abs_diff:
            out.append(
                GateViolation(
                    backend=c.test,
                    metric=f"mean_abs_diff[{c.output}]",
                    value=v,
                    reference=c.reference,
                    limit=f"<= {gate.max_mean_abs_diff}",
                    observed=v,
                )
            )
    return out


def describe(v: GateViolation) -> str:
    ref = (
        f" vs {v.reference} {v.reference_value:.6g}"
        if v.reference_value is not None
        else (f" vs {v.reference}" if v.reference else "")
    )
    return f"{v.backend}: {v.metric} {v.value:.6g}{ref} (limit {v.limit})"


def check(results: RunResults, verification_gate: VerificationGate, evaluation_gate: EvaluationGate) -> GateResult:
    """Record the gate verdict in ``results.gate``; raise RegressionDetected when a limit trips."""
    violations = verification_violations(results.verification, verification_gate)
    violations += evaluation_violations(results.evaluation, evaluation_gate)
    results.gate = GateResult(
        passed=not violations,
        violations=violations,
        evaluation=evaluation_gate.model_dump(),
        verification=verification_gate.model_dump(),
    )
    if violations:
        more = f" (+{len(violations) - 1} more, see results.json gate)" if len(violations) > 1 else ""
        raise RegressionDetected(
            describe(violations[0]) + more,
            hint="fix the engine or the node; relax evaluation.gate / verification.gate only with a measured reason",
        )
    return results.gate


UNSTABLE_CV = 0.5  # std/mean above this: the timings say more about the node than the model


def stability_warnings(evaluation: Mapping[str, EvaluationResult], threshold: float = UNSTABLE_CV) -> list[str]:
    """Even without a gate, say when latencies are too noisy to quote (a busy or throttled node)."""
    out = []
    for label, e in evaluation.items():
        lat = e.latency_ms
        mean, std = number(lat.mean), number(lat.std)
        if mean and std is not None and std / mean > threshold:
            out.append(
                f"{label}: latency is unstable (std/mean {std / mean:.2f} > {threshold}, p50 {lat.p50:.3g} ms, "
                f"max {lat.max:.3g} ms): the node is probably busy; set evaluation.gate.max_cv to fail such runs"
            )
    return out


def gates_configured(verification_gate: VerificationGate, evaluation_gate: EvaluationGate) -> bool:
    return verification_gate.max_mean_abs_diff is not None or any(
        getattr(evaluation_gate, k) is not None for k in ("max_metric_drop", "max_latency_ms", "max_cv")
    )
