"""Reconcile and observe: the two operations the kopf handlers delegate to.

* ``wants_reconcile`` is the level trigger evaluated on every CR watch event: it compares
  the spec hash with what the status recorded, so no per-object bookkeeping (kopf's
  last-handled-configuration annotation) has to be written.
* ``reconcile`` makes the children of the current spec exist (ConfigMap + Job named
  ``<name>-<hash8>``) and removes Jobs of superseded specs. It is idempotent: the Job
  name is derived from the spec hash and 409 AlreadyExists counts as success, so an
  operator restart (or two overlapping passes) never yields a second Job.
* ``observe`` reads the current Job (and, when useful, its pods) and writes the derived
  status, returning the transitions to announce as Events. For a CR whose status was
  never written it records the initial status too (see ``defer_initial_status``).

Both take a ``kube`` object with the methods of :class:`modeldeploy_operator.kube.Kube`,
so unit tests pass an in-memory double.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any, Callable, Mapping

from . import jobs, status as st
from .config import OperatorConfig
from .constants import ANNOTATION_DEPLOYMENT, LABEL_SPEC_HASH, TERMINAL_PHASES
from .spec import HASH_LEN, child_name, spec_hash


class OrphanConflict(RuntimeError):
    """A child with our name belongs to an earlier CR of the same name (GC pending)."""


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


class KeyedLocks:
    """One lock per CR, so a reconcile and an observation of the same CR never interleave
    their read-compute-patch cycles (different CRs proceed in parallel)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def __call__(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def discard(self, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, name), None)


def owned_by(child: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in (child.get("metadata") or {}).get("ownerReferences") or [])


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
    if not prev.get("specHash") and job_owner(job_name) == meta.get("uid"):
        return False
    return True


def reconcile(kube: Any, body: Mapping[str, Any], config: OperatorConfig, *, now: dt.datetime | None = None,
              cleanup_stale: bool = True, lookup_first: bool = True, defer_initial_status: bool = False) -> Outcome:
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
        job = kube.get_job(ns, job_name) if lookup_first else None
        if job is None:
            kube.create_configmap(ns, jobs.build_configmap(body, h))
            job, out.job_created = kube.create_job(ns, jobs.build_job(body, h, config))
            if out.job_created:
                out.events.append(st.Transition("Normal", "JobCreated", f"Created Job {job_name} for spec {h[:HASH_LEN]}"))
        if not owned_by(job, uid):
            kube.delete_job(ns, job_name)
            raise OrphanConflict(f"Job {ns}/{job_name} belongs to an earlier {name!r}; deleted it, will retry")
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
                out.events.append(st.Transition(
                    "Normal", "StaleJobDeleted",
                    f"Deleted Job {ometa['name']} of superseded spec {(ometa.get('labels') or {}).get(LABEL_SPEC_HASH, '?')}"))
    generation = int(meta.get("generation") or 1)
    if defer_initial_status and not prev.get("specHash"):
        pass  # observe() of the Job's first event writes the initial status
    elif prev.get("specHash") != h or prev.get("jobName") != job_name:
        out.status_patch = st.diff(prev, st.initial_status(cr=body, hash_=h, job_name=job_name, now=now))
        if prev.get("specHash") and prev.get("specHash") != h:
            out.events.append(st.Transition("Normal", "SpecChanged", f"Generation {generation}: new spec {h[:HASH_LEN]}"))
    elif prev.get("observedGeneration") != generation:
        # Same spec content under a newer generation (e.g. an edit reverted): nothing to run.
        out.status_patch = {"observedGeneration": generation}
    return out


def observe(kube: Any, namespace: str, name: str, config: OperatorConfig, *, job: Mapping[str, Any] | None = None,
            with_pods: bool = True, now: dt.datetime | None = None, cr: Mapping[str, Any] | None = None) -> Outcome:
    """Derive the status of CR `namespace/name` from its current Job; patch it if it changed.

    `job`, when given (from a Job watch event), saves a read; it is ignored unless it is
    the CR's current Job. Pods are listed when the Job finished (termination message)
    or when `with_pods` (the periodic resync: Unschedulable detection). `cr`, when given
    (the operator's watch cache, kept current with our own patch responses), saves a read.
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
    pods: list[dict[str, Any]] | None = None
    if with_pods or st.job_outcome(job) is not None:
        pods = kube.list_job_pods(namespace, job_name)
    if base is not None:
        seen = dict(cr)
        seen["status"] = {k: v for k, v in base.items() if v is not None}
        new = dict(base)
        new.update(st.derive_status(cr=seen, job=job, pods=pods, now=now, unschedulable_after_s=config.unschedulable_after_s))
    else:
        new = st.derive_status(cr=cr, job=job, pods=pods, now=now, unschedulable_after_s=config.unschedulable_after_s)
    patch = st.diff(prev, new)
    if patch:
        out.cr_after = kube.patch_deployment_status(namespace, name, patch)
        out.status_patch = patch
        merged = dict(prev)
        merged.update(new)
        out.events = st.transitions(prev, merged)
    return out
