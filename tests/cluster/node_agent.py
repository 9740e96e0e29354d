"""Test node agent — TEST INFRASTRUCTURE, NOT A KUBELET.

It lets the real control plane of ``tests/cluster`` run pods without a container
runtime: it registers a fake GPU Node, keeps it Ready (node Lease + status
heartbeats), watches the pods bound to that node, and runs each pod's FIRST
container as a local subprocess, reporting pod status back like a kubelet would.

What it does
============
* Node ``<node_name>``: capacity/allocatable cpu, memory, pods and ``nvidia.com/gpu``
  (``gpus``, default 1); labels ``nvidia.com/gpu.present=true``,
  ``modeldeploy.io/test-node=true`` (+ hostname/os/arch); condition Ready=True;
  lease ``kube-node-lease/<node_name>`` renewed every ``heartbeat_interval`` seconds.
  Scheduling is entirely the real kube-scheduler's business (a pod asking for 2 GPUs
  stays Pending/Unschedulable on a 1-GPU node).
* Images: ``image_map`` maps an image *repository* (tag and digest stripped;
  ``docker.io/library/x`` == ``x``) to an argv prefix that REPLACES the container's
  ``command[0]``. argv = prefix + command[1:] + args (when the container has no
  ``command``: prefix + args). An image missing from the map fails the pod
  (phase Failed, container terminated with reason ``ErrImagePull``).
* Env: literal ``env``, ``$(VAR)`` expansion, ``valueFrom.secretKeyRef`` /
  ``configMapKeyRef`` (``optional`` honoured), ``fieldRef`` (metadata.name/namespace/
  uid/labels/annotations, spec.nodeName, spec.serviceAccountName, status.podIP/hostIP),
  ``resourceFieldRef`` (raw quantity), ``envFrom`` secretRef/configMapRef (+ prefix).
  A missing non-optional Secret/ConfigMap keeps the pod Pending with
  ``waiting.reason=CreateContainerConfigError`` and is retried, like a kubelet.
  The child also gets the host's PATH, HOME, VIRTUAL_ENV, PYTHONPATH, LANG/LC_ALL
  (so the venv works), ``HOSTNAME``, ``KUBERNETES_SERVICE_HOST/PORT`` pointing at the
  test apiserver, and ``extra_env`` from the agent's configuration.
* Volumes: ``configMap``, ``secret``, ``downwardAPI`` and ``projected`` (incl.
  ``serviceAccountToken`` via the TokenRequest API, bound to the pod) are written as
  files in a per-pod directory; ``emptyDir`` (and anything else) is an empty per-pod
  directory; ``hostPath`` maps to the host path itself.
* PATH MAPPING: there is no mount namespace, so every absolute ``mountPath`` (incl.
  ``subPath``), the container's ``terminationMessagePath`` (default
  ``/dev/termination-log``) and ``workingDir`` are mapped to per-pod local paths, and
  the agent SUBSTITUTES those path prefixes (at path boundaries, longest first, one pass)
  in command, args and env values. A program that builds such a path itself at run time
  (instead of receiving it via args/env) will not see the mapping.
* In-cluster login: when the pod mounts a ServiceAccount token (the ServiceAccount
  admission plugin adds ``/var/run/secrets/kubernetes.io/serviceaccount``; automount
  can be disabled as usual), the agent writes a kubeconfig with that token and the
  cluster CA into the pod dir and sets ``KUBECONFIG`` (unless the pod sets it) and
  ``MODELDEPLOY_SERVICEACCOUNT_DIR`` (the mapped token dir). The kubernetes python
  client's ``load_incluster_config()`` reads fixed absolute paths and fails here;
  ``kubernetes.config.load_config()`` and kopf's default login fall back to
  ``KUBECONFIG`` and thus authenticate as the pod's ServiceAccount.
* Status: Pending → Running (containerStatuses[0].state.running, podIP 127.0.0.1,
  Ready conditions) → Succeeded (exit 0) / Failed with ``state.terminated``
  {exitCode, reason Completed | Error | OOMKilled (exit 137 / SIGKILL), message,
  startedAt, finishedAt}. message = termination-message file (≤ 4096 bytes), or with
  ``terminationMessagePolicy: FallbackToLogsOnError`` and an empty file on failure,
  the last 80 lines / 2048 bytes of the output. A signal death -N is reported as
  exit code 128+N. ``activeDeadlineSeconds`` kills the process → phase Failed, reason
  DeadlineExceeded. ``restartPolicy`` is treated as Never (containers are never
  restarted). Pod deletion (deletionTimestamp) → SIGTERM the process group, wait
  min(terminationGracePeriodSeconds, ``max_grace``), SIGKILL, report Failed (unless it
  already finished) and delete the pod with gracePeriodSeconds=0.
* Logs: stdout+stderr of each pod go to ``<work_dir>/logs/<namespace>_<pod>.log``
  (see ``log_path()``); the agent's own log is ``<work_dir>/agent.log``.

Not supported (fails the pod with a clear message): initContainers; extra containers are
ignored (only the first one runs). No resource isolation: GPU requests are only used by
the scheduler; ``securityContext`` is ignored; the process runs as the agent's user.

Usage: in-process ``NodeAgent(kubeconfig, ...).start()`` (a few background threads), or
``python -m tests.cluster.node_agent --kubeconfig K --node-name N --image-map JSON``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("modeldeploy.test.node_agent")

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
LOCAL_IP = "127.0.0.1"
IMAGE_MAP_FILE = "image-map.json"


def default_image_map() -> dict[str, list[str]]:
    return {
        "ghcr.io/modeldeploy/runtime": [sys.executable, "-m", "modeldeploy"],
        "ghcr.io/modeldeploy/operator": [sys.executable, "-m", "modeldeploy_operator"],
        "busybox": ["/bin/sh"],
        "python": [sys.executable],
    }


def image_repository(image: str) -> str:
    """'ghcr.io/x/y:1.2@sha256:..' -> 'ghcr.io/x/y'; 'docker.io/library/busybox' -> 'busybox'."""
    repo = image.split("@", 1)[0]
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    if colon > slash:
        repo = repo[:colon]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/"):
        if repo.startswith(prefix):
            return repo[len(prefix) :]
    if repo.startswith("docker.io/"):
        return repo[len("docker.io/") :]
    return repo


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the pod process if the agent's pod thread (and so the agent)
    dies without cleaning up (Linux PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)


class PodConfigError(Exception):
    """Missing Secret/ConfigMap etc.: the pod stays Pending and is retried."""


class PodFatalError(Exception):
    """Unsupported pod / unknown image: the pod fails."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known vars replaced, unknown left as is, $$ -> $."""

    def repl(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(repl, value)


class PathMapper:
    """Substitutes container paths by local paths at path boundaries, in one pass."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = {k.rstrip("/") or "/": v for k, v in mapping.items() if k.startswith("/")}
        keys = sorted(self.mapping, key=len, reverse=True)
        self._re = (
            re.compile(r"(?<![\w.\-/])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w.\-])") if keys else None
        )

    def __call__(self, value: str) -> str:
        if not self._re or not value:
            return value
        return self._re.sub(lambda m: self.mapping[m.group(1)], value)

    def local(self, container_path: str) -> str | None:
        """Map one absolute path; None when no mapped prefix covers it."""
        p = container_path.rstrip("/") or "/"
        for k in sorted(self.mapping, key=len, reverse=True):
            if p == k or p.startswith(k + "/"):
                return self.mapping[k] + p[len(k) :]
        return None


# ============================================================================ pod run


class PodRun:
    def __init__(self, agent: NodeAgent, pod: dict[str, Any]):
        self.agent = agent
        self.pod = pod
        md = pod["metadata"]
        self.ns, self.name, self.uid = md["namespace"], md["name"], md["uid"]
        self.key = f"{self.ns}/{self.name}"
        self.dir = agent.work_dir / "pods" / f"{_safe(self.ns)}_{_safe(self.name)}_{self.uid[:8]}"
        self.log_path = agent.log_path(self.ns, self.name)
        self.delete_requested = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.started_at: str | None = None
        self.container = (pod["spec"].get("containers") or [{}])[0]
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)
        self.done = threading.Event()

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod %s: agent error", self.key)
            try:
                self._report_terminal(
                    exit_code=1,
                    reason="Error",
                    message="test node agent error (see agent.log)",
                    pod_reason="NodeAgentError",
                )
            except Exception:
                log.exception("pod %s: could not report the agent error", self.key)
        finally:
            self.done.set()
            self.agent._forget(self.uid)

    def _lifecycle(self) -> None:
        api = self.agent
        # -------- prepare (retried while config is missing)
        waiting_reported = None
        while True:
            if self.delete_requested.is_set() or api._stopping.is_set():
                self._finish_deleted(ran=False)
                return
            try:
                argv, env, cwd, term_path = self._prepare()
                break
            except PodFatalError as e:
                log.info("pod %s: %s: %s", self.key, e.reason, e.message)
                self._report_terminal(
                    exit_code=128, reason=e.reason, message=e.message, started=False, pod_reason=e.reason
                )
                self._wait_deleted_after_terminal()
                return
            except PodConfigError as e:
                msg = str(e)
                if waiting_reported != msg:
                    self._patch_status(
                        {
                            "status": {
                                "phase": "Pending",
                                "hostIP": LOCAL_IP,
                                "hostIPs": [{"ip": LOCAL_IP}],
                                "startTime": self.pod.get("status", {}).get("startTime") or _now(),
                                "containerStatuses": [
                                    self._cstatus(
                                        {
                                            "waiting": {"reason": "CreateContainerConfigError", "message": msg},
                                            "running": None,
                                            "terminated": None,
                                        },
                                        ready=False,
                                    )
                                ],
                            }
                        }
                    )
                    waiting_reported = msg
                    log.info("pod %s: CreateContainerConfigError: %s", self.key, msg)
                self.delete_requested.wait(1.0)

        # -------- start
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                argv,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as e:
            logf.close()
            self._report_terminal(exit_code=128, reason="StartError", message=f"{argv[0]}: {e}", started=False)
            self._wait_deleted_after_terminal()
            return
        logf.close()
        t_start = time.monotonic()
        self.started_at = _now()
        log.info("pod %s: started pid %d: %s", self.key, self.proc.pid, argv)
        self._patch_status(
            {
                "status": {
                    "phase": "Running",
                    "hostIP": LOCAL_IP,
                    "hostIPs": [{"ip": LOCAL_IP}],
                    "podIP": LOCAL_IP,
                    "podIPs": [{"ip": LOCAL_IP}],
                    "startTime": self.pod.get("status", {}).get("startTime") or self.started_at,
                    "conditions": self._conditions(ready=True),
                    "containerStatuses": [
                        self._cstatus(
                            {"running": {"startedAt": self.started_at}, "waiting": None, "terminated": None}, ready=True
                        )
                    ],
                }
            }
        )

        # -------- wait
        deadline_s = self.pod["spec"].get("activeDeadlineSeconds")
        deadline_exceeded = deleted = False
        while self.proc.poll() is None:
            if self.delete_requested.is_set() or api._stopping.is_set():
                deleted = True
                self._kill(self._grace())
                break
            if deadline_s is not None and time.monotonic() - t_start > float(deadline_s):
                deadline_exceeded = True
                self._kill(self._grace())
                break
            self.delete_requested.wait(0.1)
        rc = self.proc.wait()

        # -------- report
        exit_code = rc if rc >= 0 else 128 - rc
        if exit_code == 0:
            reason = "Completed"
        elif (rc == -signal.SIGKILL or exit_code == 137) and not (deleted or deadline_exceeded):
            reason = "OOMKilled"
        else:
            reason = "Error"
        message = self._termination_message(term_path, failed=exit_code != 0)
        pod_reason = pod_message = None
        if deadline_exceeded:
            pod_reason = "DeadlineExceeded"
            pod_message = f"Pod was active on the node longer than the specified deadline ({deadline_s}s)"
        self._report_terminal(
            exit_code=exit_code, reason=reason, message=message, pod_reason=pod_reason, pod_message=pod_message
        )
        log.info("pod %s: exited %d (%s)", self.key, exit_code, reason)
        if deleted:
            self._finish_deleted(ran=True)
        else:
            self._wait_deleted_after_terminal()

    def _grace(self) -> float:
        g = self.pod["spec"].get("terminationGracePeriodSeconds")
        g = 30 if g is None else g
        return float(min(g, self.agent.max_grace))

    def _kill(self, grace: float) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def _wait_deleted_after_terminal(self) -> None:
        """After a terminal status: stay tracked until the pod gets a deletionTimestamp, then
        remove it (the Job controller/GC deletes finished pods)."""
        while not (self.delete_requested.is_set() or self.agent._stopping.is_set()):
            self.delete_requested.wait(0.5)
        if self.delete_requested.is_set():
            self._delete_pod()

    def _finish_deleted(self, *, ran: bool) -> None:
        if not ran and not self.agent._stopping.is_set():
            # Never started: report a terminal phase first (kubelet does the same).
            try:
                self._report_terminal(
                    exit_code=137,
                    reason="ContainerStatusUnknown",
                    message="pod deleted before its container started",
                    started=False,
                )
            except Exception as e:  # the pod may already be gone; deletion below still runs
                log.info("pod %s: could not report deletion before start: %r", self.key, e)
        if self.delete_requested.is_set():
            self._delete_pod()

    def _delete_pod(self) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.agent.core.delete_namespaced_pod(
                self.name,
                self.ns,
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                grace_period_seconds=0,
                _preload_content=False,
            )
            log.info("pod %s: deleted", self.key)
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("pod %s: delete failed: %s", self.key, e)

    # ------------------------------------------------------------------ status
    def _cstatus(self, state: dict[str, Any], *, ready: bool, started: bool | None = None) -> dict[str, Any]:
        c = self.container
        st: dict[str, Any] = {
            "name": c.get("name", "main"),
            "image": c.get("image", ""),
            "imageID": f"modeldeploy-test-agent://{c.get('image', '')}",
            "ready": ready,
            "restartCount": 0,
            "state": state,
            "started": bool(started if started is not None else ready),
        }
        if self.proc is not None:
            st["containerID"] = f"modeldeploy-test-agent://{self.proc.pid}"
        return st

    def _conditions(self, *, ready: bool, reason: str | None = None) -> list[dict[str, Any]]:
        now = _now()
        conds = []
        for t, s in (
            ("PodReadyToStartContainers", True),
            ("Initialized", True),
            ("ContainersReady", ready),
            ("Ready", ready),
        ):
            c = {"type": t, "status": "True" if s else "False", "lastProbeTime": None, "lastTransitionTime": now}
            if not s and reason:
                c["reason"] = reason
            conds.append(c)
        return conds

    def _report_terminal(
        self,
        *,
        exit_code: int,
        reason: str,
        message: str | None,
        started: bool = True,
        pod_reason: str | None = None,
        pod_message: str | None = None,
    ) -> None:
        finished = _now()
        term: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": self.started_at or finished,
            "finishedAt": finished,
        }
        if self.proc is not None:
            term["containerID"] = f"modeldeploy-test-agent://{self.proc.pid}"
        if message:
            term["message"] = message
        phase = "Succeeded" if exit_code == 0 else "Failed"
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": LOCAL_IP,
            "hostIPs": [{"ip": LOCAL_IP}],
            "startTime": self.pod.get("status", {}).get("startTime") or self.started_at or finished,
            "conditions": self._conditions(ready=False, reason="PodCompleted" if phase == "Succeeded" else "PodFailed"),
            "containerStatuses": [
                self._cstatus({"terminated": term, "running": None, "waiting": None}, ready=False, started=False)
            ],
        }
        if self.proc is not None:
            status["podIP"] = LOCAL_IP
            status["podIPs"] = [{"ip": LOCAL_IP}]
        if pod_reason:
            status["reason"] = pod_reason
            status["message"] = pod_message or message or pod_reason
        self._patch_status({"status": status})

    def _patch_status(self, body: dict[str, Any]) -> None:
        from kubernetes.client.rest import ApiException

        for attempt in range(5):
            try:
                self.agent.core.patch_namespaced_pod_status(self.name, self.ns, body, _preload_content=False)
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if attempt == 4:
                    raise
                log.warning("pod %s: status patch failed (%s), retrying", self.key, e.status)
                time.sleep(0.3)

    def _termination_message(self, term_path: Path, *, failed: bool) -> str | None:
        msg = b""
        with contextlib.suppress(OSError):
            msg = term_path.read_bytes()[:MAX_TERMINATION_MESSAGE]
        if not msg.strip() and failed and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                data = self.log_path.read_bytes()
            except OSError:
                data = b""
            lines = data.splitlines(keepends=True)[-FALLBACK_LINES:]
            msg = b"".join(lines)[-FALLBACK_BYTES:]
        text = msg.decode("utf-8", errors="replace")
        return text or None

    # ------------------------------------------------------------------ prepare
    def _prepare(self) -> tuple[list[str], dict[str, str], str, Path]:
        spec = self.pod["spec"]
        if spec.get("initContainers"):
            raise PodFatalError("Unsupported", "initContainers are not supported by the test node agent")
        c = self.container
        image = c.get("image", "")
        repo = image_repository(image)
        image_map = self.agent.current_image_map()
        prefix = image_map.get(repo) or image_map.get(image)
        if prefix is None:
            raise PodFatalError(
                "ErrImagePull",
                f"image {image!r} (repository {repo!r}) is not in the test node agent's image map "
                f"(known: {sorted(image_map)})",
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        vol_dir = self.dir / "volumes"
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mapping: dict[str, str] = {}
        for vm in c.get("volumeMounts") or []:
            vol = volumes.get(vm["name"])
            if vol is None:
                raise PodFatalError("Invalid", f"volumeMount {vm['name']!r} has no volume")
            local = self._materialise_volume(vol, vol_dir / _safe(vol["name"]))
            if vm.get("subPath"):
                local = local / vm["subPath"]
                if not local.exists():
                    local.mkdir(parents=True, exist_ok=True)
            mapping[vm["mountPath"]] = str(local)
        term_container = c.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        term_local = self.dir / "termination-log"
        term_local.write_bytes(b"")
        mapping[term_container] = str(term_local)
        mapper = PathMapper(mapping)
        cwd = str(self.dir)
        if c.get("workingDir"):
            local = mapper.local(c["workingDir"])
            if local is None:
                local = str(self.dir / "rootfs" / c["workingDir"].lstrip("/"))
                mapping[c["workingDir"]] = local
                mapper = PathMapper(mapping)
            Path(local).mkdir(parents=True, exist_ok=True)
            cwd = local
        self.mapper = mapper

        # environment
        env: dict[str, str] = {}
        for k in ("PATH", "HOME", "VIRTUAL_ENV", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update(self.agent.extra_env)
        env["HOSTNAME"] = self.name
        host, port = self.agent.apiserver_host_port
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": str(port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
                "KUBERNETES_PORT": f"tcp://{host}:{port}",
            }
        )
        for src in c.get("envFrom") or []:
            prefix_ = src.get("prefix", "")
            if "configMapRef" in src:
                data = self._get_configmap(src["configMapRef"]["name"], src["configMapRef"].get("optional"))
                values = (data or {}).get("data") or {}
            elif "secretRef" in src:
                data = self._get_secret(src["secretRef"]["name"], src["secretRef"].get("optional"))
                values = {
                    k: base64.b64decode(v).decode("utf-8", errors="replace")
                    for k, v in ((data or {}).get("data") or {}).items()
                }
            else:
                continue
            for k, v in values.items():
                env[prefix_ + k] = mapper(v)
        for e in c.get("env") or []:
            if "value" in e or "valueFrom" not in e:
                env[e["name"]] = expand_vars(mapper(e.get("value", "")), env)
                continue
            vf = e["valueFrom"]
            val = self._value_from(vf, c)
            if val is not None:
                env[e["name"]] = mapper(val)
        sa_local = mapper.local(SA_MOUNT)
        if sa_local and Path(sa_local, "token").is_file():
            kc = self.dir / "serviceaccount.kubeconfig"
            self._write_sa_kubeconfig(Path(sa_local), kc)
            env.setdefault("KUBECONFIG", str(kc))
            env["MODELDEPLOY_SERVICEACCOUNT_DIR"] = sa_local

        # argv
        command = [expand_vars(mapper(x), env) for x in c.get("command") or []]
        args = [expand_vars(mapper(x), env) for x in c.get("args") or []]
        argv = list(prefix) + (command[1:] if command else []) + args
        return argv, env, cwd, term_local

    def _write_sa_kubeconfig(self, sa_dir: Path, path: Path) -> None:
        host, port = self.agent.apiserver_host_port
        ca = (sa_dir / "ca.crt").read_bytes() if (sa_dir / "ca.crt").exists() else self.agent.ca_data
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {
                        "server": f"https://{host}:{port}",
                        "certificate-authority-data": base64.b64encode(ca).decode(),
                    },
                }
            ],
            "users": [{"name": "serviceaccount", "user": {"token": (sa_dir / "token").read_text().strip()}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": "serviceaccount", "namespace": self.ns},
                }
            ],
            "current-context": "in-cluster",
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)

    # ------------------------------------------------------------------ api reads
    def _get(self, kind: str, name: str, optional: bool | None) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        fn = self.agent.core.read_namespaced_secret if kind == "Secret" else self.agent.core.read_namespaced_config_map
        try:
            return json.loads(fn(name, self.ns, _preload_content=False).data)
        except ApiException as e:
            if e.status == 404 and optional:
                return None
            if e.status == 404:
                raise PodConfigError(f'{kind.lower()} "{name}" not found') from None
            if e.status == 403:
                # Node authorizer graph may lag just after binding: retried.
                raise PodConfigError(f'{kind.lower()} "{name}": forbidden ({e.reason})') from None
            raise

    def _get_secret(self, name: str, optional: bool | None = None) -> dict[str, Any] | None:
        return self._get("Secret", name, optional)

    def _get_configmap(self, name: str, optional: bool | None = None) -> dict[str, Any] | None:
        return self._get("ConfigMap", name, optional)

    def _value_from(self, vf: dict[str, Any], c: dict[str, Any]) -> str | None:
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            s = self._get_secret(ref["name"], ref.get("optional"))
            data = (s or {}).get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise PodConfigError(f"couldn't find key {ref['key']} in Secret {self.ns}/{ref['name']}")
            return base64.b64decode(data[ref["key"]]).decode("utf-8", errors="replace")
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = self._get_configmap(ref["name"], ref.get("optional"))
            data = (cm or {}).get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise PodConfigError(f"couldn't find key {ref['key']} in ConfigMap {self.ns}/{ref['name']}")
            return data[ref["key"]]
        if "fieldRef" in vf:
            return self._field(vf["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in vf:
            res = vf["resourceFieldRef"]["resource"]
            section, _, rname = res.partition(".")
            return str(((c.get("resources") or {}).get(section) or {}).get(rname, "0"))
        return None

    def _field(self, path: str) -> str:
        md, spec = self.pod["metadata"], self.pod["spec"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return (md.get(m.group(1)) or {}).get(m.group(2), "")
        simple = {
            "metadata.name": md["name"],
            "metadata.namespace": md["namespace"],
            "metadata.uid": md["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": LOCAL_IP,
            "status.hostIP": LOCAL_IP,
            "status.podIPs": LOCAL_IP,
            "status.hostIPs": LOCAL_IP,
        }
        if path in simple:
            return simple[path]
        if path in ("metadata.labels", "metadata.annotations"):
            d = md.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(d.items()))
        raise PodFatalError("Invalid", f"unsupported fieldRef {path!r}")

    # ------------------------------------------------------------------ volumes
    def _materialise_volume(self, vol: dict[str, Any], target: Path) -> Path:
        if "hostPath" in vol:
            return Path(vol["hostPath"]["path"])
        if target.exists():
            return target
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if "configMap" in vol:
            self._project_configmap(vol["configMap"], tmp, vol["configMap"].get("defaultMode"))
        elif "secret" in vol:
            src = dict(vol["secret"])
            src["name"] = src.get("secretName")
            self._project_secret(src, tmp, src.get("defaultMode"))
        elif "downwardAPI" in vol:
            self._project_downward(vol["downwardAPI"], tmp)
        elif "projected" in vol:
            mode = vol["projected"].get("defaultMode")
            for s in vol["projected"].get("sources") or []:
                if "configMap" in s:
                    self._project_configmap(s["configMap"], tmp, mode)
                elif "secret" in s:
                    self._project_secret(s["secret"], tmp, mode)
                elif "downwardAPI" in s:
                    self._project_downward(s["downwardAPI"], tmp)
                elif "serviceAccountToken" in s:
                    self._project_token(s["serviceAccountToken"], tmp)
        # emptyDir and anything else: an empty directory
        tmp.rename(target)
        return target

    @staticmethod
    def _write_items(
        tmp: Path,
        data: dict[str, bytes],
        items: list[dict[str, Any]] | None,
        default_mode: int | None,
        what: str,
        optional: bool | None,
    ) -> None:
        if items:
            for it in items:
                if it["key"] not in data:
                    if optional:
                        continue
                    raise PodConfigError(f"key {it['key']} not found in {what}")
                p = tmp / it["path"]
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data[it["key"]])
                p.chmod(it.get("mode") or default_mode or 0o644)
        else:
            for k, v in data.items():
                p = tmp / k
                p.write_bytes(v)
                p.chmod(default_mode or 0o644)

    def _project_configmap(self, src: dict[str, Any], tmp: Path, mode: int | None) -> None:
        cm = self._get_configmap(src["name"], src.get("optional"))
        if cm is None:
            return
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        self._write_items(tmp, data, src.get("items"), mode, f"ConfigMap {src['name']}", src.get("optional"))

    def _project_secret(self, src: dict[str, Any], tmp: Path, mode: int | None) -> None:
        s = self._get_secret(src["name"], src.get("optional"))
        if s is None:
            return
        data = {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}
        self._write_items(tmp, data, src.get("items"), mode, f"Secret {src['name']}", src.get("optional"))

    def _project_downward(self, src: dict[str, Any], tmp: Path) -> None:
        for it in src.get("items") or []:
            if "fieldRef" in it:
                val = self._field(it["fieldRef"]["fieldPath"])
            else:
                val = self._value_from({"resourceFieldRef": it["resourceFieldRef"]}, self.container) or ""
            p = tmp / it["path"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(val)

    def _project_token(self, src: dict[str, Any], tmp: Path) -> None:
        from kubernetes.client.rest import ApiException

        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body: dict[str, Any] = {
            "spec": {
                "expirationSeconds": int(src.get("expirationSeconds") or 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            }
        }
        if src.get("audience"):
            body["spec"]["audiences"] = [src["audience"]]
        try:
            resp = self.agent.core.create_namespaced_service_account_token(sa, self.ns, body, _preload_content=False)
        except ApiException as e:
            if e.status in (403, 404):
                raise PodConfigError(f"token for ServiceAccount {self.ns}/{sa}: {e.status} {e.reason}") from None
            raise
        token = json.loads(resp.data)["status"]["token"]
        p = tmp / src.get("path", "token")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(token)
        p.chmod(0o600)


# ============================================================================ agent


class PodLogFiles:
    """Where an agent (in this process or another) keeps each pod's stdout+stderr."""

    work_dir: Path

    def log_path(self, namespace: str, pod_name: str) -> Path:
        """stdout+stderr of pod namespace/pod_name."""
        return self.work_dir / "logs" / f"{_safe(namespace)}_{_safe(pod_name)}.log"

    def pod_log(self, namespace: str, pod_name: str) -> str:
        try:
            return self.log_path(namespace, pod_name).read_text(errors="replace")
        except OSError:
            return ""


class NodeAgent(PodLogFiles):
    """Registers a fake GPU node and runs the pods bound to it as local processes.

    Args:
        kubeconfig: credentials; ideally a ``system:node:<node_name>`` client cert
            (``ControlPlane.node_kubeconfig``), the admin kubeconfig works as well.
        node_name: the Node to register.
        image_map: image repository -> argv prefix replacing command[0] (see module doc).
        work_dir: pod dirs and logs (default: a temp dir).
        gpus / cpu / memory / pods: the Node's capacity (= allocatable).
        labels: extra node labels.  extra_env: added to every pod's environment.
        max_grace: cap on terminationGracePeriodSeconds when killing.
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike,
        node_name: str = "modeldeploy-gpu-node",
        *,
        image_map: dict[str, list[str]] | None = None,
        work_dir: str | os.PathLike | None = None,
        gpus: int = 1,
        cpu: str = "8",
        memory: str = "32Gi",
        pods: int = 110,
        labels: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        heartbeat_interval: float = 10.0,
        resync_interval: float = 5.0,
        max_grace: float = 10.0,
        delete_node_on_stop: bool = True,
    ):
        import tempfile

        self.kubeconfig = str(kubeconfig)
        self.node_name = node_name
        self.image_map = {k: list(v) for k, v in (image_map if image_map is not None else default_image_map()).items()}
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix=f"node-agent-{node_name}-")).resolve()
        self.gpus, self.cpu, self.memory, self.pods = gpus, cpu, memory, pods
        self.labels = dict(labels or {})
        self.extra_env = dict(extra_env or {})
        self.heartbeat_interval = heartbeat_interval
        self.resync_interval = resync_interval
        self.max_grace = max_grace
        self.delete_node_on_stop = delete_node_on_stop
        self._runs: dict[str, PodRun] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log_handler: logging.Handler | None = None

        cfg = yaml.safe_load(Path(self.kubeconfig).read_text())
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        m = re.match(r"https?://([^:/]+|\[[^\]]+\])(?::(\d+))?", cluster["server"])
        if not m:
            raise ValueError(f"cannot parse server {cluster['server']!r}")
        self.apiserver_host_port = (m.group(1), int(m.group(2) or 443))
        if "certificate-authority-data" in cluster:
            self.ca_data = base64.b64decode(cluster["certificate-authority-data"])
        else:
            self.ca_data = Path(cluster["certificate-authority"]).read_bytes()

    # ------------------------------------------------------------------ public
    @property
    def image_map_file(self) -> Path:
        """Extra image-map entries, re-read at every pod start (JSON object): lets tests add
        images to an agent running in another process (``python -m tests.cluster up``)."""
        return self.work_dir / IMAGE_MAP_FILE

    def current_image_map(self) -> dict[str, list[str]]:
        merged = dict(self.image_map)
        try:
            merged.update(json.loads(self.image_map_file.read_text()))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable %s: %s", self.image_map_file, e)
        return merged

    @property
    def agent_log(self) -> Path:
        return self.work_dir / "agent.log"

    def __enter__(self) -> NodeAgent:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> NodeAgent:
        from kubernetes import client, config

        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "logs").mkdir(exist_ok=True)
        self._log_handler = logging.FileHandler(self.agent_log)
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s"))
        log.addHandler(self._log_handler)
        log.setLevel(logging.INFO)
        self._api = config.new_client_from_config(config_file=self.kubeconfig)
        self._watch_api = config.new_client_from_config(config_file=self.kubeconfig)
        self.core = client.CoreV1Api(self._api)
        self.coord = client.CoordinationV1Api(self._api)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._register_node()
                self._heartbeat()
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node agent could not register node {self.node_name}: {e}") from e
                time.sleep(0.5)
        self._fail_orphans()
        for target, name in ((self._heartbeat_loop, "heartbeat"), (self._watch_loop, "pod-watch")):
            t = threading.Thread(target=target, name=f"node-agent-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("node agent for %s started (work dir %s)", self.node_name, self.work_dir)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            runs = list(self._runs.values())
        deadline = time.monotonic() + timeout
        for r in runs:
            r.done.wait(timeout=max(0.1, deadline - time.monotonic()))
        for t in self._threads:
            t.join(timeout=5)
        if self.delete_node_on_stop:
            try:
                self.core.delete_node(self.node_name, _preload_content=False)
            except Exception as e:
                log.info("could not delete node %s: %s", self.node_name, e)
        for api in (getattr(self, "_api", None), getattr(self, "_watch_api", None)):
            if api is not None:
                try:
                    api.close()
                except Exception as e:
                    log.info("closing API client: %r", e)
        if self._log_handler:
            log.removeHandler(self._log_handler)
            self._log_handler.close()

    # ------------------------------------------------------------------ node
    def _node_status(self) -> dict[str, Any]:
        cap = {
            "cpu": str(self.cpu),
            "memory": str(self.memory),
            "pods": str(self.pods),
            "ephemeral-storage": "100Gi",
            "nvidia.com/gpu": str(self.gpus),
        }
        now = _now()
        conds = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "modeldeploy test node agent is posting ready status",
            },
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": ""},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": ""},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": ""},
        ]
        for c in conds:
            c["lastHeartbeatTime"] = now
            c.setdefault("lastTransitionTime", self._started_iso)
        return {
            "status": {
                "capacity": cap,
                "allocatable": cap,
                "conditions": conds,
                "addresses": [
                    {"type": "InternalIP", "address": LOCAL_IP},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kernelVersion": os.uname().release,
                    "osImage": "modeldeploy test node agent",
                    "containerRuntimeVersion": "modeldeploy-test-agent://1",
                    "kubeletVersion": "v0.0.0-modeldeploy-test-agent",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def _register_node(self) -> None:
        from kubernetes.client.rest import ApiException

        self._started_iso = getattr(self, "_started_iso", None) or _now()
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "nvidia.com/gpu.present": "true",
            "modeldeploy.io/test-node": "true",
            **self.labels,
        }
        try:
            self.core.create_node(
                {"metadata": {"name": self.node_name, "labels": labels}, "spec": {}}, _preload_content=False
            )
        except ApiException as e:
            if e.status != 409:
                raise
            self.core.patch_node(self.node_name, {"metadata": {"labels": labels}}, _preload_content=False)
        node = json.loads(self.core.read_node(self.node_name, _preload_content=False).data)
        self._node_uid = node["metadata"]["uid"]
        self.core.patch_node_status(self.node_name, self._node_status(), _preload_content=False)

    def _fail_orphans(self) -> None:
        """Pods left Running by a previous agent process for this node cannot be resumed."""
        pods = json.loads(
            self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node_name}", _preload_content=False
            ).data
        )
        for p in pods.get("items", []):
            if p.get("status", {}).get("phase") == "Running":
                PodRun(self, p)._report_terminal(
                    exit_code=137,
                    reason="ContainerStatusUnknown",
                    message="the test node agent restarted; the process is gone",
                    pod_reason="NodeAgentRestarted",
                )

    def _heartbeat(self) -> None:
        from kubernetes.client.rest import ApiException

        lease = {
            "metadata": {
                "name": self.node_name,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": self._node_uid}
                ],
            },
            "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": _now_micro()},
        }
        try:
            self.coord.patch_namespaced_lease(
                self.node_name, "kube-node-lease", {"spec": lease["spec"]}, _preload_content=False
            )
        except ApiException as e:
            if e.status != 404:
                raise
            self.coord.create_namespaced_lease("kube-node-lease", lease, _preload_content=False)

    def _heartbeat_loop(self) -> None:
        last_status = 0.0
        while not self._stopping.wait(self.heartbeat_interval):
            try:
                self._heartbeat()
                if time.monotonic() - last_status > 2 * self.heartbeat_interval:
                    self.core.patch_node_status(self.node_name, self._node_status(), _preload_content=False)
                    last_status = time.monotonic()
            except Exception as e:
                if self._stopping.is_set():
                    return
                log.warning("heartbeat failed: %s", e)
                try:
                    self._register_node()  # node deleted under us?
                except Exception as e2:
                    log.warning("re-registering node failed: %r", e2)

    # ------------------------------------------------------------------ pods
    def _forget(self, uid: str) -> None:
        with self._lock:
            self._runs.pop(uid, None)

    def _handle(self, pod: dict[str, Any]) -> None:
        if self._stopping.is_set():
            return
        md = pod["metadata"]
        uid = md["uid"]
        phase = pod.get("status", {}).get("phase")
        with self._lock:
            run = self._runs.get(uid)
            if run is None:
                if md.get("deletionTimestamp"):
                    # Not (or no longer) running here: just remove it, like a kubelet.
                    threading.Thread(target=PodRun(self, pod)._delete_pod, daemon=True).start()
                    return
                if phase in ("Succeeded", "Failed"):
                    return
                run = PodRun(self, pod)
                self._runs[uid] = run
                run.thread.start()
                return
        run.pod = pod
        if md.get("deletionTimestamp"):
            run.delete_requested.set()

    def _watch_loop(self) -> None:
        from kubernetes import client, watch
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self._watch_api)
        sel = f"spec.nodeName={self.node_name}"
        rv = None
        last_list = 0.0
        while not self._stopping.is_set():
            try:
                if rv is None or time.monotonic() - last_list > self.resync_interval * 12:
                    data = json.loads(core.list_pod_for_all_namespaces(field_selector=sel, _preload_content=False).data)
                    for p in data.get("items", []):
                        self._handle(p)
                    rv = data["metadata"]["resourceVersion"]
                    last_list = time.monotonic()
                w = watch.Watch()
                for ev in w.stream(
                    core.list_pod_for_all_namespaces,
                    field_selector=sel,
                    resource_version=rv,
                    timeout_seconds=max(1, int(self.resync_interval)),
                    allow_watch_bookmarks=True,
                ):
                    if self._stopping.is_set():
                        w.stop()
                        break
                    obj = ev.get("raw_object") or {}
                    if ev["type"] == "ERROR":
                        rv = None
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self._handle(obj)
                    elif ev["type"] == "DELETED":
                        with self._lock:
                            run = self._runs.get(obj["metadata"]["uid"])
                        if run is not None:
                            run.delete_requested.set()
            except ApiException as e:
                if e.status == 410:
                    rv = None
                    continue
                if not self._stopping.is_set():
                    log.warning("pod watch error: %s", e)
                    rv = None
                    time.sleep(0.5)
            except Exception as e:
                if not self._stopping.is_set():
                    log.warning("pod watch error: %r", e)
                    rv = None
                    time.sleep(0.5)


# ============================================================================ CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.cluster.node_agent", description="modeldeploy TEST node agent (not a kubelet)."
    )
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--node-name", default="modeldeploy-gpu-node")
    ap.add_argument(
        "--image-map", default=None, help='JSON object {"image repo": ["argv", "prefix"]} (default: the built-in table)'
    )
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--cpu", default="8")
    ap.add_argument("--memory", default="32Gi")
    ap.add_argument("--extra-env", default=None, help="JSON object added to every pod's env")
    ap.add_argument("--keep-node", action="store_true", help="do not delete the Node on exit")
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    agent = NodeAgent(
        ns.kubeconfig,
        ns.node_name,
        image_map=json.loads(ns.image_map) if ns.image_map else None,
        work_dir=ns.work_dir,
        gpus=ns.gpus,
        cpu=ns.cpu,
        memory=ns.memory,
        extra_env=json.loads(ns.extra_env) if ns.extra_env else None,
        delete_node_on_stop=not ns.keep_node,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.start()
    print(f"node agent running for node {agent.node_name}; work dir {agent.work_dir}", flush=True)
    stop.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
