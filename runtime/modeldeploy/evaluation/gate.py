"""Regression gates: turn "the engine works but is worse" into a failed run (exit 3).

Verification's tolerance catches an engine that computes something else; a gate catches one
that is measurably worse than allowed: its headline metric dropped below the reference
backend's, its latency is over budget, or its timings are too noisy to trust (a shared or
throttled node turns a 5 ms model into 100 ms without any other signal). Each tripped limit
names the backend, the metric, both values and the limit.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.config.sections import EvaluationGate, VerificationGate
from modeldeploy.errors import RegressionDetected


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def evaluation_violations(evaluation: dict[str, Any], gate: EvaluationGate) -> list[dict[str, Any]]:
    """Every limit of ``gate`` that some backend of results.json ``evaluation`` exceeds."""
    out: list[dict[str, Any]] = []
    ref_label = next((k for k in evaluation if k.split(":")[0] == gate.reference), None)
    ref = evaluation.get(ref_label) if ref_label else None
    for label, e in evaluation.items():
        metric = e.get("headline_metric")
        lat = e.get("latency_ms") or {}
        if gate.max_metric_drop is not None and ref is not None and label != ref_label and metric:
            a, b = _num((ref.get("metrics") or {}).get(metric)), _num((e.get("metrics") or {}).get(metric))
            if a is not None and b is not None and a - b > gate.max_metric_drop:
                out.append(
                    {
                        "backend": label,
                        "metric": metric,
                        "value": b,
                        "reference": ref_label,
                        "reference_value": a,
                        "limit": f"drop <= {gate.max_metric_drop}",
                        "observed": round(a - b, 6),
                    }
                )
        p50, mean, std = _num(lat.get("p50")), _num(lat.get("mean")), _num(lat.get("std"))
        if gate.max_latency_ms is not None and p50 is not None and p50 > gate.max_latency_ms:
            out.append(
                {
                    "backend": label,
                    "metric": "latency_p50_ms",
                    "value": p50,
                    "limit": f"<= {gate.max_latency_ms}",
                    "observed": p50,
                }
            )
        if gate.max_cv is not None and mean and std is not None and std / mean > gate.max_cv:
            out.append(
                {
                    "backend": label,
                    "metric": "latency_cv",
                    "value": round(std / mean, 4),
                    "limit": f"<= {gate.max_cv}",
                    "observed": round(std / mean, 4),
                }
            )
    return out


def verification_violations(verification: dict[str, Any] | None, gate: VerificationGate) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not verification or gate.max_mean_abs_diff is None:
        return out
    for c in verification.get("comparisons", []):
        v = _num(c.get("mean_abs_diff"))
        if v is not None and v > gate.max_mean_abs_diff:
            out.append(
                {
                    "backend": c["test"],
                    "metric": f"mean_abs_diff[{c['output']}]",
                    "value": v,
                    "reference": c["reference"],
                    "limit": f"<= {gate.max_mean_abs_diff}",
                    "observed": v,
                }
            )
    return out


def describe(v: dict[str, Any]) -> str:
    ref = (
        f" vs {v['reference']} {v['reference_value']:.6g}"
        if "reference_value" in v
        else (f" vs {v['reference']}" if v.get("reference") else "")
    )
    return f"{v['backend']}: {v['metric']} {v['value']:.6g}{ref} (limit {v['limit']})"


def check(
    results: dict[str, Any], verification_gate: VerificationGate, evaluation_gate: EvaluationGate
) -> dict[str, Any]:
    """Record the gate verdict in ``results['gate']``; raise RegressionDetected when a limit trips."""
    violations = verification_violations(results.get("verification"), verification_gate)
    violations += evaluation_violations(results.get("evaluation") or {}, evaluation_gate)
    results["gate"] = {
        "passed": not violations,
        "violations": violations,
        "evaluation": evaluation_gate.model_dump(),
        "verification": verification_gate.model_dump(),
    }
    if violations:
        more = f" (+{len(violations) - 1} more, see results.json gate)" if len(violations) > 1 else ""
        raise RegressionDetected(
            describe(violations[0]) + more,
            hint="fix the engine or the node; relax evaluation.gate / verification.gate only with a measured reason",
        )
    return results["gate"]


UNSTABLE_CV = 0.5  # std/mean above this: the timings say more about the node than the model


def stability_warnings(evaluation: dict[str, Any], threshold: float = UNSTABLE_CV) -> list[str]:
    """Even without a gate, say when latencies are too noisy to quote (a busy or throttled node)."""
    out = []
    for label, e in evaluation.items():
        lat = e.get("latency_ms") or {}
        mean, std = _num(lat.get("mean")), _num(lat.get("std"))
        if mean and std is not None and std / mean > threshold:
            out.append(
                f"{label}: latency is unstable (std/mean {std / mean:.2f} > {threshold}, p50 {lat.get('p50', 0):.3g} ms, "
                f"max {lat.get('max', 0):.3g} ms): the node is probably busy; set evaluation.gate.max_cv to fail such runs"
            )
    return out


def gates_configured(verification_gate: VerificationGate, evaluation_gate: EvaluationGate) -> bool:
    return verification_gate.max_mean_abs_diff is not None or any(
        getattr(evaluation_gate, k) is not None for k in ("max_metric_drop", "max_latency_ms", "max_cv")
    )
