"""Exit 3 from a tripped gate reaches the CR as RegressionDetected (not VerificationFailed)."""

import datetime as dt

from modeldeploy_operator import status as st

from .samples import deployment, job, pod, summary_json

NOW = dt.datetime(2026, 11, 25, 10, 10, tzinfo=dt.timezone.utc)


def test_exit_3_regression_detected_keeps_its_reason_on_the_cr() -> None:
    msg = summary_json(
        status="failed",
        failure={
            "stage": "gate",
            "reason": "RegressionDetected",
            "message": "onnxruntime:cpu: accuracy 0.5 vs pytorch:cpu 1 (limit drop <= 0.01)",
        },
    )
    j = job(
        "demo-abcd1234", conditions=[("FailureTarget", "PodFailurePolicy"), ("Failed", "PodFailurePolicy")], failed=1
    )
    out = st.derive_status(
        cr=deployment(),
        job=j,
        pods=[pod("p1", phase="Failed", exit_code=3, message=msg)],
        now=NOW,
        unschedulable_after_s=120.0,
    )
    assert out["phase"] == "Failed"
    assert out["failure"]["reason"] == "RegressionDetected" and out["failure"]["stage"] == "gate"
    assert "accuracy 0.5" in out["failure"]["message"]
    stalled = {c["type"]: c for c in out["conditions"]}["Stalled"]
    assert stalled["reason"] == "RegressionDetected"
