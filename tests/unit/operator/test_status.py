import datetime as dt

import pytest

from modeldeploy_operator import status as st
from modeldeploy_operator import summary

from .samples import deployment, job, pod, summary_json

NOW = dt.datetime(2026, 11, 25, 10, 10, tzinfo=dt.timezone.utc)


def derive(cr, j, pods, now=NOW, threshold=120.0):
    return st.derive_status(cr=cr, job=j, pods=pods, now=now, unschedulable_after_s=threshold)


def conds(status):
    return {c["type"]: c for c in status["conditions"]}


def test_succeeded_job_maps_summary_into_status():
    cr = deployment()
    j = job(
        "demo-abcd1234",
        conditions=[("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")],
        succeeded=1,
        startTime="2026-11-25T10:01:00Z",
        completionTime="2026-11-25T10:04:00Z",
    )
    out = derive(cr, j, [pod("p1", phase="Succeeded", exit_code=0, message=summary_json())])
    assert out["phase"] == "Succeeded" and out["failure"] is None and out["attempts"] == 1
    assert out["completedAt"] == "2026-11-25T10:04:00Z" and out["startedAt"] == "2026-11-25T10:01:00Z"
    assert out["headline"]["backend"] == "onnxruntime:cpu" and out["headline"]["p50Ms"] == 1.2
    assert out["verification"]["passed"] is True and out["artifacts"][0]["kind"] == "onnx"
    c = conds(out)
    assert (
        c["Ready"]["status"] == "True" and c["Reconciling"]["status"] == "False" and c["Stalled"]["status"] == "False"
    )
    assert (
        c["Exported"]["status"] == "True" and c["Verified"]["status"] == "True" and c["Evaluated"]["status"] == "True"
    )
    assert all(x["observedGeneration"] == 1 for x in out["conditions"])


def _failed(exit_code, reason=None, message=None, job_reason="PodFailurePolicy"):
    j = job("demo-abcd1234", conditions=[("FailureTarget", job_reason), ("Failed", job_reason)], failed=1)
    return derive(deployment(), j, [pod("p1", phase="Failed", exit_code=exit_code, reason=reason, message=message)])


def test_exit_2_is_config_error_with_summary_reason():
    msg = summary_json(
        status="failed",
        failure={"stage": "load", "reason": "CheckpointError", "message": "bad keys"},
        verification=None,
        evaluation={},
        artifacts=[],
    )
    out = _failed(2, message=msg)
    assert out["phase"] == "Failed"
    assert out["failure"] == {"reason": "CheckpointError", "message": "bad keys", "stage": "load"}
    assert conds(out)["Stalled"]["reason"] == "CheckpointError"
    out2 = _failed(2, message="ConfigError: unknown key exprt")  # non-JSON fallback log
    assert out2["failure"]["reason"] == "ConfigError" and "unknown key" in out2["failure"]["message"]


def test_exit_3_is_verification_failed():
    msg = summary_json(
        status="failed",
        failure={"stage": "verify", "reason": "VerificationFailed", "message": "diff 0.5"},
        verification={"passed": False, "tolerance": 0.001, "max_abs_diff": 0.5, "comparisons": 1},
    )
    out = _failed(3, message=msg)
    assert out["failure"]["reason"] == "VerificationFailed" and out["failure"]["stage"] == "verify"
    c = conds(out)
    assert c["Verified"]["status"] == "False" and c["Verified"]["reason"] == "VerificationFailed"


def test_exit_1_after_backoff_is_runtime_crash_with_attempts():
    j = job("demo-abcd1234", conditions=[("Failed", "BackoffLimitExceeded")], failed=3)
    pods = [
        pod(
            f"p{i}",
            phase="Failed",
            exit_code=1,
            message="Traceback\nRuntimeError: boom",
            created=f"2026-11-25T10:0{i}:00Z",
        )
        for i in range(3)
    ]
    out = derive(deployment(), j, pods)
    assert out["failure"]["reason"] == "RuntimeCrash" and "boom" in out["failure"]["message"]
    assert out["attempts"] == 3


def test_oom_killed_and_plain_sigkill_are_told_apart():
    assert _failed(137, reason="OOMKilled", job_reason="BackoffLimitExceeded")["failure"]["reason"] == "OOMKilled"
    out = _failed(137, reason="Error", job_reason="BackoffLimitExceeded")
    assert out["failure"]["reason"] == "RuntimeCrash" and "137" in out["failure"]["message"]


def test_deadline_exceeded_comes_from_the_job_condition():
    j = job("demo-abcd1234", conditions=[("Failed", "DeadlineExceeded")], failed=1)
    out = derive(deployment(), j, [pod("p1", phase="Failed", exit_code=137, reason="Error")])
    assert out["failure"]["reason"] == "DeadlineExceeded"


def test_exit_4_is_artifact_store_error():
    assert _failed(4, job_reason="BackoffLimitExceeded")["failure"]["reason"] == "ArtifactStoreError"


@pytest.mark.parametrize("age_s, stalled", [(30, False), (119, False), (121, True)])
def test_unschedulable_becomes_stalled_only_after_threshold(age_s, stalled):
    since = (NOW - dt.timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    j = job("demo-abcd1234", active=1)
    out = derive(deployment(), j, [pod("p1", phase="Pending", unschedulable_since=since)])
    c = conds(out)
    assert out["phase"] == "Pending"
    assert (c["Stalled"]["status"] == "True") is stalled
    if stalled:
        assert c["Stalled"]["reason"] == "Unschedulable" and "nvidia.com/gpu" in c["Stalled"]["message"]
        assert c["Reconciling"]["status"] == "True"


def test_event_driven_pass_without_pods_keeps_earlier_stalled_verdict():
    j = job("demo-abcd1234", active=1)
    since = "2026-11-25T09:00:00Z"
    first = derive(deployment(), j, [pod("p1", phase="Pending", unschedulable_since=since)])
    cr = deployment()
    cr["status"] = first
    again = derive(cr, j, None)
    assert conds(again)["Stalled"]["status"] == "True"
    assert st.diff(first, again) == {}


def test_image_pull_backoff_also_stalls():
    j = job("demo-abcd1234", active=1)
    out = derive(
        deployment(), j, [pod("p1", phase="Pending", waiting="ImagePullBackOff", created="2026-11-25T09:00:00Z")]
    )
    assert conds(out)["Stalled"]["reason"] == "ImagePullBackOff"


def test_running_from_job_ready_count_or_pod_phase():
    assert derive(deployment(), job("demo-abcd1234", active=1, ready=1), None)["phase"] == "Running"
    assert derive(deployment(), job("demo-abcd1234", active=1), [pod("p", phase="Running")])["phase"] == "Running"
    assert derive(deployment(), job("demo-abcd1234", active=1), [])["phase"] == "Pending"


def test_condition_transition_time_only_moves_when_status_changes():
    t0 = NOW
    t1 = NOW + dt.timedelta(minutes=5)
    first = st.build_conditions([], [("Ready", "False", "JobPending", "m")], 1, t0)
    same = st.build_conditions(first, [("Ready", "False", "JobRunning", "m2")], 1, t1)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] and same[0]["reason"] == "JobRunning"
    flipped = st.build_conditions(same, [("Ready", "True", "Succeeded", "")], 1, t1)
    assert flipped[0]["lastTransitionTime"] == st.fmt_time(t1)


def test_transitions_emit_events_for_phase_changes_and_stalls():
    pending = {"phase": "Pending", "jobName": "j", "conditions": [{"type": "Stalled", "status": "False"}]}
    running = {"phase": "Running", "jobName": "j", "conditions": [{"type": "Stalled", "status": "False"}]}
    stalled = {
        "phase": "Pending",
        "jobName": "j",
        "conditions": [{"type": "Stalled", "status": "True", "reason": "Unschedulable", "message": "m"}],
    }
    failed = {
        "phase": "Failed",
        "jobName": "j",
        "failure": {"reason": "ConfigError", "stage": "load", "message": "bad"},
        "conditions": [{"type": "Stalled", "status": "True", "reason": "ConfigError"}],
    }
    assert [e.reason for e in st.transitions(pending, running)] == ["Running"]
    assert [(e.type, e.reason) for e in st.transitions(pending, stalled)] == [("Warning", "Unschedulable")]
    assert st.transitions(stalled, stalled) == []
    assert [(e.type, e.reason) for e in st.transitions(running, failed)] == [("Warning", "ConfigError")]


def test_diff_is_empty_when_nothing_changed_and_deletes_stale_fields():
    old = {"phase": "Failed", "failure": {"reason": "X"}}
    assert st.diff(old, {"phase": "Failed", "failure": {"reason": "X"}}) == {}
    assert st.diff(old, {"phase": "Pending", "failure": None}) == {"phase": "Pending", "failure": None}
    assert st.diff({}, {"failure": None}) == {}


def test_initial_status_clears_results_of_the_previous_spec():
    cr = deployment(generation=2)
    cr["status"] = {"phase": "Failed", "failure": {"reason": "X"}, "specHash": "old", "evaluation": [{"backend": "b"}]}
    new = st.initial_status(cr=cr, hash_="new" * 10, job_name="demo-newnewne", now=NOW)
    patch = st.diff(cr["status"], new)
    assert patch["phase"] == "Pending" and patch["failure"] is None and patch["evaluation"] is None
    assert patch["observedGeneration"] == 2 and patch["specHash"] == "new" * 10


def test_secrets_in_failure_text_are_redacted():
    out = _failed(1, message="boom password=hunter2 AWS_SECRET_ACCESS_KEY=abc123", job_reason="BackoffLimitExceeded")
    assert "hunter2" not in str(out) and "abc123" not in str(out)
    assert summary.redact("token: x") == "token: x"  # ordinary words survive


def test_lagging_job_event_does_not_flap_running_back_to_pending():
    cr = deployment()
    cr["status"] = derive(cr, job("demo-abcd1234", active=1), [pod("p", phase="Running")])
    assert cr["status"]["phase"] == "Running"
    lagging = derive(cr, job("demo-abcd1234", active=1, ready=0), None)
    assert lagging["phase"] == "Running" and st.transitions(cr["status"], lagging) == []
