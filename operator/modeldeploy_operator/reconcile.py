"""Reconcile and observe: the two operations the kopf handlers delegate to.

* ``wants_reconcile`` is the level trigger evaluated on every CR watch event: it compares
  the spec hash with what the status recorded, so no per-object bookkeeping (kopf's
  last-handled-configuration annotation) has to be written.
* ``reconcile`` makes the children of the current spec exist (ConfigMap + Job named
  ``<name>-<hash8>``) and removes Jobs of superseded specs. It is idempotent: the Job
  name is derived from the spec hash and 409 AlreadyExists returns the existing object,
  so an operator restart (or two overlapping passes) never yields a second Job. Before
  creating anything it re-checks the tenant policy (``policy.py``: PolicyViolation), and
  an existing object is trusted only if this CR controls it and it carries this spec's
  hash (and, for the ConfigMap, exactly the config files this spec executes); anything
  else is a squatted name (NameConflict) and nothing runs.
* ``observe`` reads the current Job (and, when useful, its pods) and writes the derived
  status, returning the transitions to announce as Events. For a CR whose status was
  never written it records the initial status too (see ``defer_initial_status``).

Both take a :class:`~modeldeploy_operator.kube.KubeClient` (the operator's ``Kube``; unit
tests pass an in-memory double).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Mapping
from typing import Any

from . import jobs, scrub
from . import policy as pol
from . import status as st
from .config import OperatorConfig
from .constants import (
    ANNOTATION_CONTENT_SHA256,
    ANNOTATION_DEPLOYMENT,
    ANNOTATION_SPEC_SHA256,
    KIND,
    LABEL_SPEC_HASH,
    TERMINAL_PHASES,
)
from .kube import KubeClient
from .spec import HASH_LEN, child_name, spec_hash

# Fault injection for the cluster test of an operator crash between the ConfigMap and the
# Job create (tests/cluster/test_operator_safety.py): exit at once, like a SIGKILL there.
_EXIT_AFTER_CONFIGMAP = os.environ.get("MODELDEPLOY_TEST_EXIT_AFTER_CONFIGMAP") == "1"


class OrphanConflict(RuntimeError):
    """A child with our name belongs to an earlier CR of the same name (GC pending)."""


class Refused(Exception):
    """This spec must not run: `reason` (PolicyViolation | NameConflict) and one line why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclasses.dataclass
class Outcome:
    status_patch: dict[str, Any] = dataclasses.field(default_factory=dict)
    events: list[st.Transition] = dataclasses.field(default_factory=list)
    job_created: bool = False
    stale_deleted: list[str] = dataclasses.field(default_factory=list)
    needs_reconcile: bool = False
    uid: str | None = None  # of the CR, for the Events' involvedObject
    job_name: str | None = None  # the Job of the current spec, known to exist (reconcile)
    cr_after: dict[str, Any] | None = None  # the CR as returned by our status patch


def owned_by(child: Mapping[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (child.get("metadata") or {}).get("ownerReferences") or []
    )


def controller_ref(child: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((r for r in (child.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


def from_earlier_cr(child: Mapping[str, Any], name: str, uid: str) -> bool:
    """Controlled by another ModelDeployment of the same name: a deleted CR whose children
    the garbage collector has not removed yet (re-created CR). Anything else is foreign."""
    ref = controller_ref(child)
    return ref is not None and ref.get("kind") == KIND and ref.get("name") == name and ref.get("uid") != uid


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def check_configmap(existing: Mapping[str, Any], expected: Mapping[str, Any], uid: str, hash_: str) -> str | None:
    """None if `existing` (found on 409) is this CR's ConfigMap for this spec, else why not."""
    name = expected["metadata"]["name"]
    if not owned_by(existing, uid):
        return f"ConfigMap {name} exists and is not controlled by this ModelDeployment"
    ann = _annotations(existing)
    if ann.get(ANNOTATION_SPEC_SHA256) != hash_:
        return f"ConfigMap {name} exists and was made for another spec"
    want = jobs.content_sha256(expected.get("data") or {})
    if ann.get(ANNOTATION_CONTENT_SHA256) != want or jobs.content_sha256(existing.get("data") or {}) != want:
        return f"ConfigMap {name} exists with other config files than this spec's"
    return None


def check_job(existing: Mapping[str, Any], uid: str, hash_: str) -> str | None:
    """None if `existing` is this CR's Job for this spec (Jobs made before the spec-sha256
    annotation existed are recognised by their spec-hash label), else why not."""
    name = (existing.get("metadata") or {}).get("name")
    if not owned_by(existing, uid):
        return f"Job {name} exists and is not controlled by this ModelDeployment"
    recorded = _annotations(existing).get(ANNOTATION_SPEC_SHA256)
    label = ((existing.get("metadata") or {}).get("labels") or {}).get(LABEL_SPEC_HASH)
    if (
        (recorded or label) is None
        or (recorded is not None and recorded != hash_)
        or (recorded is None and label != hash_[:HASH_LEN])
    ):
        return f"Job {name} exists and was made for another spec"
    return None


def policy_violations(kube: KubeClient, body: Mapping[str, Any], config: OperatorConfig) -> list[pol.Violation]:
    """The chart's rules (also enforced at admission) + the Secret opt-in only the operator can check."""
    spec = body.get("spec") or {}
    out = pol.check(spec, config.policy)
    # The credentials Secret and any Secret a volume or env entry reads.
    for secret in pol.referenced_secrets(spec) if config.policy.secret_opt_in_label else []:
        try:
            v = pol.check_secret(secret, kube.get_secret(body["metadata"]["namespace"], secret), config.policy)
        except PermissionError:
            v = pol.Violation(
                pol.RULE_SECRET_OPT_IN,
                f"the operator may not read Secret {secret!r} to check its opt-in "
                "label; grant it get on secrets (config/rbac/role.yaml)",
            )
        if v is not None:
            out.append(v)
    return out


def refuse(body: Mapping[str, Any], hash_: str, reason: str, message: str, now: dt.datetime) -> Outcome:
    """Outcome for a spec that will not run: Failed status and one Warning Event."""
    out = Outcome(uid=body["metadata"]["uid"])
    out.status_patch = st.diff(
        body.get("status") or {}, st.refused_status(cr=body, hash_=hash_, reason=reason, message=message, now=now)
    )
    out.events.append(st.Transition("Warning", reason, message))
    return out


def wants_reconcile(body: Mapping[str, Any], job_owner: Callable[[str], str | None]) -> bool:
    """Does this CR (as seen on the watch) need a reconcile pass?

    True unless the status already records the current spec (hash, Job name, generation),
    or the CR is new and its Job is already known to exist (`job_owner(job_name)` is the
    uid of the Job's controller, from the Job watch): that Job's first event records the
    status. Our own status patches come back as watch events and answer False here.
    """
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    prev = body.get("status") or {}
    h = spec_hash(body.get("spec") or {})
    job_name = child_name(meta.get("name") or "", h)
    if prev.get("specHash") == h and prev.get("jobName") == job_name:
        return prev.get("observedGeneration") != int(meta.get("generation") or 1)
    if (
        prev.get("specHash") == h
        and prev.get("phase") == "Failed"
        and (prev.get("failure") or {}).get("reason") in st.REFUSAL_REASONS
    ):
        return prev.get("observedGeneration") != int(meta.get("generation") or 1)
    return not (not prev.get("specHash") and job_owner(job_name) == meta.get("uid"))


def reconcile(
    kube: KubeClient,
    body: Mapping[str, Any],
    config: OperatorConfig,
    *,
    now: dt.datetime | None = None,
    cleanup_stale: bool = True,
    lookup_first: bool = True,
    defer_initial_status: bool = False,
) -> Outcome:
    """Ensure the Job of the current spec exists; delete Jobs of older specs.

    `lookup_first=False` (a CR the operator has not run yet) skips the read before the
    create: 409 AlreadyExists returns the existing Job, which is then checked the same way.
    `defer_initial_status=True` writes no status for a CR that has none yet: ``observe`` of
    the new Job's first watch event writes it (one write fewer on the apply→Job path).
    A changed spec still gets its new status here, clearing the old run's results at once.
    """
    now = now or st.now_utc()
    meta = body["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    spec = body.get("spec") or {}
    prev = body.get("status") or {}
    h = spec_hash(spec)
    job_name = child_name(name, h)
    out = Outcome(uid=uid)
    finished = prev.get("specHash") == h and prev.get("phase") in TERMINAL_PHASES
    if not finished:
        try:
            _ensure_children(kube, body, h, config, lookup_first, out)
        except Refused as r:
            return refuse(body, h, r.reason, r.message, now)
        out.job_name = job_name
    if cleanup_stale:
        for other in kube.list_jobs(ns, name):
            ometa = other.get("metadata") or {}
            if ometa.get("name") == job_name or not owned_by(other, uid):
                continue
            if (ometa.get("annotations") or {}).get(ANNOTATION_DEPLOYMENT, name) != name:
                continue
            if kube.delete_job(ns, ometa["name"]):
                out.stale_deleted.append(ometa["name"])
                out.events.append(
                    st.Transition(
                        "Normal",
                        "StaleJobDeleted",
                        f"Deleted Job {ometa['name']} of superseded spec {(ometa.get('labels') or {}).get(LABEL_SPEC_HASH, '?')}",
                    )
                )
    generation = int(meta.get("generation") or 1)
    if defer_initial_status and not prev.get("specHash"):
        pass  # observe() of the Job's first event writes the initial status
    elif finished and (prev.get("failure") or {}).get("reason") in st.REFUSAL_REASONS:
        if prev.get("observedGeneration") != generation:  # refused; an edit reverted to it stays refused
            out.status_patch = {"observedGeneration": generation}
    elif prev.get("specHash") != h or prev.get("jobName") != job_name:
        out.status_patch = st.diff(prev, st.initial_status(cr=body, hash_=h, job_name=job_name, now=now))
        if prev.get("specHash") and prev.get("specHash") != h:
            out.events.append(
                st.Transition("Normal", "SpecChanged", f"Generation {generation}: new spec {h[:HASH_LEN]}")
            )
    elif prev.get("observedGeneration") != generation:
        # Same spec content under a newer generation (e.g. an edit reverted): nothing to run.
        out.status_patch = {"observedGeneration": generation}
    return out


def _ensure_children(
    kube: KubeClient, body: Mapping[str, Any], h: str, config: OperatorConfig, lookup_first: bool, out: Outcome
) -> Mapping[str, Any]:
    """The Job of spec `h` (created with its ConfigMap if missing); raises Refused when the
    spec breaks the policy or a child name is squatted, OrphanConflict while an earlier
    CR's child of the same name awaits garbage collection (retried)."""
    meta = body["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    job_name = child_name(name, h)
    job = kube.get_job(ns, job_name) if lookup_first else None
    if job is None:
        violations = policy_violations(kube, body, config)
        if violations:
            raise Refused("PolicyViolation", "; ".join(str(v) for v in violations))
        cm = jobs.build_configmap(body, h)
        created_cm = kube.create_configmap(ns, cm)
        if created_cm and _EXIT_AFTER_CONFIGMAP:
            os._exit(86)
        if not created_cm:
            existing = kube.get_configmap(ns, cm["metadata"]["name"])
            if existing is None:  # deleted between the 409 and the read
                raise OrphanConflict(
                    f"ConfigMap {ns}/{cm['metadata']['name']} vanished after AlreadyExists, will retry"
                )
            if from_earlier_cr(existing, name, uid):
                raise OrphanConflict(
                    f"ConfigMap {ns}/{cm['metadata']['name']} belongs to an earlier {name!r} "
                    "(garbage collection pending), will retry"
                )
            why = check_configmap(existing, cm, uid, h)
            if why:
                raise Refused("NameConflict", f"{why}; nothing was run — delete it or rename this ModelDeployment")
        job, out.job_created = kube.create_job(ns, jobs.build_job(body, h, config))
        if out.job_created:
            out.events.append(st.Transition("Normal", "JobCreated", f"Created Job {job_name} for spec {h[:HASH_LEN]}"))
    if out.job_created:
        return job
    if from_earlier_cr(job, name, uid):
        kube.delete_job(ns, job_name)
        raise OrphanConflict(f"Job {ns}/{job_name} belongs to an earlier {name!r}; deleted it, will retry")
    why = check_job(job, uid, h)
    if why:
        raise Refused("NameConflict", f"{why}; nothing was run — delete it or rename this ModelDeployment")
    return job


def observe(
    kube: KubeClient,
    namespace: str,
    name: str,
    config: OperatorConfig,
    *,
    job: Mapping[str, Any] | None = None,
    with_pods: bool = True,
    now: dt.datetime | None = None,
    cr: Mapping[str, Any] | None = None,
    secrets: scrub.SecretCache | None = None,
) -> Outcome:
    """Derive the status of CR `namespace/name` from its current Job; patch it if it changed.

    `job`, when given (from a Job watch event), saves a read; it is ignored unless it is
    the CR's current Job. Pods are listed when the Job finished (termination message)
    or when `with_pods` (the periodic resync: Unschedulable detection). `cr`, when given
    (the operator's watch cache, kept current with our own patch responses), saves a read.
    `secrets` (the credentials Secret's values) scrubs everything derived from the pod —
    termination message, log tail, artifact names — before it is written or announced.
    """
    now = now or st.now_utc()
    if cr is None:
        cr = kube.get_deployment(namespace, name)
    out = Outcome()
    if cr is None or (cr.get("metadata") or {}).get("deletionTimestamp"):
        return out
    out.uid = cr["metadata"].get("uid")
    prev = cr.get("status") or {}
    h = spec_hash(cr.get("spec") or {})
    job_name = prev.get("jobName")
    base: dict[str, Any] | None = None
    if prev.get("specHash") == h and prev.get("phase") in TERMINAL_PHASES:
        return out
    if not prev.get("specHash"):
        # Never recorded (reconcile deferred it): the Job named after the spec hash, if it
        # exists and is ours, gets the initial status written together with its own.
        job_name = child_name(name, h)
        base = st.initial_status(cr=cr, hash_=h, job_name=job_name, now=now)
    elif prev.get("specHash") != h or not job_name:
        out.needs_reconcile = True  # the spec moved on and no reconcile has recorded it yet
        return out
    if prev.get("phase") in TERMINAL_PHASES:
        return out
    if job is None or (job.get("metadata") or {}).get("name") != job_name:
        job = kube.get_job(namespace, job_name)
    if job is None or not owned_by(job, cr["metadata"]["uid"]):
        out.needs_reconcile = True
        return out
    pods: list[Mapping[str, Any]] | None = None
    if with_pods or st.job_outcome(job) is not None:
        pods = [*kube.list_job_pods(namespace, job_name)]
    if base is not None:
        seen = dict(cr)
        seen["status"] = {k: v for k, v in base.items() if v is not None}
        new = dict(base)
        new.update(
            st.derive_status(cr=seen, job=job, pods=pods, now=now, unschedulable_after_s=config.unschedulable_after_s)
        )
    else:
        new = st.derive_status(cr=cr, job=job, pods=pods, now=now, unschedulable_after_s=config.unschedulable_after_s)
    if secrets is not None and (new.get("phase") in TERMINAL_PHASES or new.get("message") or new.get("failure")):
        # the credentials Secret and every Secret a runtime.volumes/env entry reads
        for secret_name in pol.referenced_secrets(cr.get("spec") or {}):
            new = scrub.scrub(new, secrets.pattern_for(namespace, secret_name))
    patch = st.diff(prev, new)
    if patch:
        out.cr_after = kube.patch_deployment_status(namespace, name, patch)
        out.status_patch = patch
        merged = dict(prev)
        merged.update(new)
        out.events = st.transitions(prev, merged)
    return out
