"""kopf wiring: short handlers that delegate to :mod:`reconcile` and publish the results.

Event sources:
* ModelDeployment watch events (incl. the initial list at start-up) → metrics snapshots,
  the set of unfinished deployments, and — level-based, when ``wants_reconcile`` says the
  status does not record the current spec yet — ``reconcile`` on the Reconciler pool.
  No kopf change handlers (create/update/resume): those make kopf write its
  last-handled-configuration annotation on every CR, one more API write per apply;
  the spec hash in the status and the hash-named Job carry the same information.
* Job watch events (server-side label selector: only our Jobs) → ``observe``.
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
from typing import Any

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
from .metrics import Metrics

log = logging.getLogger("modeldeploy_operator")


def _rv(body: Mapping[str, Any] | None) -> int:
    raw = ((body or {}).get("metadata") or {}).get("resourceVersion") or ""
    return int(raw) if str(raw).isdigit() else -1


class CRCache:
    """Latest known body of each ModelDeployment: from the watch and from our own status
    patches (whose responses are newer than the watch event that may still be in flight).
    Lets Job-driven observations skip a GET of the CR."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, body: Mapping[str, Any] | None) -> None:
        if not body:
            return
        meta = body.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        with self._lock:
            cur = self._items.get(key)
            same_object = cur is not None and (cur.get("metadata") or {}).get("uid") == meta.get("uid")
            if not same_object or _rv(body) >= _rv(cur):
                self._items[key] = dict(body)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get((namespace, name))

    def drop(self, namespace: str, name: str) -> None:
        with self._lock:
            self._items.pop((namespace, name), None)


@dataclasses.dataclass
class State:
    """Everything shared by the handlers of one operator process."""

    config: OperatorConfig
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    kube: Any = None
    locks: rec.KeyedLocks = dataclasses.field(default_factory=rec.KeyedLocks)
    cache: CRCache = dataclasses.field(default_factory=CRCache)
    phases: dict[tuple[str, str], str | None] = dataclasses.field(default_factory=dict)
    last_observed: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    job_signatures: dict[tuple[str, str], tuple] = dataclasses.field(default_factory=dict)
    # (namespace, Job name) → uid of the Job's controller: Jobs known to exist (watch, own creates)
    job_owners: dict[tuple[str, str], str | None] = dataclasses.field(default_factory=dict)
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    last_beat: float = dataclasses.field(default_factory=time.monotonic)
    resync_task: asyncio.Task | None = None
    events: Any = None  # EventPoster, created at start-up
    observer: Any = None  # Observer, created at start-up
    reconciler: Any = None  # Reconciler, created at start-up
    secrets: Any = None  # scrub.SecretCache over kube.get_secret, created at start-up

    def healthy(self) -> bool:
        """Liveness: kopf is up and the resync loop ticked recently."""
        stale_after = 3 * self.config.resync_interval_s + 30
        return self.ready.is_set() and (time.monotonic() - self.last_beat) < stale_after


def plain(value: Any) -> Any:
    """kopf's body views → plain dicts/lists (the pure functions deep-copy and compare)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


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
    state.cache.put(outcome.cr_after)


def do_reconcile(state: State, body: Mapping[str, Any]) -> None:
    """One reconcile pass. A CR never run before (no specHash in its status) skips the
    Job read (409-safe create), the stale-Job listing (generation 1 has none) and the
    status write (the Job's first event writes it): 2 writes on the apply→Job path."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    recorded = bool((body.get("status") or {}).get("specHash"))
    first_generation = int(meta.get("generation") or 1) == 1
    try:
        with state.locks(ns, name):
            outcome = rec.reconcile(
                state.kube,
                body,
                state.config,
                cleanup_stale=recorded or not first_generation,
                lookup_first=recorded,
                defer_initial_status=True,
            )
            if outcome.job_name:
                state.job_owners[(ns, outcome.job_name)] = meta.get("uid")
            if outcome.status_patch:
                outcome.cr_after = state.kube.patch_deployment_status(ns, name, outcome.status_patch)
    except Exception:
        state.metrics.reconciles.labels(result="error").inc()
        raise
    state.metrics.reconciles.labels(result="success").inc()
    state.last_observed[(ns, name)] = time.monotonic()
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
    state.last_observed[(namespace, name)] = time.monotonic()
    with state.locks(namespace, name):
        cached = None if may_reconcile else state.cache.get(namespace, name)
        outcome = rec.observe(
            state.kube, namespace, name, state.config, job=job, with_pods=with_pods, cr=cached, secrets=state.secrets
        )
    if outcome.needs_reconcile and may_reconcile:
        cr = state.kube.get_deployment(namespace, name)
        if cr is not None and not cr["metadata"].get("deletionTimestamp"):
            do_reconcile(state, cr)
        return
    publish(state, object_ref(namespace, name, outcome.uid), outcome)


class Observer:
    """Runs observations on its own small pool, coalescing bursts per CR.

    Job events come in bursts (created, active, ready, succeeded, complete); while one
    observation of a CR is queued, later requests only widen it (latest Job body, pods if
    any asked). A separate pool keeps observations from starving the create handlers
    that run on kopf's executor.
    """

    def __init__(self, state: State, workers: int) -> None:
        import concurrent.futures

        self.state = state
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="observe")
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}

    def submit(
        self,
        namespace: str,
        name: str,
        *,
        job: Mapping[str, Any] | None = None,
        with_pods: bool = False,
        may_reconcile: bool = False,
    ) -> None:
        key = (namespace, name)
        with self._lock:
            req = self._pending.get(key)
            if req is not None:
                req["job"] = job or req["job"]
                req["with_pods"] |= with_pods
                req["may_reconcile"] |= may_reconcile
                return
            self._pending[key] = {"job": job, "with_pods": with_pods, "may_reconcile": may_reconcile}
        self.pool.submit(self._run, key)

    def _run(self, key: tuple[str, str]) -> None:
        with self._lock:
            req = self._pending.pop(key)
        try:
            do_observe(self.state, *key, **req)
        except Exception as e:  # noqa: BLE001 - a worker thread must survive; the next Job event or resync tick retries
            self.state.metrics.reconciles.labels(result="error").inc()
            log.warning("observing %s/%s failed: %s: %s", key[0], key[1], type(e).__name__, e)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Reconciler:
    """Runs reconciles triggered by CR watch events on its own pool, coalescing per CR.

    A queued request carries only the key: the pass reads the newest body from the CR
    cache and re-checks ``wants_reconcile``, so a burst of events is one pass and a CR
    deleted meanwhile is skipped. Failures are retried after a delay (2 s for a Job left
    by an earlier CR of the same name, else 5 s), like kopf's handler backoff did.
    """

    def __init__(self, state: State, workers: int) -> None:
        import concurrent.futures

        self.state = state
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], float] = {}  # key → when it was queued
        self._closed = False

    def wanted(self, body: Mapping[str, Any]) -> bool:
        ns = (body.get("metadata") or {}).get("namespace")
        return rec.wants_reconcile(body, lambda job_name: self.state.job_owners.get((ns, job_name)))

    def submit(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            if key in self._pending or self._closed:
                return
            self._pending[key] = time.monotonic()
        self.pool.submit(self._run, key)

    def _run(self, key: tuple[str, str]) -> None:
        with self._lock:
            queued = self._pending.pop(key)
        self.state.metrics.reconcile_queue.observe(time.monotonic() - queued)
        body = self.state.cache.get(*key)
        if body is None or not self.wanted(body):
            return
        try:
            do_reconcile(self.state, body)
        except rec.OrphanConflict as e:
            log.info("%s/%s: %s", key[0], key[1], e)
            self._retry(key, 2.0)
        except Exception as e:  # noqa: BLE001 - a worker thread must survive; retried below
            log.warning("reconciling %s/%s failed, retrying in 5 s: %s: %s", key[0], key[1], type(e).__name__, e)
            self._retry(key, 5.0)

    def _retry(self, key: tuple[str, str], delay: float) -> None:
        timer = threading.Timer(delay, self.submit, args=key)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)


def job_signature(job: Mapping[str, Any]) -> tuple:
    """What in a Job can change our view of it (resourceVersion bumps alone do not)."""
    st = job.get("status") or {}
    conds = tuple(sorted((c.get("type"), c.get("status")) for c in st.get("conditions") or []))
    return (st.get("active"), st.get("ready"), st.get("succeeded"), st.get("failed"), st.get("terminating"), conds)


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


async def resync_loop(state: State) -> None:
    """Every interval, queue an observation (with pods) of each unfinished deployment that
    no event-driven pass looked at during the last interval."""
    while True:
        state.last_beat = time.monotonic()
        now = time.monotonic()
        for key, phase in list(state.phases.items()):
            if phase in TERMINAL_PHASES:
                continue
            if now - state.last_observed.get(key, 0.0) >= state.config.resync_interval_s:
                state.observer.submit(*key, with_pods=True, may_reconcile=True)
        await asyncio.sleep(state.config.resync_interval_s)


def build_registry(state: State) -> kopf.OperatorRegistry:
    """A fresh registry with all handlers bound to `state` (no import-time globals)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        # A private registry has none of kopf's default login handlers: in-cluster token
        # first, then KUBECONFIG (the same order as the kubernetes client).
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

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
            state.observer = Observer(state, workers=max(2, state.config.max_workers // 4))
        if state.reconciler is None:
            state.reconciler = Reconciler(state, workers=state.config.max_workers)
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

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def track_deployment(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if type == "DELETED":
            state.metrics.status.remove(*key)
            state.phases.pop(key, None)
            state.last_observed.pop(key, None)
            state.cache.drop(*key)
            state.locks.discard(*key)
            return
        snapshot = plain(body)
        state.cache.put(snapshot)
        state.metrics.status.update(snapshot)
        phase = (snapshot.get("status") or {}).get("phase")
        state.phases[key] = phase
        if state.reconciler.wanted(snapshot):
            state.reconciler.submit(*key)
        elif type is None and phase not in TERMINAL_PHASES:
            # Initial listing (start-up): check that the Job of an unfinished deployment
            # still exists (it may have been deleted while the operator was down).
            state.observer.submit(*key, may_reconcile=True)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER}, registry=registry)
    async def follow_job(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        jkey = (meta.get("namespace"), meta.get("name"))
        if type == "DELETED":
            state.job_signatures.pop(jkey, None)
            state.job_owners.pop(jkey, None)
            return
        state.job_owners[jkey] = next(
            (r.get("uid") for r in meta.get("ownerReferences") or [] if r.get("controller")), None
        )
        name = (meta.get("annotations") or {}).get(ANNOTATION_DEPLOYMENT)
        job = plain(body)
        sig = job_signature(job)
        if not name or state.job_signatures.get(jkey) == sig:
            return
        state.job_signatures[jkey] = sig
        state.observer.submit(meta["namespace"], name, job=job)

    return registry
