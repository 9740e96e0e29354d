"""Job + Pods + termination summary → ModelDeployment status (pure functions).

Everything here is deterministic given its inputs (``now`` is passed in), so the failure
classification, the condition transitions and the Unschedulable timing are unit-tested
without a cluster. The handlers only fetch the inputs and apply the returned patch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, cast

from . import spec as specmod
from . import summary as summod
from .constants import CONTAINER_NAME, EXIT_ARTIFACT_STORE, EXIT_USER_ERROR, EXIT_VERIFICATION_FAILED

USER_ERROR_REASONS = ("ConfigError", "CheckpointError", "DataError", "BackendUnavailable")
EXIT3_REASONS = ("VerificationFailed", "RegressionDetected", "EvaluationFailed", "NonFiniteMetric", "NonFinite")
# Container waiting reasons that will not fix themselves: treated like Unschedulable.
STUCK_WAITING_REASONS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
)
BACKEND_PREFERENCE = ("tensorrt", "onnxruntime", "pytorch")
RESULT_FIELDS = (
    "artifacts",
    "artifactsTruncated",
    "resultsUri",
    "verification",
    "evaluation",
    "headline",
    "summary",
    "durations",
    "failure",
    "startedAt",
    "completedAt",
    "attempts",
    "message",
    "runId",
    "runUri",
)
# Failures found before anything was created (no Job): policy refusal, squatted child name.
REFUSAL_REASONS = ("PolicyViolation", "NameConflict")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def fmt_time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    stage: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": summod.clip(summod.redact(self.message)), "stage": self.stage}


# ----------------------------------------------------------------------------- Job/Pod
def job_condition(job: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any] | None:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return c
    return None


def job_outcome(job: Mapping[str, Any] | None) -> str | None:
    """'succeeded', 'failed' or None (still running / not started).

    Only the final conditions count (Complete / Failed): the interim SuccessCriteriaMet /
    FailureTarget come before the pods are gone and before completionTime is set.
    """
    if job_condition(job, "Complete"):
        return "succeeded"
    if job_condition(job, "Failed"):
        return "failed"
    return None


def _container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER_NAME:
            return cs
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The runtime container's terminated state (current, else last)."""
    cs = _container_status(pod)
    return (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """terminated_state of a pod latest_terminated_pod returned: it only returns pods that have one."""
    return cast(Mapping[str, Any], terminated_state(pod))


def _pod_sort_key(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def latest_terminated_pod(
    pods: Iterable[Mapping[str, Any]], want_success: bool | None = None
) -> Mapping[str, Any] | None:
    """Newest pod whose runtime container has terminated (optionally with exit 0 / non-0)."""
    best = None
    for pod in sorted(pods, key=_pod_sort_key):
        term = terminated_state(pod)
        if term is None:
            continue
        ok = term.get("exitCode") == 0
        if want_success is None or ok == want_success:
            best = pod
    return best


def stuck_reason(pods: Iterable[Mapping[str, Any]], now: dt.datetime, threshold_s: float) -> tuple[str, str] | None:
    """(reason, message) when a live pod has been unschedulable/unstartable past the threshold."""
    for pod in pods:
        st = pod.get("status") or {}
        if st.get("phase") != "Pending" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for cond in st.get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                since = parse_time(cond.get("lastTransitionTime")) or parse_time(
                    (pod.get("metadata") or {}).get("creationTimestamp")
                )
                if since is not None and (now - since).total_seconds() >= threshold_s:
                    return "Unschedulable", summod.clip(cond.get("message") or "pod cannot be scheduled")
        waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING_REASONS:
            since = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
            if since is not None and (now - since).total_seconds() >= threshold_s:
                return str(waiting["reason"]), summod.clip(summod.redact(waiting.get("message") or waiting["reason"]))
    return None


def classify_failure(job: Mapping[str, Any], pods: list[Mapping[str, Any]], summ: summod.Summary | None) -> Failure:
    """Name why a finished Job failed (docs/contracts.md §1 exit codes)."""
    failed = job_condition(job, "Failed") or job_condition(job, "FailureTarget") or {}
    stage = (summ.failure or {}).get("stage", "run") if summ and summ.failure else "run"
    if failed.get("reason") == "DeadlineExceeded":
        return Failure("DeadlineExceeded", failed.get("message") or "Job exceeded activeDeadlineSeconds", stage)
    pod = latest_terminated_pod(pods, want_success=False)
    term = terminated_state(pod) if pod else None
    s_fail = summ.failure if summ and summ.failure else None
    s_msg = (s_fail or {}).get("message") or (summ.text if summ and summ.text else "")
    if term is None:
        reason = failed.get("reason") or "JobFailed"
        return Failure(
            "RuntimeCrash", failed.get("message") or f"Job failed ({reason}) without a terminated pod", stage
        )
    code = term.get("exitCode")
    if code == EXIT_USER_ERROR:
        reason = (s_fail or {}).get("reason")
        return Failure(
            reason if reason in USER_ERROR_REASONS else "ConfigError",
            s_msg or "runtime exited with code 2 (user error)",
            stage,
        )
    if code == EXIT_VERIFICATION_FAILED:
        reason = (s_fail or {}).get("reason")  # exit 3 also covers RegressionDetected (a gate) and NonFinite metrics
        return Failure(
            reason if reason in EXIT3_REASONS else "VerificationFailed",
            s_msg or "outputs differ beyond tolerance",
            (s_fail or {}).get("stage", "verify"),
        )
    if term.get("reason") == "OOMKilled":
        return Failure("OOMKilled", f"container killed for exceeding its memory limit (exit {code})", stage)
    if code == EXIT_ARTIFACT_STORE:
        return Failure(
            (s_fail or {}).get("reason") or "ArtifactStoreError",
            s_msg or "artifact store error (exit 4)",
            (s_fail or {}).get("stage", "upload"),
        )
    detail = s_msg or f"runtime exited with code {code}" + (" (SIGKILL)" if code == 137 else "")
    if code != 1 and not s_msg:
        detail = f"runtime exited with code {code}" + (
            f" ({term.get('reason')})" if term.get("reason") not in (None, "Error") else ""
        )
    return Failure("RuntimeCrash", detail, stage)


# ----------------------------------------------------------------------------- conditions
def _condition(
    ctype: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: dt.datetime,
    previous: Mapping[str | None, Mapping[str, Any]],
) -> dict[str, Any]:
    old = previous.get(ctype)
    if old is None or old.get("status") != status or not old.get("lastTransitionTime"):
        transition = fmt_time(now)  # new, changed status, or no time recorded
    else:
        transition = old["lastTransitionTime"]
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": summod.clip(message),
        "observedGeneration": generation,
        "lastTransitionTime": transition,
    }


def build_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    desired: Iterable[tuple[str, str, str, str]],
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Desired (type, status, reason, message) → conditions, keeping lastTransitionTime
    when a condition's status did not change (kstatus / metav1.Condition semantics)."""
    # keyed by each condition's type (None for a malformed one without it)
    prev: dict[str | None, Mapping[str, Any]] = {c.get("type"): c for c in previous or [] if isinstance(c, Mapping)}
    return [_condition(t, s, r, m, generation, now, prev) for t, s, r, m in desired]


def _result_conditions(
    phase: str, summ: summod.Summary | None, failure: Failure | None, spec: Mapping[str, Any]
) -> list[tuple[str, str, str, str]]:
    if phase in ("Pending", "Running") or summ is None:
        waiting = "NotReported" if phase in ("Succeeded", "Failed") else phase
        return [
            ("Exported", "Unknown", waiting, "no summary yet"),
            ("Verified", "Unknown", waiting, "no summary yet"),
            ("Evaluated", "Unknown", waiting, "no summary yet"),
        ]
    stage = failure.stage if failure else ""
    exported = [a for a in summ.artifacts if a.get("kind") in ("onnx", "engine")]
    if exported or any(k.startswith("export") for k in summ.durations_s):
        exp = ("Exported", "True", "Exported", f"{len(exported)} model artifact(s)")
    elif stage.startswith("export") or stage == "load":
        exp = ("Exported", "False", failure.reason if failure else "ExportFailed", failure.message if failure else "")
    else:
        exp = ("Exported", "Unknown", "NotReported", "the summary lists no exported model")
    ver = summ.verification
    if ver is not None:
        v = (
            "Verified",
            "True" if ver["passed"] else "False",
            "Verified" if ver["passed"] else "VerificationFailed",
            f"max abs diff {ver.get('maxAbsDiff')} (tolerance {ver.get('tolerance')})",
        )
    elif (spec.get("verification") or {}).get("enabled") is False:
        v = ("Verified", "Unknown", "Disabled", "verification disabled in spec")
    elif stage == "verify":
        v = (
            "Verified",
            "False",
            failure.reason if failure else "VerificationFailed",
            failure.message if failure else "",
        )
    else:
        v = ("Verified", "Unknown", "NotRun", "verification did not run")
    if summ.evaluation:
        e = ("Evaluated", "True", "Evaluated", ", ".join(x["backend"] for x in summ.evaluation))
    elif (spec.get("evaluation") or {}).get("enabled") is False:
        e = ("Evaluated", "Unknown", "Disabled", "evaluation disabled in spec")
    elif stage == "evaluate":
        e = (
            "Evaluated",
            "False",
            failure.reason if failure else "EvaluationFailed",
            failure.message if failure else "",
        )
    else:
        e = ("Evaluated", "Unknown", "NotRun", "evaluation did not run")
    return [exp, v, e]


def lifecycle_conditions(
    phase: str, failure: Failure | None, stuck: tuple[str, str] | None, job_name: str | None
) -> list[tuple[str, str, str, str]]:
    """Ready / Reconciling / Stalled for a phase (kstatus: abnormal-true Reconciling/Stalled)."""
    if phase == "Succeeded":
        return [
            ("Ready", "True", "Succeeded", f"Job {job_name} succeeded"),
            ("Reconciling", "False", "Succeeded", "nothing left to do"),
            ("Stalled", "False", "Succeeded", ""),
        ]
    if phase == "Failed":
        assert failure is not None
        return [
            ("Ready", "False", failure.reason, failure.message),
            ("Reconciling", "False", "Failed", f"Job {job_name} failed"),
            ("Stalled", "True", failure.reason, failure.message),
        ]
    if stuck is not None:
        return [
            ("Ready", "False", stuck[0], stuck[1]),
            ("Reconciling", "True", f"Job{phase}", f"Job {job_name} is {phase.lower()}"),
            ("Stalled", "True", stuck[0], stuck[1]),
        ]
    return [
        ("Ready", "False", f"Job{phase}", f"Job {job_name} is {phase.lower()}"),
        ("Reconciling", "True", f"Job{phase}", f"Job {job_name} is {phase.lower()}"),
        ("Stalled", "False", f"Job{phase}", ""),
    ]


def headline(evaluation: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry shown in `kubectl get` (prefers the most deployed-like backend)."""

    def rank(e: Mapping[str, Any]) -> tuple[int, str]:
        name = str(e.get("backend", "")).split(":")[0]
        return (
            BACKEND_PREFERENCE.index(name) if name in BACKEND_PREFERENCE else len(BACKEND_PREFERENCE),
            str(e.get("backend")),
        )

    candidates = sorted(evaluation, key=rank)
    return summod.drop_nones(dict(candidates[0])) if candidates else None


def round_ms(value: Any) -> str | None:
    """A latency for people: `kubectl get` showed 159.6021599999915 (no unit, float noise).

    About three significant digits are plenty to compare runs by eye (exact values stay in
    status.headline/evaluation): 0.04213 → '0.042 ms', 4.2137 → '4.21 ms', 159.602 → '159.6 ms'.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value
        or value in (float("inf"), float("-inf"))
    ):
        return None
    v = float(value)
    decimals = 0 if v >= 1000 else 1 if v >= 10 else 2 if v >= 1 else 3
    return f"{v:.{decimals}f} ms"


def summary(head: Mapping[str, Any] | None) -> dict[str, str] | None:
    """status.summary: the headline rounded, with units, for the printer columns."""
    if not head:
        return None
    out: dict[str, str] = {}
    lat = round_ms(head.get("p50Ms"))
    if lat:
        out["latencyP50"] = lat
    value = head.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        out["metric"] = f"{head.get('metric') or 'metric'} {float(value):.4g}"
    backend = " ".join(str(head[k]) for k in ("backend", "precision") if head.get(k))
    if backend:
        out["backend"] = backend
    return out or None


# ----------------------------------------------------------------------------- status
def derive_status(
    *,
    cr: Mapping[str, Any],
    job: Mapping[str, Any] | None,
    pods: list[Mapping[str, Any]] | None,
    now: dt.datetime,
    unschedulable_after_s: float,
) -> dict[str, Any]:
    """The status fields the operator owns, for the CR's current Job.

    `pods=None` means "not read this time" (a cheap event-driven pass): a Stalled verdict
    from an earlier pass that did read them is kept instead of being flapped away.
    Keys with value None mean "absent" (the patch helper turns them into deletions).
    """
    prev = cr.get("status") or {}
    pods_known = pods is not None
    pods = list(pods or [])
    generation = int((cr.get("metadata") or {}).get("generation") or 1)
    jstatus = (job or {}).get("status") or {}
    job_name = (job or {}).get("metadata", {}).get("name") or prev.get("jobName")
    outcome = job_outcome(job)
    summ: summod.Summary | None = None
    failure: Failure | None = None
    stuck = None
    if outcome == "succeeded":
        phase = "Succeeded"
        pod = latest_terminated_pod(pods, want_success=True)
        summ = summod.parse(_terminated(pod).get("message")) if pod else None
    elif outcome == "failed":
        phase = "Failed"
        pod = latest_terminated_pod(pods, want_success=False)
        summ = summod.parse(_terminated(pod).get("message")) if pod else None
        failure = classify_failure(job or {}, pods, summ)
    else:
        running = (
            any((p.get("status") or {}).get("phase") == "Running" for p in pods) or int(jstatus.get("ready") or 0) > 0
        )
        # A Job event can lag behind a pod list that already saw the pod running: without
        # pods, never step back from Running to Pending for the same Job (no flapping Events).
        running = running or (
            not pods_known
            and prev.get("phase") == "Running"
            and prev.get("jobName") == job_name
            and int(jstatus.get("active") or 0) > 0
        )
        phase = "Running" if running else "Pending"
        stuck = stuck_reason(pods, now, unschedulable_after_s) if pods_known else previous_stuck(prev)
    desired = lifecycle_conditions(phase, failure, stuck, job_name) + _result_conditions(
        phase, summ, failure, cr.get("spec") or {}
    )
    completed = None
    if outcome:
        cond = (
            job_condition(job, "Complete") or job_condition(job, "Failed") or job_condition(job, "FailureTarget") or {}
        )
        completed = jstatus.get("completionTime") or cond.get("lastTransitionTime")
    attempts = int(jstatus.get("failed") or 0) + int(jstatus.get("succeeded") or 0) + int(jstatus.get("active") or 0)
    evaluation = summ.evaluation if summ else []
    out: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "jobName": job_name,
        "conditions": build_conditions(prev.get("conditions"), desired, generation, now),
        "startedAt": jstatus.get("startTime"),
        "completedAt": completed,
        "attempts": max(attempts, len(pods)) or None,
        "failure": failure.as_dict() if failure else None,
        "artifacts": summ.artifacts if summ and summ.artifacts else None,
        "artifactsTruncated": summ.artifacts_truncated if summ and summ.artifacts_truncated else None,
        "resultsUri": summ.results_uri if summ else None,
        "verification": summod.drop_nones(summ.verification) if summ and summ.verification else None,
        "evaluation": [summod.drop_nones(e) for e in evaluation] or None,
        "headline": headline(evaluation),
        "summary": summary(headline(evaluation)),
        "durations": summ.durations_s if summ and summ.durations_s else None,
        "message": summ.text if summ and not summ.parsed and phase == "Succeeded" else None,
    }
    out.update(run_location(cr, job, pods if pods_known else None, summ.results_uri if summ else None))
    if phase == "Succeeded":
        last = last_succeeded(generation, prev.get("specHash"), out, job)
        if last is not None:
            out["lastSucceeded"] = last
    if stuck is not None:
        out["message"] = f"{stuck[0]}: {stuck[1]}"
    return out


def last_succeeded(
    generation: int, spec_hash: Any, status: Mapping[str, Any], job: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """status.lastSucceeded: the deployment's published result, kept across generations.

    Why it is separate from resultsUri/artifactUri: those describe the CURRENT generation
    and are cleared when the spec changes. lastSucceeded moves only when a generation
    succeeds, so when a newer one fails (e.g. its gate trips) it still names the good
    publication consumers should use, and it is the baseline the next Job is gated against
    (spec.evaluation.gate.baseline, jobs.py). Only a run published to a store (the Job had
    --artifact-uri) counts: a result left in the pod's emptyDir is gone with the pod.
    """
    results_uri = status.get("resultsUri")
    if not job_artifact_uri(job) or not status.get("artifactUri") or not results_uri:
        return None
    return {
        "generation": generation,
        "specHash": spec_hash,
        "runId": status.get("runId"),
        "artifactUri": status.get("artifactUri"),
        "resultsUri": results_uri,
        "completedAt": status.get("completedAt"),
    }


def job_artifact_uri(job: Mapping[str, Any] | None) -> str | None:
    """The exact `--artifact-uri` the Job passes to the runtime (the truth, whatever the CR says now)."""
    containers = (((job or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    args = list((containers[0].get("args") or []) if containers else [])
    if "--artifact-uri" in args and args.index("--artifact-uri") + 1 < len(args):
        return str(args[args.index("--artifact-uri") + 1])
    return None


def run_location(
    cr: Mapping[str, Any],
    job: Mapping[str, Any] | None,
    pods: list[Mapping[str, Any]] | None,
    results_uri: str | None = None,
) -> dict[str, Any]:
    """artifactUri (this generation's prefix, with current.json), runId (the pod that ran
    last: MODELDEPLOY_RUN_ID is the pod name) and runUri, that run's exact prefix: from the
    runtime's results_uri when it lies under <artifactUri>/runs/ (the runtime picks a
    fresh suffix if a run prefix is taken), else <artifactUri>/runs/<runId>.
    Without a pod listing the recorded run is kept."""
    prev = cr.get("status") or {}
    artifact = job_artifact_uri(job) or prev.get("artifactUri")
    run_id = prev.get("runId")
    if pods:
        pod = latest_terminated_pod(pods) or max(pods, key=_pod_sort_key)
        run_id = (pod.get("metadata") or {}).get("name") or run_id
    run_uri = prev.get("runUri") if run_id == prev.get("runId") else None
    if artifact and run_id:
        run_uri = f"{artifact}/runs/{run_id}"
        if results_uri and results_uri.startswith(f"{run_uri}") and results_uri.endswith("/results.json"):
            run_uri = results_uri[: -len("/results.json")]
    return {"artifactUri": artifact, "runId": run_id, "runUri": run_uri}


def previous_stuck(prev: Mapping[str, Any]) -> tuple[str, str] | None:
    cond = _cond(prev, "Stalled")
    if prev.get("phase") in ("Pending", "Running") and cond and cond.get("status") == "True":
        return str(cond.get("reason")), str(cond.get("message") or "")
    return None


def initial_status(*, cr: Mapping[str, Any], hash_: str, job_name: str, now: dt.datetime) -> dict[str, Any]:
    """Status written when a Job is (re)created for a new spec: results of older runs cleared."""
    generation = int((cr.get("metadata") or {}).get("generation") or 1)
    prev = (cr.get("status") or {}).get("conditions")
    desired = lifecycle_conditions("Pending", None, None, job_name) + _result_conditions(
        "Pending", None, None, cr.get("spec") or {}
    )
    out: dict[str, Any] = {f: None for f in RESULT_FIELDS}
    meta = cr.get("metadata") or {}
    out.update(
        {
            "phase": "Pending",
            "observedGeneration": generation,
            "specHash": hash_,
            "jobName": job_name,
            "artifactUri": specmod.artifact_uri(
                cr.get("spec") or {}, hash_, meta.get("namespace"), meta.get("name"), generation
            ),
            "conditions": build_conditions(prev, desired, generation, now),
        }
    )
    return out


def refused_status(*, cr: Mapping[str, Any], hash_: str, reason: str, message: str, now: dt.datetime) -> dict[str, Any]:
    """Status of a spec the operator will not run (PolicyViolation, NameConflict): Failed,
    no Job (jobName absent), so ``wants_reconcile`` leaves it alone until the spec changes."""
    generation = int((cr.get("metadata") or {}).get("generation") or 1)
    failure = Failure(reason, message, "admission")
    desired = [
        ("Ready", "False", reason, message),
        ("Reconciling", "False", "Failed", "nothing was created"),
        ("Stalled", "True", reason, message),
    ] + _result_conditions("Failed", None, failure, cr.get("spec") or {})
    out: dict[str, Any] = {f: None for f in RESULT_FIELDS}
    out.update(
        {
            "phase": "Failed",
            "observedGeneration": generation,
            "specHash": hash_,
            "jobName": None,
            "artifactUri": None,
            "failure": failure.as_dict(),
            "completedAt": fmt_time(now),
            "conditions": build_conditions((cr.get("status") or {}).get("conditions"), desired, generation, now),
        }
    )
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge-patch body turning `old` status into `new` for the keys of `new` ({} = no-op)."""
    return {k: v for k, v in new.items() if old.get(k) != v and not (v is None and k not in old)}


@dataclasses.dataclass(frozen=True)
class Transition:
    type: str  # Normal | Warning
    reason: str
    message: str


def transitions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Transition]:
    """Kubernetes Events to post for a status change (phase and Stalled changes)."""
    events: list[Transition] = []
    old_phase, new_phase = old.get("phase"), new.get("phase")
    job = new.get("jobName")
    if new_phase != old_phase:
        if new_phase == "Running":
            events.append(Transition("Normal", "Running", f"Job {job} is running"))
        elif new_phase == "Succeeded":
            h = new.get("headline") or {}
            extra = (
                f"; {h.get('backend')} {h.get('metric')}={h.get('value')} p50={round_ms(h.get('p50Ms'))}" if h else ""
            )
            events.append(Transition("Normal", "Succeeded", f"Job {job} succeeded{extra}"))
        elif new_phase == "Failed":
            f = new.get("failure") or {}
            events.append(
                Transition(
                    "Warning",
                    str(f.get("reason", "Failed")),
                    f"Job {job} failed at stage {f.get('stage')}: {f.get('message')}",
                )
            )
    stalled_old = _cond(old, "Stalled")
    stalled_new = _cond(new, "Stalled")
    if (
        new_phase not in ("Failed",)
        and stalled_new
        and stalled_new.get("status") == "True"
        and (
            not stalled_old
            or stalled_old.get("status") != "True"
            or stalled_old.get("reason") != stalled_new.get("reason")
        )
    ):
        events.append(Transition("Warning", str(stalled_new.get("reason")), str(stalled_new.get("message"))))
    return events


def _cond(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None
