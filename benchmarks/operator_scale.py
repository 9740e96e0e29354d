"""Operator scale benchmark: N ModelDeployments applied at once → N Jobs.

    .venv/bin/python benchmarks/operator_scale.py [--count 500] [--threads 16] [--no-succeeded]
        [--operator-args '--max-workers 32'] [--out benchmarks/results/operator_scale_last.md]

Starts a fresh real control plane (tests/cluster) + the test node agent (fake runtime
that exits immediately) + the operator as a subprocess under its production ClusterRole,
then creates N CRs from a pool of client threads (one pooled keep-alive connection per
thread, so the client does not pay a TLS handshake per create) and measures:
* apply→Job latency per CR, p50/p99 (the goal's measure): the API server's audit log
  (policy: `create` of modeldeployments and jobs in the benchmark namespace, Metadata
  level, ResponseComplete stage) gives, with microsecond resolution, the moment the
  CR create was accepted (stageTimestamp of its 201) and the moment the Job create was
  accepted; latency = Job accepted − CR accepted. Same clock, no watch delivery lag.
* all Jobs exist after: last Job accepted − first CR create received (audit), and the
  client's view (first create call → last Job ADDED on a watch) as a cross-check;
* the client-side apply→Job latency (create call returned → Job ADDED on a watch) and
  the creationTimestamp delta (whole seconds) as cross-checks;
* operator peak RSS (psutil, sampled every 100 ms);
* CPU seconds per component until all Jobs exist, and the load average before/after
  (the build machine is shared: read the numbers against the load);
* time until all N are Succeeded (informational; --no-succeeded skips it).
Goals (issue): all Jobs ≤ 60 s, p99 ≤ 5 s, RSS ≤ 300 MB, on the 2-core build machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.controlplane import ControlPlane  # noqa: E402
from tests.cluster.node_agent import NodeAgent, default_image_map  # noqa: E402
from tests.cluster.operator_harness import (  # noqa: E402
    FAKE_IMAGE,
    FAKE_RUNTIME,
    OperatorProcess,
    cr_manifest,
    install_operator_rbac,
)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted", "Panic"]
rules:
- level: Metadata
  verbs: ["create"]
  namespaces: ["{ns}"]
  resources:
  - group: "modeldeploy.io"
    resources: ["modeldeployments"]
  - group: "batch"
    resources: ["jobs"]
  - group: ""
    resources: ["configmaps"]
- level: None
"""


def ts(value: str) -> float:
    """RFC 3339 with microseconds → epoch seconds."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def audit_times(path: Path, ns: str) -> tuple[dict[str, float], dict[str, float], float | None, dict[str, list[float]]]:
    """(CR name → create accepted, CR name → its Job's create accepted, first CR create received,
    per-CR stage durations of the operator's path: CR accepted → ConfigMap create received →
    ConfigMap accepted → Job create received → Job accepted)."""
    crs: dict[str, float] = {}
    jobs: dict[str, float] = {}
    marks: dict[tuple[str, str], tuple[float, float]] = {}  # (kind, CR name) → (received, accepted)
    first = None
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        ref = ev.get("objectRef") or {}
        if (
            ev.get("stage") != "ResponseComplete"
            or ev.get("verb") != "create"
            or ref.get("namespace") != ns
            or (ev.get("responseStatus") or {}).get("code") != 201
            or not ref.get("name")
        ):
            continue
        if ref.get("resource") == "modeldeployments":
            crs[ref["name"]] = ts(ev["stageTimestamp"])
            received = ts(ev["requestReceivedTimestamp"])
            first = received if first is None else min(first, received)
        elif ref.get("resource") in ("jobs", "configmaps"):
            cr = ref["name"].rsplit("-", 1)[0]  # <name>-<hash8>
            marks.setdefault((ref["resource"], cr), (ts(ev["requestReceivedTimestamp"]), ts(ev["stageTimestamp"])))
            if ref["resource"] == "jobs":
                jobs.setdefault(cr, ts(ev["stageTimestamp"]))
    stages: dict[str, list[float]] = {}
    for name, accepted in crs.items():
        cm, job = marks.get(("configmaps", name)), marks.get(("jobs", name))
        if cm and job:
            for label, value in (
                ("CR accepted → ConfigMap create received (watch, operator, pool queue)", cm[0] - accepted),
                ("ConfigMap create received → accepted (API server)", cm[1] - cm[0]),
                ("ConfigMap accepted → Job create received (operator)", job[0] - cm[1]),
                ("Job create received → accepted (API server)", job[1] - job[0]),
            ):
                stages.setdefault(label, []).append(value)
    return crs, jobs, first, stages


def apiserver_sums(cp: ControlPlane) -> dict[tuple[str, str], float]:
    """Cumulative API server latency counters from /metrics: (what, key) → value.

    * ("wait", priority level): seconds requests spent queued by API Priority and Fairness
    * ("exec", priority level): seconds they spent executing once admitted
    * ("n", priority level): requests admitted
    """
    out: dict[tuple[str, str], float] = {}
    text = cp.kubectl("get", "--raw", "/metrics", timeout=120).stdout
    names = {
        "apiserver_flowcontrol_request_wait_duration_seconds_sum": "wait",
        "apiserver_flowcontrol_request_execution_seconds_sum": "exec",
        "apiserver_flowcontrol_request_execution_seconds_count": "n",
    }
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name not in names:
            continue
        labels, _, value = rest.rpartition("} ")
        level = next(
            (kv.split("=", 1)[1].strip('"') for kv in labels.split(",") if kv.startswith("priority_level=")), "?"
        )
        key = (names[name], level)
        out[key] = out.get(key, 0.0) + float(value)
    return out


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--operator-args", default="", help="extra flags for the operator, e.g. '--max-workers 48'")
    ap.add_argument("--no-succeeded", action="store_true", help="skip the informational wait for all Succeeded")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/operator_scale_last.md"))
    args = ap.parse_args()
    import psutil
    from kubernetes import client, watch

    tmp = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    ns = "scale"
    policy = tmp / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY.replace("{ns}", ns))
    audit_log = tmp / "audit.log"
    cp = ControlPlane(
        tmp / "cp",
        extra_apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
        ],
    )
    cp.start()
    agent = None
    op = None
    try:
        image_map = default_image_map()
        image_map["ghcr.io/modeldeploy/fake-runtime"] = [sys.executable, str(FAKE_RUNTIME)]
        agent = NodeAgent(
            cp.node_kubeconfig("bench-node"),
            "bench-node",
            image_map=image_map,
            work_dir=tmp / "agent",
            pods=args.count + 50,
            cpu="512",
            memory="1Ti",
        )
        agent.start()
        cp.create_namespace(ns)
        kubeconfig = install_operator_rbac(cp, ns)
        op = OperatorProcess(
            kubeconfig,
            ns,
            tmp / "operator",
            extra_args=["--log-format", "json", *args.operator_args.split()],
            env={"MODELDEPLOY_RUNTIME_IMAGE": FAKE_IMAGE},
        ).start()
        proc = psutil.Process(op.proc.pid)
        rss_idle = proc.memory_info().rss
        peak = {"rss": rss_idle}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak["rss"] = max(peak["rss"], proc.memory_info().rss)
                except psutil.Error:
                    return
                time.sleep(0.1)

        threading.Thread(target=sample, daemon=True).start()
        api = cp.api_client()
        api.configuration.connection_pool_maxsize = args.threads + 4  # before the first request
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = args.threads + 4
        batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
        job_seen: dict[str, float] = {}
        job_created_ts: dict[str, str] = {}
        all_jobs = threading.Event()

        def note(obj: object) -> None:
            anns = obj.metadata.annotations or {}
            name = anns.get("modeldeploy.io/deployment-name")
            if name and name not in job_seen:
                job_seen[name] = time.monotonic()
                job_created_ts[name] = obj.metadata.creation_timestamp.isoformat()
                if len(job_seen) >= args.count:
                    all_jobs.set()

        def watch_jobs() -> None:
            # A watch can drop under load (timeouts, 410 Gone): re-list (noting Jobs that
            # appeared meanwhile, with the re-list time as an upper bound) and re-watch.
            while not all_jobs.is_set():
                try:
                    lst = batch.list_namespaced_job(ns)
                    for j in lst.items:
                        note(j)
                    w = watch.Watch()
                    for ev in w.stream(
                        batch.list_namespaced_job,
                        ns,
                        resource_version=lst.metadata.resource_version,
                        timeout_seconds=60,
                        _request_timeout=90,
                    ):
                        if ev["type"] == "ADDED":
                            note(ev["object"])
                        if all_jobs.is_set():
                            w.stop()
                except Exception as e:
                    print(f"job watch restarted after {type(e).__name__}: {e}", file=sys.stderr)
                    time.sleep(0.5)

        wt = threading.Thread(target=watch_jobs, daemon=True)
        wt.start()
        time.sleep(1.0)  # watch established
        applied: dict[str, float] = {}
        cr_ts: dict[str, str] = {}
        body_of = {f"m{i:04d}": cr_manifest(f"m{i:04d}", ns) for i in range(args.count)}

        def create(name: str) -> None:
            obj = custom.create_namespaced_custom_object(
                "modeldeploy.io", "v1alpha1", ns, "modeldeployments", body_of[name]
            )
            applied[name] = time.monotonic()
            cr_ts[name] = obj["metadata"]["creationTimestamp"]

        def cpu_by_component() -> dict[str, float]:
            out: dict[str, float] = {}
            me = psutil.Process()
            for p in [me, *me.children(recursive=True)]:
                try:
                    name = " ".join(p.cmdline()[:3])
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                key = (
                    "operator"
                    if p.pid == op.proc.pid
                    else "benchmark + node agent"
                    if p.pid == me.pid
                    else next(
                        (
                            c
                            for c in ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler")
                            if c in name
                        ),
                        "runtime pods",
                    )
                )
                out[key] = out.get(key, 0.0) + t.user + t.system
            mt = me.cpu_times()  # runtime pods that already exited (reaped by the node agent)
            out["runtime pods"] = out.get("runtime pods", 0.0) + mt.children_user + mt.children_system
            return out

        load0 = loadavg()
        apf0 = apiserver_sums(cp)
        cpu0 = cpu_by_component()
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(args.threads) as ex:
            list(ex.map(create, body_of))
        t_applied = time.monotonic() - t0
        ok = all_jobs.wait(args.timeout)
        t_all_jobs = time.monotonic() - t0
        cpu1 = cpu_by_component()
        apf1 = apiserver_sums(cp)
        opm = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in op.metrics().splitlines()
            if line.startswith("modeldeploy_reconcile_queue_seconds")
        }
        q_n = opm.get("modeldeploy_reconcile_queue_seconds_count", 0.0)
        q_slow = 1 - opm.get('modeldeploy_reconcile_queue_seconds_bucket{le="1.0"}', 0.0) / q_n if q_n else 0.0
        q_row = (
            [
                (
                    "operator reconcile pool: passes / mean wait for a thread / share waiting > 1 s",
                    f"{q_n:.0f} / {1000 * opm.get('modeldeploy_reconcile_queue_seconds_sum', 0.0) / q_n:.0f} ms / "
                    f"{q_slow:.1%}",
                    "",
                )
            ]
            if q_n
            else []
        )
        apf_rows = []
        for level in sorted({k[1] for k in apf1}):
            n = apf1.get(("n", level), 0) - apf0.get(("n", level), 0)
            if n >= 1:
                wait = apf1.get(("wait", level), 0) - apf0.get(("wait", level), 0)
                exe = apf1.get(("exec", level), 0) - apf0.get(("exec", level), 0)
                apf_rows.append(
                    (
                        f"API server until all Jobs, priority level {level}: requests / mean queue wait / mean execution",
                        f"{n:.0f} / {1000 * wait / n:.0f} ms / {1000 * exe / n:.0f} ms",
                        "",
                    )
                )
        cpu_rows = [
            (f"CPU seconds until all Jobs: {k}", f"{cpu1.get(k, 0) - cpu0.get(k, 0):.1f} s", "") for k in sorted(cpu1)
        ]
        lat = [job_seen[n] - applied[n] for n in job_seen if n in applied]
        load1 = loadavg()
        ts_lat = [
            (
                dt.datetime.fromisoformat(job_created_ts[n])
                - dt.datetime.fromisoformat(cr_ts[n].replace("Z", "+00:00"))
            ).total_seconds()
            for n in job_seen
            if n in cr_ts
        ]
        # informational: all Succeeded
        t_done = None
        deadline = time.monotonic() + (0 if args.no_succeeded else args.timeout)
        while time.monotonic() < deadline:
            items = custom.list_namespaced_custom_object("modeldeploy.io", "v1alpha1", ns, "modeldeployments")["items"]
            if sum(1 for i in items if (i.get("status") or {}).get("phase") == "Succeeded") >= args.count:
                t_done = time.monotonic() - t0
                break
            time.sleep(1)
        stop.set()
        rss_mb = peak["rss"] / 2**20
        time.sleep(2.0)  # the audit backend flushes its batches every second
        cr_acc, job_acc, first_rx, stages = audit_times(audit_log, ns)
        srv_lat = [job_acc[n] - cr_acc[n] for n in job_acc if n in cr_acc]
        srv_all = (max(job_acc.values()) - first_rx) if job_acc and first_rx is not None else None
        srv_ok = len(srv_lat) >= args.count
        rows = [
            ("ModelDeployments applied", f"{args.count} ({args.threads} client threads)", ""),
            ("operator flags", f"`{args.operator_args or '(defaults)'}`", ""),
            ("load average (1/5/15 min) before → after", f"{load0} → {load1}", ""),
            ("all creates accepted after (client)", f"{t_applied:.1f} s", ""),
            (
                "all Jobs exist after (audit: first CR received → last Job accepted)",
                f"{srv_all:.1f} s" + ("" if srv_ok else f" (only {len(srv_lat)} Jobs)")
                if srv_all is not None
                else "n/a",
                "≤ 60 s",
            ),
            (
                "all Jobs exist after (client: first create call → last Job on watch)",
                f"{t_all_jobs:.1f} s" + ("" if ok else f" (TIMEOUT: {len(job_seen)} Jobs)"),
                "",
            ),
            (
                "apply→Job latency p50 (audit: CR accepted → Job accepted)",
                f"{pct(srv_lat, 0.5):.2f} s" if srv_lat else "n/a",
                "",
            ),
            ("apply→Job latency p99 (audit)", f"{pct(srv_lat, 0.99):.2f} s" if srv_lat else "n/a", "≤ 5 s"),
            ("apply→Job latency max (audit)", f"{max(srv_lat):.2f} s" if srv_lat else "n/a", ""),
            (
                "apply→Job latency p50/p99 (client: create returned → Job on watch)",
                f"{pct(lat, 0.5):.2f} s / {pct(lat, 0.99):.2f} s" if lat else "n/a",
                "",
            ),
            (
                "creationTimestamp delta p50/p99 (1 s resolution)",
                f"{pct(ts_lat, 0.5):.0f} s / {pct(ts_lat, 0.99):.0f} s" if ts_lat else "n/a",
                "",
            ),
            ("operator RSS idle → peak", f"{rss_idle / 2**20:.0f} MB → {rss_mb:.0f} MB", "≤ 300 MB"),
            (
                "all Succeeded after (informational)",
                f"{t_done:.1f} s" if t_done else "skipped" if args.no_succeeded else "not within timeout",
                "",
            ),
            *[
                (f"apply→Job stage p50/p99: {k}", f"{pct(v, 0.5):.2f} s / {pct(v, 0.99):.2f} s", "")
                for k, v in stages.items()
            ],
            *q_row,
            *cpu_rows,
            *apf_rows,
        ]
        verdict = bool(srv_ok and srv_all is not None and srv_all <= 60 and pct(srv_lat, 0.99) <= 5 and rss_mb <= 300)
        lines = [
            "# Operator scale benchmark",
            "",
            f"`benchmarks/operator_scale.py --count {args.count}` on {platform.node()} "
            f"({os.cpu_count()} CPUs, Python {platform.python_version()}), "
            f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Real etcd/kube-apiserver/"
            "controller-manager/scheduler + test node agent (fake runtime, exits at once) + operator on the same machine.",
            "",
            "| measure | value | goal |",
            "|---|---|---|",
            *[f"| {a} | {b} | {c} |" for a, b, c in rows],
            "",
            f"Verdict: {'all goals met' if verdict else 'GOALS NOT MET'}",
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        return 0 if verdict else 1
    finally:
        if op is not None:
            op.stop()
        if agent is not None:
            agent.stop()
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
