"""kopf wiring: short handlers that delegate to :mod:`reconcile` and publish the results.

Event sources:
* ModelDeployment watch events (incl. the initial list at start-up) → metrics snapshots,
  the set of unfinished deployments, and — level-based, when ``wants_reconcile`` says the
  status does not record the current spec yet — ``reconcile`` on the reconcile queue.
  No kopf change handlers (create/update/resume): those make kopf write its
  last-handled-configuration annotation on every CR, one more API write per apply;
  the spec hash in the status and the hash-named Job carry the same information.
* Job watch events (server-side label selector: only our Jobs) → ``observe`` on the
  observe queue. Both queues are :class:`workqueue.WorkQueue` (coalescing per CR, one pass
  in flight per CR); what the operator remembers per CR and per Job is one record each
  (:class:`CRRecord`, :class:`JobRecord` in :class:`Records`).
* One operator-wide resync loop (every ``resync_interval_s``) → ``observe`` with pods for
  every unfinished deployment: the fallback for missed events and the clock for the
  Unschedulable threshold. A single loop instead of ``kopf.timer`` because kopf timers put
  a finalizer on every object (one more write per CR, and CR deletion would then depend
  on the operator running).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import kopf

from . import reconcile as rec
from .config import OperatorConfig
from .constants import (
    ANNOTATION_DEPLOYMENT,
    API_VERSION,
    GROUP,
    KIND,
    LABEL_MANAGED_BY,
    MANAGER,
    PLURAL,
    TERMINAL_PHASES,
    VERSION,
)
from .kube import KubeClient
from .metrics import Metrics
from .workqueue import WorkQueue

if TYPE_CHECKING:
    from .events import EventPoster
    from .scrub import SecretCache

log = logging.getLogger("modeldeploy_operator")

Key = tuple[str, str]  # (namespace, name) of a ModelDeployment, or of a Job


def _rv(body: Mapping[str, Any] | None) -> int:
    raw = ((body or {}).get("metadata") or {}).get("resourceVersion") or ""
    return int(raw) if str(raw).isdigit() else -1


@dataclasses.dataclass(slots=True)
class CRRecord:
    """What the operator knows about one ModelDeployment."""

    # A reconcile and an observation of the same CR never interleave their
    # read-compute-patch cycles (different CRs proceed in parallel).
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # Latest known body: from the watch and from our own status patches (whose responses
    # are newer than the watch event that may still be in flight). Lets Job-driven
    # observations skip a GET of the CR.
    body: dict[str, Any] | None = None
    on_watch: bool = False  # seen on the CR watch (and not deleted): the resync loop follows it
    phase: str | None = None  # status.phase as last seen on the watch
    # time.monotonic() of the last pass that looked at it; starts when the operator first
    # hears of the CR (its watch event queues a pass), so the resync does not add a second
    # pass for CRs still waiting in the reconcile queue (at 2000 CRs applied at once that
    # duplicated GET CR + GET Job + reconcile for the whole backlog every interval).
    last_observed: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass(slots=True)
class JobRecord:
    """One of our Jobs known to exist (Job watch, our own creates). Kept per Job, not per
    CR: the Job watch may list a Job before the CR watch lists its CR."""

    owner: str | None  # uid of the Job's controller
    signature: tuple | None = None  # job_signature() of the last event that was observed


class Records:
    """The operator's memory of CRs and Jobs: one record per object, one lock for the tables.

    Records are created on first use (a watch event, or a pass for a CR the watch has not
    listed yet) and dropped on the object's DELETED event.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crs: dict[Key, CRRecord] = {}
        self._jobs: dict[Key, JobRecord] = {}

    def cr(self, namespace: str, name: str) -> CRRecord:
        with self._lock:
            return self._crs.setdefault((namespace, name), CRRecord())

    def put(self, body: Mapping[str, Any] | None) -> None:
        """Remember `body` unless the record holds a newer version of the same object."""
        if not body:
            return
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        with self._lock:
            record = self._crs.setdefault(key, CRRecord())
            cur = record.body
            same_object = cur is not None and (cur.get("metadata") or {}).get("uid") == meta.get("uid")
            if not same_object or _rv(body) >= _rv(cur):
                # without managedFields (grows with every status patch; nothing here reads it)
                record.body = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}

    def body(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._crs.get((namespace, name))
            return None if record is None else record.body

    def drop(self, namespace: str, name: str) -> None:
        with self._lock:
            self._crs.pop((namespace, name), None)

    def watched(self) -> list[tuple[Key, CRRecord]]:
        """CRs on the watch, for the resync loop (a snapshot: safe to iterate while passes run)."""
        with self._lock:
            return [(k, r) for k, r in self._crs.items() if r.on_watch]

    def job(self, namespace: str, name: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get((namespace, name))

    def job_owner(self, namespace: str, name: str) -> str | None:
        job = self.job(namespace, name)
        return None if job is None else job.owner

    def put_job(self, namespace: str, name: str, owner: str | None) -> JobRecord:
        with self._lock:
            job = self._jobs.get((namespace, name))
            if job is None:
                job = self._jobs[(namespace, name)] = JobRecord(owner)
            else:
                job.owner = owner
            return job

    def drop_job(self, namespace: str, name: str) -> None:
        with self._lock:
            self._jobs.pop((namespace, name), None)


@dataclasses.dataclass
class ObserveRequest:
    """What an observation of one CR was asked for; requests for a waiting CR merge."""

    job: Mapping[str, Any] | None = None  # the Job body of the latest Job event (saves a read)
    with_pods: bool = False  # list the Job's pods (the resync: Unschedulable detection)
    may_reconcile: bool = False  # recreate a missing Job (resync, start-up listing)

    def merge(self, new: ObserveRequest) -> ObserveRequest:
        return ObserveRequest(
            job=new.job or self.job,
            with_pods=self.with_pods or new.with_pods,
            may_reconcile=self.may_reconcile or new.may_reconcile,
        )


@dataclasses.dataclass
class State:
    """Everything shared by the handlers of one operator process."""

    config: OperatorConfig
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    kube: KubeClient = None  # type: ignore[assignment]  # set before any handler runs (start-up or tests)
    records: Records = dataclasses.field(default_factory=Records)
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    last_beat: float = dataclasses.field(default_factory=time.monotonic)
    resync_task: asyncio.Task | None = None
    events: EventPoster | None = None  # created at start-up
    observer: WorkQueue[Key, ObserveRequest] | None = None  # observe_queue(), created at start-up
    reconciler: WorkQueue[Key, None] | None = None  # reconcile_queue(), created at start-up
    secrets: SecretCache | None = None  # over kube.get_secret, created at start-up

    def healthy(self) -> bool:
        """Liveness: kopf is up and the resync loop ticked recently."""
        stale_after = 3 * self.config.resync_interval_s + 30
        return self.ready.is_set() and (time.monotonic() - self.last_beat) < stale_after


def object_ref(namespace: str, name: str, uid: str | None) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"namespace": namespace, "name": name, "uid": uid}}


def publish(state: State, ref: Mapping[str, Any], outcome: rec.Outcome) -> None:
    """Events + metrics + one log line per transition (names and reasons only, no secrets)."""
    meta = ref["metadata"]
    for ev in outcome.events:
        if state.events is not None:
            state.events.post(ref, ev.type, ev.reason, ev.message)
        log.log(
            logging.WARNING if ev.type == "Warning" else logging.INFO,
            "%s/%s %s: %s",
            meta["namespace"],
            meta["name"],
            ev.reason,
            ev.message,
        )
    if outcome.job_created:
        state.metrics.jobs_created.inc()
    if outcome.stale_deleted:
        state.metrics.stale_jobs_deleted.inc(len(outcome.stale_deleted))
    if outcome.status_patch:
        state.metrics.status_updates.inc()
    state.records.put(outcome.cr_after)


def do_reconcile(state: State, body: Mapping[str, Any]) -> None:
    """One reconcile pass. A CR never run before (no specHash in its status) skips the
    Job read (409-safe create), the stale-Job listing (generation 1 has none) and the
    status write (the Job's first event writes it): 2 writes on the apply→Job path."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    recorded = bool((body.get("status") or {}).get("specHash"))
    first_generation = int(meta.get("generation") or 1) == 1
    record = state.records.cr(ns, name)
    try:
        with record.lock:
            outcome = rec.reconcile(
                state.kube,
                body,
                state.config,
                cleanup_stale=recorded or not first_generation,
                lookup_first=recorded,
                defer_initial_status=True,
            )
            if outcome.job_name:
                state.records.put_job(ns, outcome.job_name, meta.get("uid"))
            if outcome.status_patch:
                outcome.cr_after = state.kube.patch_deployment_status(ns, name, outcome.status_patch)
    except Exception:
        state.metrics.reconciles.labels(result="error").inc()
        raise
    state.metrics.reconciles.labels(result="success").inc()
    record.last_observed = time.monotonic()
    publish(state, object_ref(ns, name, meta.get("uid")), outcome)


def do_observe(
    state: State,
    namespace: str,
    name: str,
    *,
    job: Mapping[str, Any] | None = None,
    with_pods: bool,
    may_reconcile: bool = False,
) -> None:
    """One observation. Event-driven passes use the cached CR; the resync reads it fresh."""
    record = state.records.cr(namespace, name)
    record.last_observed = time.monotonic()
    with record.lock:
        cached = None if may_reconcile else record.body
        outcome = rec.observe(
            state.kube, namespace, name, state.config, job=job, with_pods=with_pods, cr=cached, secrets=state.secrets
        )
    if outcome.needs_reconcile and may_reconcile:
        cr = state.kube.get_deployment(namespace, name)
        if cr is not None and not cr["metadata"].get("deletionTimestamp"):
            do_reconcile(state, cr)
        return
    publish(state, object_ref(namespace, name, outcome.uid), outcome)


def wants_reconcile(state: State, body: Mapping[str, Any]) -> bool:
    """``reconcile.wants_reconcile`` with the Jobs this operator knows to exist."""
    ns = (body.get("metadata") or {}).get("namespace") or ""
    return rec.wants_reconcile(body, lambda job_name: state.records.job_owner(ns, job_name))


def observe_queue(state: State, workers: int) -> WorkQueue[Key, ObserveRequest]:
    """Observations on their own small pool, coalescing bursts per CR.

    Job events come in bursts (created, active, ready, succeeded, complete); while one
    observation of a CR waits, later requests only widen it (latest Job body, pods if
    any asked). A separate pool keeps observations from starving the reconciles. A failed
    observation is not retried here: the next Job event or resync tick observes again.
    """

    def process(key: Key, req: ObserveRequest) -> None:
        do_observe(state, *key, job=req.job, with_pods=req.with_pods, may_reconcile=req.may_reconcile)

    def on_error(key: Key, e: Exception) -> None:
        state.metrics.reconciles.labels(result="error").inc()
        log.warning("observing %s/%s failed: %s: %s", key[0], key[1], type(e).__name__, e)

    return WorkQueue(process, workers=workers, name="observe", merge=ObserveRequest.merge, on_error=on_error)


def reconcile_queue(state: State, workers: int) -> WorkQueue[Key, None]:
    """Reconciles triggered by CR watch events, coalescing per CR.

    A queued key carries no body: the pass reads the newest one from the CR record and
    re-checks ``wants_reconcile``, so a burst of events is one pass and a CR deleted
    meanwhile is skipped. Failures are retried after a delay (2 s for a Job left by an
    earlier CR of the same name, else 5 s), like kopf's handler backoff did.
    """

    def process(key: Key, _: None) -> None:
        body = state.records.body(*key)
        if body is None or not wants_reconcile(state, body):
            return
        do_reconcile(state, body)

    def on_error(key: Key, e: Exception) -> float:
        if isinstance(e, rec.OrphanConflict):
            log.info("%s/%s: %s", key[0], key[1], e)
            return 2.0
        log.warning("reconciling %s/%s failed, retrying in 5 s: %s: %s", key[0], key[1], type(e).__name__, e)
        return 5.0

    return WorkQueue(
        process, workers=workers, name="reconcile", on_error=on_error, on_start=state.metrics.reconcile_queue.observe
    )


def job_signature(job: Mapping[str, Any]) -> tuple:
    """What in a Job can change our view of it (resourceVersion bumps alone do not)."""
    st = job.get("status") or {}
    conds = tuple(sorted((c.get("type"), c.get("status")) for c in st.get("conditions") or []))
    return (st.get("active"), st.get("ready"), st.get("succeeded"), st.get("failed"), st.get("terminating"), conds)


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no "essence" of objects. kopf builds one on every watch event (a deep copy of
    the body, diffed against the last stored one) for change handlers (create/update);
    this operator has none (level-based ``on.event``, docs/operator.md), and that copy was
    ~17 % of the event loop's time at 500 CRs. With None, kopf's diff is empty and skipped."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def configure_settings(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """kopf tuning: see docs/operator.md#kopf-settings for the reasons."""
    settings.posting.reporting_component = MANAGER
    settings.posting.event_name_prefix = "modeldeploy-"
    settings.posting.enabled = False  # Events are posted by events.EventPoster, not kopf
    settings.scanning.disabled = True  # no CRD/namespace list-watch: minimal RBAC, static set
    settings.watching.label_selectors["batch", "jobs"] = f"{LABEL_MANAGED_BY}={MANAGER}"
    settings.execution.max_workers = config.max_workers
    settings.execution.default_backoff = 5
    settings.persistence.finalizer = f"{GROUP}/finalizer"  # unused: no handler needs one
    settings.persistence.diffbase_storage = NoDiffBase()  # no change handlers: no essence per event


async def resync_loop(state: State) -> None:
    """Every interval, queue an observation (with pods) of each unfinished deployment that
    no event-driven pass looked at during the last interval."""
    assert state.observer is not None
    while True:
        state.last_beat = time.monotonic()
        now = time.monotonic()
        for key, record in state.records.watched():
            if record.phase in TERMINAL_PHASES:
                continue
            if now - record.last_observed >= state.config.resync_interval_s:
                state.observer.add(key, ObserveRequest(with_pods=True, may_reconcile=True))
        await asyncio.sleep(state.config.resync_interval_s)


def build_registry(state: State) -> kopf.OperatorRegistry:
    """A fresh registry with all handlers bound to `state` (no import-time globals)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        # A private registry has none of kopf's default login handlers. Resolve like Kube
        # (kube.py) and client-go: in-cluster from KUBERNETES_SERVICE_HOST/PORT + the
        # ServiceAccount token, else KUBECONFIG. (kopf.login_with_service_account dials
        # https://kubernetes.default.svc, which needs cluster DNS: a hostNetwork pod without
        # ClusterFirstWithHostNet could not resolve it while its Kube client worked.)
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, state.config)
        if state.kube is None:
            from .kube import Kube

            state.kube = await asyncio.to_thread(Kube, None, state.config.max_workers * 2)
        if state.secrets is None:
            from .scrub import SecretCache

            state.secrets = SecretCache(state.kube.get_secret)
        if state.events is None:
            from .events import EventPoster

            state.events = EventPoster(state.kube, instance=socket.gethostname())
        if state.observer is None:
            state.observer = observe_queue(state, workers=max(2, state.config.max_workers // 4))
        if state.reconciler is None:
            state.reconciler = reconcile_queue(state, workers=state.config.max_workers)
        state.resync_task = asyncio.create_task(resync_loop(state))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if state.resync_task is not None:
            state.resync_task.cancel()
        if state.observer is not None:
            state.observer.close()
        if state.reconciler is not None:
            state.reconciler.close()
        if state.events is not None:
            await asyncio.to_thread(state.events.close)

    # Both watch handlers take the object from kopf's raw `event` (the JSON kopf decoded
    # for this event, a fresh dict kopf only reads) instead of copying kopf's Body view
    # into plain dicts: that copy was ~9 % of the event loop's time at 500 CRs.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def track_deployment(type: str | None, event: Mapping[str, Any], **_: Any) -> None:
        assert state.observer is not None and state.reconciler is not None
        snapshot: dict[str, Any] = event["object"]
        meta = snapshot.get("metadata") or {}
        key: Key = (meta.get("namespace") or "", meta.get("name") or "")
        if type == "DELETED":
            state.metrics.status.remove(*key)
            state.records.drop(*key)
            return
        state.records.put(snapshot)
        state.metrics.status.update(snapshot)
        phase = (snapshot.get("status") or {}).get("phase")
        record = state.records.cr(*key)
        record.phase, record.on_watch = phase, True
        if wants_reconcile(state, snapshot):
            state.reconciler.add(key, None)
        elif type is None and phase not in TERMINAL_PHASES:
            # Initial listing (start-up): check that the Job of an unfinished deployment
            # still exists (it may have been deleted while the operator was down).
            state.observer.add(key, ObserveRequest(may_reconcile=True))

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER}, registry=registry)
    async def follow_job(type: str | None, event: Mapping[str, Any], **_: Any) -> None:
        assert state.observer is not None
        job: dict[str, Any] = event["object"]
        meta = job.get("metadata") or {}
        ns, job_name = meta.get("namespace") or "", meta.get("name") or ""
        if type == "DELETED":
            state.records.drop_job(ns, job_name)
            return
        record = state.records.put_job(
            ns, job_name, next((r.get("uid") for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        )
        name = (meta.get("annotations") or {}).get(ANNOTATION_DEPLOYMENT)
        sig = job_signature(job)
        if not name or record.signature == sig:
            return
        record.signature = sig
        state.observer.add((ns, name), ObserveRequest(job=job))

    return registry
