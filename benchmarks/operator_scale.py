"""Operator scale benchmark: N ModelDeployments applied at once → N Jobs.

    .venv/bin/python benchmarks/operator_scale.py [--counts 500,1000,2000,5000] [--threads 16]
        [--no-succeeded] [--operator-args '--max-workers 32'] [--out benchmarks/results/operator_scale_last.md]

For each count (one command: `--counts` runs them in order and prints a growth table first),
starts a fresh real control plane (tests/cluster) + the test node agent (fake runtime
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
* operator peak RSS (psutil, sampled every 100 ms), and kube-apiserver's and etcd's
  peak RSS and etcd's database file size (how the control plane grows with the count);
* CPU seconds per component until all Jobs exist, and the load average before/after
  (the build machine is shared: read the numbers against the load);
* time until all N are Succeeded (informational; --no-succeeded skips it).
Goals (issue): all Jobs ≤ 60 s, p99 ≤ 5 s, RSS ≤ 300 MB, on the 2-core build machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
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


CLUSTER_MODE = {
    False: "full: job controller, scheduler and the test node agent run every Job's pod (fake runtime)",
    True: "operator only (--no-pods): kube-controller-manager without its job controller, no node — "
    "Jobs are created, never run",
}


@dataclasses.dataclass
class Run:
    """One count's measurements (the per-count table and the growth table's row)."""

    count: int
    load0: str
    load1: str
    started: str
    rows: list[tuple[str, str, str]]
    all_jobs_s: float | None  # audit: first CR received → last Job accepted
    all_jobs_ok: bool  # every CR got its Job within the timeout
    p50: float | None
    p99: float | None
    rss_idle_mb: float
    rss_peak_mb: float
    apiserver_rss_mb: float
    etcd_rss_mb: float
    etcd_db_mb: float
    cpu: dict[str, float]
    apiserver_exec_ms: float | None  # mean execution time per request, all priority levels

    @property
    def server_cpu_s(self) -> float:
        """CPU seconds the API server and etcd spent until all Jobs existed. Divided by the
        machine's cores it is a floor for "all Jobs exist" that no operator can beat here:
        the control plane shares the cores with the operator and the client."""
        return self.cpu.get("kube-apiserver", 0.0) + self.cpu.get("etcd", 0.0)

    @property
    def verdict(self) -> bool:
        return bool(
            self.all_jobs_ok
            and self.all_jobs_s is not None
            and self.all_jobs_s <= 60
            and self.p99 is not None
            and self.p99 <= 5
            and self.rss_peak_mb <= 300
        )


def measure(count: int, args: argparse.Namespace) -> Run:
    """Fresh control plane + node agent + operator, `count` CRs applied at once, then torn down
    (each count starts from an empty etcd, so the counts do not inherit each other's objects)."""
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
        # --no-pods: no job controller (and so no pods, scheduling, node or Job status):
        # only the operator's own path, CR → ConfigMap + Job, competes for the cores
        controllers="*,-job,-ttl-after-finished" if args.no_pods else "*",
    )
    cp.start()
    agent = None
    op = None
    try:
        if not args.no_pods:
            image_map = default_image_map()
            image_map["ghcr.io/modeldeploy/fake-runtime"] = [sys.executable, str(FAKE_RUNTIME)]
            agent = NodeAgent(
                cp.node_kubeconfig("bench-node"),
                "bench-node",
                image_map=image_map,
                work_dir=tmp / "agent",
                pods=count + 50,
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
        me = psutil.Process()
        servers = {
            c: next(p for p in me.children(recursive=True) if c in " ".join(p.cmdline()[:1]))
            for c in ("kube-apiserver", "etcd")
        }
        rss_idle = proc.memory_info().rss
        peak = {"rss": rss_idle, "kube-apiserver": 0, "etcd": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak["rss"] = max(peak["rss"], proc.memory_info().rss)
                    for c, p in servers.items():
                        peak[c] = max(peak[c], p.memory_info().rss)
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

        def note(obj: dict) -> None:
            meta = obj.get("metadata") or {}
            name = (meta.get("annotations") or {}).get("modeldeploy.io/deployment-name")
            if name and name not in job_seen:
                job_seen[name] = time.monotonic()
                job_created_ts[name] = meta["creationTimestamp"].replace("Z", "+00:00")
                if len(job_seen) >= count:
                    all_jobs.set()

        def watch_jobs() -> None:
            # A watch can drop under load (timeouts, 410 Gone): re-list (noting Jobs that
            # appeared meanwhile, with the re-list time as an upper bound) and re-watch.
            # Plain JSON, not the client's typed models: decoding thousands of Jobs into them
            # costs this process (which also runs the node agent) more CPU than the watch.
            while not all_jobs.is_set():
                try:
                    lst = json.loads(batch.list_namespaced_job(ns, _preload_content=False).data)
                    for j in lst.get("items") or []:
                        note(j)
                    w = watch.Watch()
                    for ev in w.stream(
                        batch.list_namespaced_job,
                        ns,
                        resource_version=lst["metadata"]["resourceVersion"],
                        timeout_seconds=60,
                        _request_timeout=90,
                        deserialize=False,
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
        body_of = {f"m{i:05d}": cr_manifest(f"m{i:05d}", ns) for i in range(count)}

        def create(name: str) -> None:
            obj = custom.create_namespaced_custom_object(
                "modeldeploy.io", "v1alpha1", ns, "modeldeployments", body_of[name]
            )
            applied[name] = time.monotonic()
            cr_ts[name] = obj["metadata"]["creationTimestamp"]

        def cpu_by_component() -> dict[str, float]:
            out: dict[str, float] = {}
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

        spy = None
        if args.py_spy:  # sampling profile of the operator from the first create to the last Job
            Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [args.py_spy, "record", "--pid", str(op.proc.pid), "--rate", "50", "--nonblocking", "--threads"]
                + ["--format", "raw", "-o", str(Path(args.profile_dir) / f"operator-{count}.txt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        load0 = loadavg()
        started = dt.datetime.now(dt.timezone.utc).strftime("%H:%M UTC")
        apf0 = apiserver_sums(cp)
        cpu0 = cpu_by_component()
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(args.threads) as ex:
            list(ex.map(create, body_of))
        t_applied = time.monotonic() - t0
        ok = all_jobs.wait(args.timeout)
        t_all_jobs = time.monotonic() - t0
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(60)
        cpu1 = cpu_by_component()
        apf1 = apiserver_sums(cp)
        try:
            opm = {
                line.split(" ")[0]: float(line.split(" ")[1])
                for line in op.metrics().splitlines()
                if line.startswith("modeldeploy_reconcile_queue_seconds")
            }
        except OSError as e:  # a starved operator may not answer /metrics in time: the row is left out
            print(f"operator /metrics not read: {e}", file=sys.stderr)
            opm = {}
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
        n_all = exe_all = 0.0
        for level in sorted({k[1] for k in apf1}):
            n = apf1.get(("n", level), 0) - apf0.get(("n", level), 0)
            if n >= 1:
                wait = apf1.get(("wait", level), 0) - apf0.get(("wait", level), 0)
                exe = apf1.get(("exec", level), 0) - apf0.get(("exec", level), 0)
                n_all, exe_all = n_all + n, exe_all + exe
                apf_rows.append(
                    (
                        f"API server until all Jobs, priority level {level}: requests / mean queue wait / mean execution",
                        f"{n:.0f} / {1000 * wait / n:.0f} ms / {1000 * exe / n:.0f} ms",
                        "",
                    )
                )
        cpu = {k: cpu1.get(k, 0) - cpu0.get(k, 0) for k in sorted(cpu1)}
        cpu_rows = [(f"CPU seconds until all Jobs: {k}", f"{v:.1f} s", "") for k, v in cpu.items()]
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
            if sum(1 for i in items if (i.get("status") or {}).get("phase") == "Succeeded") >= count:
                t_done = time.monotonic() - t0
                break
            time.sleep(1)
        stop.set()
        rss_mb = peak["rss"] / 2**20
        db = tmp / "cp" / "etcd" / "member" / "snap" / "db"
        etcd_db_mb = db.stat().st_size / 2**20 if db.exists() else 0.0
        time.sleep(2.0)  # the audit backend flushes its batches every second
        cr_acc, job_acc, first_rx, stages = audit_times(audit_log, ns)
        srv_lat = [job_acc[n] - cr_acc[n] for n in job_acc if n in cr_acc]
        srv_all = (max(job_acc.values()) - first_rx) if job_acc and first_rx is not None else None
        srv_ok = len(srv_lat) >= count
        rows = [
            ("ModelDeployments applied", f"{count} ({args.threads} client threads)", ""),
            ("operator flags", f"`{args.operator_args or '(defaults)'}`", ""),
            ("cluster", CLUSTER_MODE[args.no_pods], ""),
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
                "kube-apiserver / etcd RSS peak, etcd db file after",
                f"{peak['kube-apiserver'] / 2**20:.0f} MB / {peak['etcd'] / 2**20:.0f} MB, {etcd_db_mb:.0f} MB",
                "",
            ),
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
        return Run(
            count=count,
            load0=load0,
            load1=load1,
            started=started,
            rows=rows,
            all_jobs_s=srv_all,
            all_jobs_ok=srv_ok,
            p50=pct(srv_lat, 0.5) if srv_lat else None,
            p99=pct(srv_lat, 0.99) if srv_lat else None,
            rss_idle_mb=rss_idle / 2**20,
            rss_peak_mb=rss_mb,
            apiserver_rss_mb=peak["kube-apiserver"] / 2**20,
            etcd_rss_mb=peak["etcd"] / 2**20,
            etcd_db_mb=etcd_db_mb,
            cpu=cpu,
            apiserver_exec_ms=1000 * exe_all / n_all if n_all else None,
        )
    finally:
        if op is not None:
            op.stop()
        if agent is not None:
            agent.stop()
        cp.stop()
        if sys.exc_info()[0] is None:
            shutil.rmtree(tmp, ignore_errors=True)  # etcd's data and the pods' dirs: 0.1-0.5 GB per count
        else:  # an interrupted count keeps its audit log: audit_times() still gives its latencies
            print(f"count {count} interrupted; its API server audit log stays in {audit_log}", file=sys.stderr)


def _s(value: float | None, fmt: str = "{:.1f} s") -> str:
    return "n/a" if value is None else fmt.format(value)


def growth_table(runs: list[Run]) -> list[str]:
    """count → time to all Jobs, apply→Job p50/p99, operator peak RSS, API server/etcd notes."""
    out = [
        "| CRs | load 1 min start → end | all Jobs exist | apply→Job p50 | apply→Job p99 | operator RSS peak "
        "| CPU s: operator / apiserver / etcd | CPU ms per CR: operator / apiserver + etcd "
        "| floor: apiserver + etcd CPU ÷ cores | apiserver mean exec / RSS peak | etcd RSS peak / db | goals |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        out.append(
            f"| {r.count} | {r.load0.split()[0]} → {r.load1.split()[0]} "
            f"| {_s(r.all_jobs_s)}{'' if r.all_jobs_ok else ' (not all)'} "
            f"| {_s(r.p50, '{:.2f} s')} | {_s(r.p99, '{:.2f} s')} | {r.rss_peak_mb:.0f} MB "
            f"| {r.cpu.get('operator', 0):.1f} / {r.cpu.get('kube-apiserver', 0):.1f} / {r.cpu.get('etcd', 0):.1f} "
            f"| {1000 * r.cpu.get('operator', 0) / r.count:.1f} / {1000 * r.server_cpu_s / r.count:.1f} "
            f"| {r.server_cpu_s / (os.cpu_count() or 1):.1f} s "
            f"| {_s(r.apiserver_exec_ms, '{:.0f} ms')} / {r.apiserver_rss_mb:.0f} MB "
            f"| {r.etcd_rss_mb:.0f} MB / {r.etcd_db_mb:.0f} MB | {'met' if r.verdict else 'NOT met'} |"
        )
    return out


def write_report(runs: list[Run], counts: list[int], out: str, no_pods: bool) -> None:
    lines = [
        "# Operator scale benchmark",
        "",
        f"`benchmarks/operator_scale.py --counts {','.join(map(str, counts))}{' --no-pods' if no_pods else ''}` "
        f"on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}, niceness {os.nice(0)}), "
        f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Real etcd/kube-apiserver/"
        "controller-manager/scheduler + operator on the same machine, a fresh control plane per count; "
        f"cluster: {CLUSTER_MODE[no_pods]}.",
        "",
        *growth_table(runs),
    ]
    for r in runs:
        lines += [
            "",
            f"## {r.count} CRs (started {r.started})",
            "",
            "| measure | value | goal |",
            "|---|---|---|",
            *[f"| {a} | {b} | {c} |" for a, b, c in r.rows],
            "",
            f"Verdict: {'all goals met' if r.verdict else 'GOALS NOT MET'}",
        ]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--counts",
        default="500",
        help="comma-separated CR counts, one fresh control plane each, e.g. 500,1000,2000,5000",
    )
    ap.add_argument("--count", type=int, help="one count (same as --counts N)")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for all Jobs (and all Succeeded)")
    ap.add_argument("--operator-args", default="", help="extra flags for the operator, e.g. '--max-workers 48'")
    ap.add_argument("--no-succeeded", action="store_true", help="skip the informational wait for all Succeeded")
    ap.add_argument(
        "--no-pods",
        action="store_true",
        help="operator-only: no job controller and no node, so Jobs get no pods (implies --no-succeeded)",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/operator_scale_last.md"))
    ap.add_argument("--py-spy", default="", help="path of a py-spy binary: profile the operator during each count")
    ap.add_argument("--profile-dir", default=str(REPO / "work_dirs/operator_scale_profiles"))
    args = ap.parse_args()
    args.no_succeeded = args.no_succeeded or args.no_pods  # Jobs without pods never succeed
    counts = [args.count] if args.count else [int(c) for c in args.counts.split(",") if c.strip()]
    if not counts or any(c < 1 for c in counts):
        ap.error(f"--counts wants positive integers, got {args.counts!r}")
    runs: list[Run] = []
    for count in counts:
        runs.append(measure(count, args))
        print(f"{count} CRs: {growth_table(runs[-1:])[-1]}", flush=True)
        write_report(runs, counts, args.out, args.no_pods)  # after each count: a long run interrupted keeps its counts
    print(Path(args.out).read_text())
    return 0 if all(r.verdict for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
