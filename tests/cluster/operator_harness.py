"""Run the modeldeploy operator as a subprocess under its own RBAC (cluster tests, benchmark).

* ``install_operator_rbac``: applies the CRD and config/rbac/role.yaml as admin, creates the
  ServiceAccount `modeldeploy-operator` in the namespace, binds the ClusterRole there with a
  RoleBinding, and returns a kubeconfig authenticating as that ServiceAccount — so the
  operator under test has exactly the production permissions, never admin.
* ``OperatorProcess``: `python -m modeldeploy_operator -n NS` with that kubeconfig; start,
  kill -9 (by PID) and restart; logs to a file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "modeldeployment.yaml"
ROLE = REPO / "config" / "rbac" / "role.yaml"
FAKE_RUNTIME = Path(__file__).resolve().parent / "fakes" / "fake_runtime.py"
FAKE_IMAGE = "ghcr.io/modeldeploy/fake-runtime:test"
SA = "modeldeploy-operator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_crd(cp: Any) -> None:
    cp.kubectl("apply", "-f", str(CRD))
    cp.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io", "--timeout=60s")


def install_operator_rbac(cp: Any, namespace: str) -> Path:
    install_crd(cp)
    cp.kubectl("apply", "-f", str(ROLE))
    cp.kubectl("-n", namespace, "create", "serviceaccount", SA, check=False)
    cp.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        SA,
        f"--clusterrole={SA}",
        f"--serviceaccount={namespace}:{SA}",
        check=False,
    )
    return cp.service_account_kubeconfig(namespace, SA)


def register_fake_image(node_agent: Any) -> None:
    """Map FAKE_IMAGE to the fake runtime on the in-process node agent."""
    if not hasattr(node_agent, "image_map"):
        raise RuntimeError(
            "the node agent is external (python -m tests.cluster up); "
            "its image table cannot be extended — run these tests without MODELDEPLOY_KUBECONFIG_EXISTING"
        )
    node_agent.image_map["ghcr.io/modeldeploy/fake-runtime"] = [sys.executable, str(FAKE_RUNTIME)]


class OperatorProcess:
    """One operator subprocess; `kill()` is SIGKILL by PID (a crash, no graceful exit)."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_dir: Path,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.log_dir = Path(log_dir)
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, wait_healthy: bool = True) -> OperatorProcess:
        self.starts += 1
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        env.pop("MODELDEPLOY_ALL_NAMESPACES", None)
        argv = [
            sys.executable,
            "-m",
            "modeldeploy_operator",
            "-n",
            self.namespace,
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(self.port),
            *self.extra_args,
        ]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
        if wait_healthy:
            wait_for(self.healthy, 60, f"operator /healthz (log {self.log_path}):\n{self.log()}")
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode if self.proc else None}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


def cr_manifest(
    name: str, namespace: str, *, deploy_inline: str = "fake_exit = 0\n", image: str = FAKE_IMAGE, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "calibration",
            "modelConfig": {"uri": "builtin:calibration/resnet18_5ch_tiny.py"},
            "deployConfig": {"inline": deploy_inline},
            "export": {"mode": "onnx", "precision": "fp16", "opset": 17},
            "runtime": {"image": image, "backoffLimit": 0, "device": "cpu"},
        },
    }
    for k, v in spec.items():
        if isinstance(v, dict) and isinstance(body["spec"].get(k), dict):
            body["spec"][k].update(v)
        else:
            body["spec"][k] = v
    return body


def apply(cp: Any, body: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess:
    return cp.kubectl("apply", "-f", "-", input=json.dumps(body), check=check)
