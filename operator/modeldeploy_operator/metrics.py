"""Prometheus metrics, derived from ModelDeployment status at scrape time.

The operator keeps one small snapshot per CR (fed by the CR watch, whose initial list
replays every existing CR at start-up), and a custom collector turns the snapshots into
gauges on each scrape. So a restart loses nothing, and a deleted CR's series disappear
the moment its snapshot is dropped — there is no per-label bookkeeping to get wrong.
Labels are bounded: namespace, name, project, backend, precision, plus small enums
(phase, quantile, stage, metric).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .constants import PHASES
from .status import parse_time


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a CR the metrics need (no spec secrets, nothing large)."""
    meta = body.get("metadata") or {}
    st = body.get("status") or {}
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "project": (body.get("spec") or {}).get("project", ""),
        "phase": st.get("phase"),
        "evaluation": st.get("evaluation") or [],
        "verification": st.get("verification") or {},
        "durations": st.get("durations") or {},
        "completedAt": st.get("completedAt"),
    }


class StatusCollector(Collector):
    """Gauges computed from the current snapshots of every known ModelDeployment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snaps: dict[tuple[str, str], dict[str, Any]] = {}

    def update(self, body: Mapping[str, Any]) -> None:
        snap = snapshot(body)
        with self._lock:
            self._snaps[(snap["namespace"], snap["name"])] = snap

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._snaps.pop((namespace, name), None)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._snaps)

    def describe(self) -> list[Metric]:
        return []  # collected lazily; no registration-time collision checks needed

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snaps = list(self._snaps.values())
        base = ["namespace", "name", "project"]
        latency = GaugeMetricFamily(
            "modeldeploy_inference_latency_seconds",
            "End-to-end inference latency quantile per backend, from the last successful run.",
            labels=base + ["backend", "precision", "quantile"],
        )
        metric = GaugeMetricFamily(
            "modeldeploy_evaluation_metric",
            "Headline evaluation metric (e.g. accuracy, mAP) per backend.",
            labels=base + ["backend", "precision", "metric"],
        )
        vdiff = GaugeMetricFamily(
            "modeldeploy_verification_max_abs_diff",
            "Largest absolute output difference seen by cross-backend verification.",
            labels=base,
        )
        vpass = GaugeMetricFamily(
            "modeldeploy_verification_passed", "1 if cross-backend verification passed, 0 if it failed.", labels=base
        )
        stage = GaugeMetricFamily(
            "modeldeploy_stage_duration_seconds",
            "Duration of each runtime stage of the last run.",
            labels=base + ["stage"],
        )
        phase = GaugeMetricFamily(
            "modeldeploy_phase",
            "1 for the current phase of each ModelDeployment, 0 for the others.",
            labels=base + ["phase"],
        )
        last_ok = GaugeMetricFamily(
            "modeldeploy_last_success_timestamp_seconds", "Unix time the last successful run completed.", labels=base
        )
        for s in snaps:
            lv = [s["namespace"], s["name"], s["project"]]
            for p in PHASES:
                phase.add_metric(lv + [p], 1.0 if s["phase"] == p else 0.0)
            for e in s["evaluation"]:
                backend, precision = str(e.get("backend", "")), str(e.get("precision", ""))
                for q, key in (("0.5", "p50Ms"), ("0.99", "p99Ms")):
                    if isinstance(e.get(key), (int, float)):
                        latency.add_metric(lv + [backend, precision, q], float(e[key]) / 1000.0)
                if isinstance(e.get("value"), (int, float)):
                    metric.add_metric(lv + [backend, precision, str(e.get("metric", ""))], float(e["value"]))
            ver = s["verification"]
            if isinstance(ver.get("maxAbsDiff"), (int, float)):
                vdiff.add_metric(lv, float(ver["maxAbsDiff"]))
            if "passed" in ver:
                vpass.add_metric(lv, 1.0 if ver["passed"] else 0.0)
            for st_name, seconds in sorted(s["durations"].items()):
                if isinstance(seconds, (int, float)):
                    stage.add_metric(lv + [str(st_name)], float(seconds))
            if s["phase"] == "Succeeded":
                t = parse_time(s["completedAt"])
                if t is not None:
                    last_ok.add_metric(lv, t.timestamp())
        yield from (latency, metric, vdiff, vpass, stage, phase, last_ok)


class Metrics:
    """All operator metrics on one registry (not the global one: tests stay isolated)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.status = StatusCollector()
        self.registry.register(self.status)
        self.reconciles = Counter(
            "modeldeploy_reconciles", "Reconcile passes of ModelDeployments.", ["result"], registry=self.registry
        )
        self.jobs_created = Counter(
            "modeldeploy_jobs_created", "Runtime Jobs created by the operator.", registry=self.registry
        )
        self.stale_jobs_deleted = Counter(
            "modeldeploy_stale_jobs_deleted", "Jobs of superseded specs deleted.", registry=self.registry
        )
        self.status_updates = Counter(
            "modeldeploy_status_updates", "Status patches written from Job/Pod observations.", registry=self.registry
        )
        # controller-runtime's workqueue_queue_duration_seconds, for the reconcile pool: how
        # long a CR waited for a free reconcile thread (tells pool saturation from API latency).
        self.reconcile_queue = Histogram(
            "modeldeploy_reconcile_queue_seconds",
            "Time a ModelDeployment waited for a reconcile thread.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )


def serve(metrics: Metrics, host: str, port: int, healthy: Callable[[], bool]) -> Any:
    """Start one HTTP server (daemon thread) for `/metrics` and `/healthz`; returns it.

    `/healthz` answers 200 while `healthy()` is true (the kopf loop is alive and its
    watches are up), 503 otherwise — the Deployment's liveness probe points here.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, code, ctype = generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST
            elif path in ("/healthz", "/readyz"):
                ok = healthy()
                body, code, ctype = (b"ok\n" if ok else b"unhealthy\n"), (200 if ok else 503), "text/plain"
            else:
                body, code, ctype = b"not found\n", 404, "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes would flood the log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server
