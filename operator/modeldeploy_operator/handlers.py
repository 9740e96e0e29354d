"""kopf wiring: short handlers that delegate to :mod:`reconcile` and publish the results.

Event sources:
* ModelDeployment create/update(spec)/resume → ``reconcile`` (Job of the current spec).
* ModelDeployment watch events (incl. the initial list at start-up) → metrics snapshots
  and the set of unfinished deployments.
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
from typing import Any, Mapping

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


@dataclasses.dataclass
class State:
    """Everything shared by the handlers of one operator process (kopf's `memo`)."""

    config: OperatorConfig
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    kube: Any = None
    locks: rec.KeyedLocks = dataclasses.field(default_factory=rec.KeyedLocks)
    phases: dict[tuple[str, str], str | None] = dataclasses.field(default_factory=dict)
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    last_beat: float = dataclasses.field(default_factory=time.monotonic)
    resync_task: asyncio.Task | None = None
    events: Any = None  # EventPoster, created at start-up

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


def publish(state: State, ref: Mapping[str, Any], outcome: rec.Outcome, logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Events + metrics + one log line per transition (names and reasons only, no secrets)."""
    for ev in outcome.events:
        if state.events is not None:
            state.events.post(ref, ev.type, ev.reason, ev.message)
        (logger.warning if ev.type == "Warning" else logger.info)(f"{ev.reason}: {ev.message}")
    if outcome.job_created:
        state.metrics.jobs_created.inc()
    if outcome.stale_deleted:
        state.metrics.stale_jobs_deleted.inc(len(outcome.stale_deleted))
    if outcome.status_patch:
        state.metrics.status_updates.inc()


def do_reconcile(state: State, body: Mapping[str, Any], logger: Any, cleanup_stale: bool = True) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    try:
        with state.locks(ns, name):
            outcome = rec.reconcile(state.kube, body, state.config, cleanup_stale=cleanup_stale)
            if outcome.status_patch:
                state.kube.patch_deployment_status(ns, name, outcome.status_patch)
    except rec.OrphanConflict as e:
        state.metrics.reconciles.labels(result="error").inc()
        raise kopf.TemporaryError(str(e), delay=2) from None
    except Exception:
        state.metrics.reconciles.labels(result="error").inc()
        raise
    state.metrics.reconciles.labels(result="success").inc()
    publish(state, object_ref(ns, name, meta.get("uid")), outcome, logger)


def do_observe(state: State, namespace: str, name: str, *, job: Mapping[str, Any] | None = None,
               with_pods: bool, logger: Any, may_reconcile: bool = False) -> None:
    with state.locks(namespace, name):
        outcome = rec.observe(state.kube, namespace, name, state.config, job=job, with_pods=with_pods)
    if outcome.needs_reconcile and may_reconcile:
        cr = state.kube.get_deployment(namespace, name)
        if cr is not None and not cr["metadata"].get("deletionTimestamp"):
            do_reconcile(state, cr, logger)
        return
    publish(state, object_ref(namespace, name, outcome.uid), outcome, logger)


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


async def resync_loop(state: State, logger: Any) -> None:
    """Every interval, re-observe (with pods) each unfinished deployment."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(max(1, state.config.max_workers // 2))

    async def one(ns: str, name: str) -> None:
        async with sem:
            try:
                await loop.run_in_executor(None, lambda: do_observe(
                    state, ns, name, with_pods=True, logger=logger, may_reconcile=True))
            except Exception as e:  # one broken CR must not stop the loop; next tick retries
                logger.warning(f"resync of {ns}/{name} failed: {type(e).__name__}: {e}")

    while True:
        state.last_beat = time.monotonic()
        keys = [k for k, phase in list(state.phases.items()) if phase not in TERMINAL_PHASES]
        if keys:
            await asyncio.gather(*(one(ns, name) for ns, name in keys))
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
    async def startup(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> None:
        configure_settings(settings, state.config)
        if state.kube is None:
            from .kube import Kube

            state.kube = await asyncio.to_thread(Kube, None, state.config.max_workers * 2)
        if state.events is None:
            from .events import EventPoster

            state.events = EventPoster(state.kube, instance=socket.gethostname())
        state.resync_task = asyncio.create_task(resync_loop(state, logger))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if state.resync_task is not None:
            state.resync_task.cancel()
        if state.events is not None:
            await asyncio.to_thread(state.events.close)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry, backoff=5)
    def reconcile_deployment(body: kopf.Body, reason: Any, logger: Any, **_: Any) -> None:
        do_reconcile(state, plain(body), logger, cleanup_stale=str(reason) != "create")

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def track_deployment(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if type == "DELETED":
            state.metrics.status.remove(*key)
            state.phases.pop(key, None)
            state.locks.discard(*key)
            return
        state.metrics.status.update(plain(body))
        state.phases[key] = (body.get("status") or {}).get("phase")

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER}, registry=registry)
    def follow_job(type: str | None, body: kopf.Body, logger: Any, **_: Any) -> None:
        if type == "DELETED":
            return
        meta = body.get("metadata") or {}
        name = (meta.get("annotations") or {}).get(ANNOTATION_DEPLOYMENT)
        if not name:
            return
        do_observe(state, meta["namespace"], name, job=plain(body), with_pods=False, logger=logger)

    return registry
