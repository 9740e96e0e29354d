"""pytest fixtures for the real test cluster (imported by tests/cluster/conftest.py).

Other test folders can reuse them with, in their conftest.py::

    from tests.cluster.fixtures import (  # noqa: F401
        control_plane, k8s_namespace, node_agent, pytest_collection_finish)

(the hook builds the binaries after collection, outside pytest-timeout's per-test limit).

* ``control_plane`` (session): builds the binaries if needed (tests/cluster/build.sh;
  a missing Go toolchain or a failed build is an ERROR, never a skip), starts a fresh
  control plane under pytest's tmp dir, yields the ``ControlPlane``, stops it.
  With ``MODELDEPLOY_KUBECONFIG_EXISTING=/path/to/kubeconfig`` it reuses that cluster
  (e.g. the one from ``python -m tests.cluster up``) and starts/stops nothing.
* ``node_agent`` (session): a ``NodeAgent`` registering the fake 1-GPU node
  ``modeldeploy-gpu-node`` with the default image table, authenticating as
  ``system:node:<name>``. When reusing a cluster started by ``python -m tests.cluster up``
  (which runs its own agent), yields a handle to that agent (node name, log paths).
* ``k8s_namespace`` (function): a fresh namespace (default ServiceAccount ready),
  deleted afterwards without waiting.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from .controlplane import STATE_FILE, ControlPlane, ControlPlaneError, cache_root, ensure_binaries, k8s_version
from .node_agent import IMAGE_MAP_FILE, NodeAgent, PodLogFiles, _safe, default_image_map

NODE_NAME = "modeldeploy-gpu-node"


class FileBackedImageMap(dict):
    """dict whose additions are written to the remote agent's image-map file
    (re-read by the agent at each pod start)."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(default_image_map())
        if path.is_file():
            super().update(json.loads(path.read_text()))

    def __setitem__(self, key: str, value: list[str]) -> None:
        super().__setitem__(key, list(value))
        extra = json.loads(self.path.read_text()) if self.path.is_file() else {}
        extra[key] = list(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(extra))
        tmp.replace(self.path)


class ExternalNodeAgent(PodLogFiles):
    """Handle to the node agent run by `python -m tests.cluster up` (same log layout)."""

    def __init__(self, node_name: str, work_dir: str):
        self.node_name = node_name
        self.work_dir = Path(work_dir)
        self.image_map = FileBackedImageMap(self.work_dir / IMAGE_MAP_FILE)

    @property
    def agent_log(self) -> Path:
        return self.work_dir.parent / "logs" / "node-agent.log"


_BUILD: dict[str, object] = {}


def pytest_collection_finish(session):
    """Build the binaries once collection is done, OUTSIDE any test's timeout (pytest-timeout
    would count a cold build — 10-25 min on 2 cores — against the first cluster test).
    A failure is stored and raised by the `control_plane` fixture, so tests ERROR, never skip."""
    if os.environ.get("MODELDEPLOY_KUBECONFIG_EXISTING") or _BUILD:
        return
    if not any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    log = cache_root() / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and not (cache_root() / k8s_version() / "bin" / ".stamp").exists():
        tr.write_line(
            f"tests/cluster: building the Kubernetes control plane {k8s_version()} "
            f"(cold build: 10-25 min on 2 cores; log: {log})"
        )
    try:
        _BUILD["bin_dir"] = ensure_binaries(log_file=log)
    except ControlPlaneError as e:
        _BUILD["error"] = e


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    existing = os.environ.get("MODELDEPLOY_KUBECONFIG_EXISTING")
    if existing:
        cp = ControlPlane.from_kubeconfig(existing)
        yield cp
        cp.stop()
        return
    if "error" in _BUILD:
        raise _BUILD["error"]
    cp = ControlPlane(tmp_path_factory.mktemp("k8s-control-plane"), _BUILD.get("bin_dir"))
    with cp:
        yield cp


@pytest.fixture(scope="session")
def node_agent(control_plane, tmp_path_factory):
    if control_plane.external:
        sf = control_plane.state_dir / STATE_FILE
        if sf.is_file():
            info = json.loads(sf.read_text()).get("node_agent")
            if info:
                yield ExternalNodeAgent(info["node_name"], info["work_dir"])
                return
    agent = NodeAgent(
        control_plane.node_kubeconfig(NODE_NAME),
        NODE_NAME,
        work_dir=tmp_path_factory.mktemp("node-agent"),
        delete_node_on_stop=False,  # a node may not delete itself (Node authorizer)
    )
    with agent:
        yield agent
    control_plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false")


@pytest.fixture
def k8s_namespace(control_plane, request):
    name = f"t-{_safe(request.node.name)[:30].lower().replace('_', '-').strip('-.')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    control_plane.create_namespace(name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
