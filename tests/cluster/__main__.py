"""CLI: a long-lived test cluster for local work and `make cluster-up/down`.

    python -m tests.cluster up   [--state-dir DIR] [--no-node-agent] [--node-name N] [--gpus 1]
    python -m tests.cluster down [--state-dir DIR] [--keep-state]
    python -m tests.cluster status [--state-dir DIR]

`up` builds the binaries if needed (tests/cluster/build.sh), starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and the test node agent as
background processes (they outlive this command), records their PIDs in
DIR/state.json and prints `export KUBECONFIG=DIR/kubeconfigs/admin.kubeconfig`.
`down` stops exactly those PIDs (after checking their start time and executable).
Default DIR: $MODELDEPLOY_CLUSTER_STATE_DIR or /tmp/modeldeploy-cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .controlplane import (
    STATE_FILE,
    ControlPlane,
    ControlPlaneError,
    _pid_matches,
    _proc_start_time,
    _tail,
    terminate_pid,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_state_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_CLUSTER_STATE_DIR", "/tmp/modeldeploy-cluster"))


def _alive(state: dict) -> bool:
    procs = state.get("processes", {})
    return bool(procs) and all(_pid_matches(p["pid"], p["exe"], p.get("started")) for p in procs.values())


def _wait_node_ready(cp: ControlPlane, node: str, agent: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(cp.api_client())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise ControlPlaneError(f"node agent exited with {agent.returncode}:\n{_tail(log)}")
        try:
            n = core.read_node(node)
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or []):
                return
        except ApiException as e:
            if e.status != 404:
                raise
        time.sleep(0.3)
    raise ControlPlaneError(f"node {node} not Ready within {timeout}s:\n{_tail(log)}")


def cmd_up(ns: argparse.Namespace) -> int:
    state_dir = Path(ns.state_dir).resolve()
    sf = state_dir / STATE_FILE
    if sf.is_file():
        state = json.loads(sf.read_text())
        if _alive(state):
            print(f"# cluster already running (state dir {state_dir})", file=sys.stderr)
            print(f"export KUBECONFIG={state['kubeconfig']}")
            return 0
        print(f"# stale state in {state_dir}; stopping leftovers and starting afresh", file=sys.stderr)
        _down(state_dir, keep_state=False)
    state_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    cp = ControlPlane(state_dir, keep_state=True, start_timeout=ns.timeout)
    try:
        cp.start(detach=True)
        state = json.loads(sf.read_text())
        if not ns.no_node_agent:
            work = state_dir / "node-agent"
            work.mkdir(exist_ok=True)
            log = state_dir / "logs" / "node-agent.log"
            argv = [
                sys.executable,
                "-m",
                "tests.cluster.node_agent",
                "--kubeconfig",
                str(cp.node_kubeconfig(ns.node_name)),
                "--node-name",
                ns.node_name,
                "--gpus",
                str(ns.gpus),
                "--work-dir",
                str(work),
            ]
            if ns.image_map:
                argv += ["--image-map", ns.image_map]
            with open(log, "ab") as lf:
                agent = subprocess.Popen(
                    argv,
                    stdout=lf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=REPO_ROOT,
                    start_new_session=True,
                    env={
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                    },
                )
            state["processes"]["node-agent"] = {
                "pid": agent.pid,
                "exe": sys.executable,
                "started": _proc_start_time(agent.pid),
            }
            state["node_agent"] = {"node_name": ns.node_name, "work_dir": str(work), "log": str(log)}
            sf.write_text(json.dumps(state, indent=2))
            _wait_node_ready(cp, ns.node_name, agent, log)
    except BaseException as e:
        print(f"cluster start failed: {e}", file=sys.stderr)
        _down(state_dir, keep_state=True)
        print(f"# logs kept in {state_dir / 'logs'}", file=sys.stderr)
        return 1
    print(
        f"# cluster up in {time.monotonic() - t0:.1f}s (state dir {state_dir}); stop: python -m tests.cluster down"
        f" --state-dir {state_dir}",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={cp.kubeconfig}")
    return 0


def _down(state_dir: Path, *, keep_state: bool) -> None:
    sf = state_dir / STATE_FILE
    if not sf.is_file():
        return
    state = json.loads(sf.read_text())
    agent = state.get("processes", {}).get("node-agent")
    if agent and _pid_matches(agent["pid"], agent["exe"], agent.get("started")):
        terminate_pid(agent["pid"], grace=40)
    cp = ControlPlane.attach(state_dir)
    cp._pids.pop("node-agent", None)
    cp.stop()
    if keep_state:
        sf.unlink(missing_ok=True)
    else:
        shutil.rmtree(state_dir, ignore_errors=True)


def cmd_down(ns: argparse.Namespace) -> int:
    state_dir = Path(ns.state_dir).resolve()
    if not (state_dir / STATE_FILE).is_file():
        print(f"# no cluster state in {state_dir}; nothing to stop", file=sys.stderr)
        return 0
    _down(state_dir, keep_state=ns.keep_state)
    print(f"# cluster in {state_dir} stopped", file=sys.stderr)
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    sf = Path(ns.state_dir).resolve() / STATE_FILE
    if not sf.is_file():
        print("down")
        return 1
    state = json.loads(sf.read_text())
    ok = _alive(state)
    print("up" if ok else "stale")
    if ok:
        print(f"export KUBECONFIG={state['kubeconfig']}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.cluster")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a background test cluster")
    up.add_argument("--state-dir", default=str(default_state_dir()))
    up.add_argument("--no-node-agent", action="store_true")
    up.add_argument("--node-name", default="modeldeploy-gpu-node")
    up.add_argument("--gpus", type=int, default=1)
    up.add_argument("--image-map", default=None, help="JSON image map for the node agent")
    up.add_argument("--timeout", type=float, default=180)
    down = sub.add_parser("down", help="stop the background test cluster")
    down.add_argument("--state-dir", default=str(default_state_dir()))
    down.add_argument("--keep-state", action="store_true", help="keep logs/data (state.json is removed)")
    st = sub.add_parser("status")
    st.add_argument("--state-dir", default=str(default_state_dir()))
    ns = ap.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[ns.cmd](ns)


if __name__ == "__main__":
    sys.exit(main())
