"""A real Kubernetes node for tests: kubelet + containerd 1.6 + runc (+ CNI config) on this host.

    with RealNode(control_plane, work_dir, pause_image=...) as node:
        node.load_image("localhost/modeldeploy/runtime:abc")   # podman save | ctr images import -
        ...pods with nodeSelector {kubernetes.io/hostname: node.name}, imagePullPolicy Never...

What this kernel/VM allows and needs (measured, see tests/cluster/README.md "Real node"):

* cgroups v1 (hybrid): KubeletConfiguration ``failCgroupV1: false``, ``cgroupDriver:
  cgroupfs``; no swap accounting: ``failSwapOn: false``.
* Lowering oom_score_adj is refused: containerd's CRI ``restrict_oom_score_adj = true``
  (otherwise every sandbox fails with "can't get final child's PID from pipe: EOF").
* No registry: the sandbox (pause) image is built locally and named in ``sandbox_image``;
  images reach containerd via ``podman save --format docker-archive | ctr images import -``.
* Network: containerd and the kubelet run in the host's network namespace and the pods of
  this tier use ``hostNetwork: true`` (the moto S3 server on 127.0.0.1 is then reachable).
  The CNI config containerd gets is loopback-only: containerd needs one to report
  NetworkReady, and a pod WITHOUT hostNetwork then fails at sandbox creation instead of
  being wired to the host's interfaces — no pod traffic is ever routed over them.
* The kubelet sets host sysctls at start (vm.overcommit_memory=1, kernel.panic=10,
  kernel.panic_on_oops=1, ...; the alternative, protectKernelDefaults, refuses to start):
  the node records the previous values and writes them back when it stops.
* The node is named ``localhost``: kube-apiserver reaches a kubelet at the node's
  ``Hostname`` address first (kubectl logs/exec), the kubelet refuses a loopback node IP,
  and the kubelet serves on 127.0.0.1 only. Its API is anonymous + AlwaysAllow (the test
  apiserver presents no kubelet client certificate), reachable on 127.0.0.1 only.

containerd's root (content store, snapshots) persists under
``${MODELDEPLOY_NODE_CACHE:-~/.cache/modeldeploy/node}/containerd`` so an imported image is
reused by the next run (warm); one node at a time per cache (flock). Every process is
started and stopped by PID; ``stop()`` removes the pods' containers via the kubelet first.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import _tail, die_with_parent, free_port, terminate_pid

from .images import capability_gaps

__all__ = ["NodeError", "RealNode", "capability_gaps", "node_cache"]

NODE_NAME = "localhost"
# The kubelet sets these host sysctls when it starts (container manager "kernel tunables";
# only protectKernelDefaults=true avoids it, by refusing to start). The node restores the
# values it found when it stops.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"
SYSCTL_FILE = "sysctls-before-kubelet.json"


class NodeError(RuntimeError):
    """The node could not be started or an image not loaded (tests ERROR, never skip)."""


def node_cache() -> Path:
    return Path(os.environ.get("MODELDEPLOY_NODE_CACHE", Path.home() / ".cache/modeldeploy/node"))


def containerd_config(root: Path, state: Path, sock: Path, cni_conf_dir: Path, pause_image: str) -> str:
    """containerd 1.6 config (version 2 schema) for the CRI plugin of this node."""
    return f"""version = 2
root = "{root}"
state = "{state}"
oom_score = 0

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
    max_conf_num = 1
"""


LOOPBACK_ONLY_CNI = {
    "cniVersion": "1.0.0",
    "name": "modeldeploy-loopback-only",
    "plugins": [{"type": "loopback"}],
}


def kubelet_config(sock: Path, port: int, healthz_port: int, ca_path: Path, pod_logs: Path) -> dict[str, Any]:
    return {
        "podLogsDir": str(pod_logs),
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "containerRuntimeEndpoint": f"unix://{sock}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_path)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "registerNode": True,
        "rotateCertificates": False,
        "serializeImagePulls": False,
        # The shared disk is never ours to clean: no image GC, evict only when truly full.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 30,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "10Mi",
        "logging": {"format": "text"},
    }


class RealNode:
    """kubelet + containerd for the node ``localhost`` of ``control_plane``."""

    def __init__(
        self,
        control_plane: Any,
        work_dir: Path,
        *,
        kubelet_bin: Path | None,
        pause_image: str,
        start_timeout: float = 180.0,
    ):
        """``control_plane`` and ``kubelet_bin`` may be None for containerd alone
        (``start_containerd``; see ``preload_images``)."""
        self.cp = control_plane
        self.work_dir = Path(work_dir)
        self.kubelet_bin = Path(kubelet_bin) if kubelet_bin is not None else None
        self.pause_image = pause_image
        self.start_timeout = start_timeout
        self.name = NODE_NAME
        # unix socket paths must stay < 108 bytes: the run dir is short, not under pytest's tmp.
        self.run_dir = Path(tempfile.mkdtemp(prefix="mdnode-", dir="/run" if os.access("/run", os.W_OK) else None))
        self.sock = self.run_dir / "containerd.sock"
        self.log_dir = self.work_dir / "logs"
        self.cache = node_cache()
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock_fd: int | None = None
        self._sysctls: dict[str, str] = {}
        self.kubelet_port = free_port()
        self.started_in_s = 0.0

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RealNode:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RealNode:
        t0 = time.monotonic()
        self.start_containerd()
        if self.cp is None or self.kubelet_bin is None:
            raise NodeError("a node needs a control plane and a kubelet binary (containerd alone: start_containerd)")
        self._sysctls = {k: Path("/proc/sys", k).read_text().strip() for k in KUBELET_SYSCTLS}
        (self.cache / SYSCTL_FILE).write_text(json.dumps(self._sysctls))  # for a run killed before stop()
        kcfg = self.run_dir / "kubelet.yaml"
        kcfg.write_text(
            yaml.safe_dump(
                kubelet_config(self.sock, self.kubelet_port, free_port(), self.cp.ca_path, self.log_dir / "pods")
            )
        )
        self._spawn(
            "kubelet",
            [
                str(self.kubelet_bin),
                f"--config={kcfg}",
                f"--kubeconfig={self.cp.node_kubeconfig(self.name)}",
                f"--hostname-override={self.name}",
                f"--root-dir={self.run_dir / 'kubelet'}",
                f"--cert-dir={self.run_dir / 'kubelet-pki'}",
                "--v=1",
            ],
        )
        self._wait(self._ready, "kubelet (node Ready)", t0 + self.start_timeout)
        self.started_in_s = time.monotonic() - t0
        return self

    def start_containerd(self) -> RealNode:
        """containerd on the node cache's root (under its flock), the pause image imported:
        the kubelet's half of ``start`` needs this first; ``preload_images`` uses it alone."""
        t0 = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.cache / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise NodeError(f"another real node uses {self.cache} (flock held); run one node tier at a time") from e
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._recover_from_dead_run()
        (self.run_dir / "owner.pid").write_text(str(os.getpid()))
        cni_dir = self.run_dir / "cni"
        cni_dir.mkdir()
        (cni_dir / "10-loopback-only.conflist").write_text(json.dumps(LOOPBACK_ONLY_CNI))
        cfg = self.run_dir / "containerd.toml"
        cfg.write_text(
            containerd_config(self.cache / "containerd", self.run_dir / "state", self.sock, cni_dir, self.pause_image)
        )
        self._spawn("containerd", ["containerd", "--config", str(cfg)])
        self._wait(
            lambda: self.sock.exists() and self.ctr("version", check=False).returncode == 0,
            "containerd",
            t0 + self.start_timeout,
        )
        self.load_image(self.pause_image)
        return self

    def stop(self) -> None:
        """Delete what runs on the node, then stop kubelet and containerd (by PID)."""
        if "kubelet" in self._procs and self._procs["kubelet"].poll() is None and self.cp is not None:
            self.cp.kubectl(
                "delete",
                "pods",
                "-A",
                f"--field-selector=spec.nodeName={self.name}",
                "--wait=false",
                "--grace-period=1",
                check=False,
            )
        kubelet = self._procs.pop("kubelet", None)
        if kubelet is not None:
            terminate_pid(kubelet.pid, popen=kubelet)
        self._restore_sysctls()
        if "containerd" in self._procs:
            self._remove_all_containers()
        containerd = self._procs.pop("containerd", None)
        if containerd is not None:
            terminate_pid(containerd.pid, popen=containerd)
        self._unmount_run_dir()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self.cp is not None:
            self.cp.kubectl("delete", "node", self.name, "--ignore-not-found", "--wait=false", check=False)

    # ------------------------------------------------------------------ images
    def ctr(
        self, *args: str, check: bool = True, timeout: float = 600, stdin: Any = None
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["ctr", "--address", str(self.sock), "-n", "k8s.io", *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def has_image(self, ref: str) -> bool:
        out = self.ctr("images", "ls", "-q", check=False).stdout.split()
        return ref in out

    def load_image(self, ref: str) -> float:
        """``podman save`` (docker-archive) piped into ``ctr images import -``; returns seconds
        (0 if present).

        docker-archive, not oci-archive: podman's store holds layers uncompressed and the
        oci-archive writer gzips every layer (the 6.6 GB runtime image: ~6 min of one core,
        then containerd gunzips it again), while a docker archive carries the layer tars as
        they are. Streamed through a pipe: no 6.6 GB archive written to disk and read back.
        Layers containerd already holds (an earlier tag of the same image) are not unpacked
        again."""
        if self.has_image(ref):
            return 0.0
        t0 = time.monotonic()
        save = subprocess.Popen(
            ["podman", "save", "--format", "docker-archive", ref],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # docker-archive names the image by its full podman name (localhost/...), which
            # containerd keeps as is
            imp = self.ctr("images", "import", "-", stdin=save.stdout, check=False, timeout=1800)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
            save.wait(60)
        if save.returncode != 0:
            raise NodeError(f"podman save {ref} failed (exit {save.returncode}): {save_err.strip()[-2000:]}")
        if imp.returncode != 0:
            raise NodeError(f"ctr images import of {ref} failed (exit {imp.returncode}): {imp.stderr.strip()[-2000:]}")
        if not self.has_image(ref):
            raise NodeError(
                f"ctr images import did not register {ref}; images: {self.ctr('images', 'ls', '-q').stdout}"
            )
        return time.monotonic() - t0

    def tag_image(self, ref: str, name: str) -> None:
        """Give an imported image another name (e.g. the chart's default image), replacing
        whatever that name pointed to in the persistent content store."""
        self.ctr("images", "tag", "--force", ref, name)

    # ------------------------------------------------------------------ helpers
    def log(self, component: str) -> str:
        return _tail(self.log_dir / f"{component}.log", 60)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            self._procs[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.run_dir,
                preexec_fn=die_with_parent(),
            )
        finally:
            log.close()

    def _wait(self, ok: Any, what: str, deadline: float) -> None:
        while True:
            for name, p in self._procs.items():
                if p.poll() is not None:
                    raise NodeError(f"{name} exited with {p.returncode} while waiting for {what}:\n{self.log(name)}")
            if ok():
                return
            if time.monotonic() > deadline:
                raise NodeError(
                    f"{what} not ready within {self.start_timeout:.0f}s:\n"
                    + "\n".join(f"--- {n}:\n{self.log(n)}" for n in self._procs)
                )
            time.sleep(0.5)

    def _ready(self) -> bool:
        proc = self.cp.kubectl("get", "node", self.name, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conds = {c["type"]: c["status"] for c in json.loads(proc.stdout)["status"].get("conditions", [])}
        return conds.get("Ready") == "True"

    def _restore_sysctls(self) -> None:
        for key, value in self._sysctls.items():
            path = Path("/proc/sys", key)
            if path.read_text().strip() != value:
                path.write_text(value)
        self._sysctls = {}
        (self.cache / SYSCTL_FILE).unlink(missing_ok=True)

    def _recover_from_dead_run(self) -> None:
        """A run killed before stop() (we hold the cache lock, so it is dead) left host sysctls
        changed and mounts under its run dir: put the sysctls back, unmount, remove."""
        saved = self.cache / SYSCTL_FILE
        if saved.is_file():
            self._sysctls = json.loads(saved.read_text())
            self._restore_sysctls()
        for old in Path(self.run_dir.parent).glob("mdnode-*"):
            pid_file = old / "owner.pid"
            if old == self.run_dir or not pid_file.is_file():
                continue
            pid = int(pid_file.read_text() or 0)
            if pid and Path(f"/proc/{pid}").exists():
                continue
            stale = RealNode.__new__(RealNode)
            stale.run_dir = old
            stale._unmount_run_dir()

    def _remove_all_containers(self) -> None:
        """Stop and remove the tasks/containers the kubelet left (shims would outlive containerd)."""
        for cid in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False, timeout=30)
            self.ctr("tasks", "delete", "-f", cid, check=False, timeout=30)
            self.ctr("containers", "delete", cid, check=False, timeout=30)

    def _unmount_run_dir(self) -> None:
        """Unmount anything containerd/kubelet left mounted under the run dir, then remove it."""
        mounts = [
            ln.split()[1]
            for ln in Path("/proc/self/mounts").read_text().splitlines()
            if ln.split()[1].startswith(str(self.run_dir) + "/")
        ]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def preload_images(refs: list[str], *, pause_image: str, work_dir: Path) -> dict[str, float]:
    """Import images into the node cache's containerd ahead of the node tier, with containerd
    alone (no kubelet, no control plane); seconds per image, 0 for one already there.

    ``make test`` runs it (``python -m tests.node.images --preload``) beside the main suite,
    so a new runtime tag's import (minutes: tests/cluster/README.md) is not paid in series.
    The node cache's flock keeps it from overlapping a node."""
    node = RealNode(None, work_dir, kubelet_bin=None, pause_image=pause_image)
    try:
        node.start_containerd()
        return {ref: node.load_image(ref) for ref in refs}
    finally:
        node.stop()
