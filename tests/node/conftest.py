"""Fixtures of the image and real-node tiers (marker ``node``; see tests/cluster/README.md).

* ``project_images`` (session): installs the prerequisites (tests/node/install_prereqs.sh),
  makes the local base images and builds both Dockerfiles (cached by content hash).
* ``real_node`` (session): kubelet + containerd + runc on the session's control plane, the
  runtime image imported into containerd, and the pod overlay (overlay.py) for every pod
  of a namespace labelled ``modeldeploy.io/real-node=hostnetwork``: on this node with
  ``hostNetwork: true``, the API server at 127.0.0.1 for in-cluster clients, metrics and
  probes on loopback (the operator and its Job stay as shipped).
* ``node_namespace`` (function): a fresh namespace with that label.

A machine that lacks the capability outright (not root, no memory cgroup, no apt-get)
skips with the reason; a failed install, build or start is an ERROR.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import BUILD_SH, cache_root, k8s_version

from .images import BuiltImage, build_project_images, ensure_base_images
from .node import NodeError, RealNode, capability_gaps
from .overlay import (
    NODE_LABEL,
    POD_POLICY,
    apply_objects,
    binding,
    delete_objects,
    pod_network_policy,
    wait_pod_policy_active,
)

POD_BINDING = POD_POLICY


def _skip_if_incapable() -> None:
    gaps = capability_gaps()
    if gaps:
        pytest.skip("this machine cannot run a real node: " + "; ".join(gaps))


@pytest.fixture(scope="session")
def project_images() -> dict[str, BuiltImage]:
    _skip_if_incapable()
    images = build_project_images()
    for img in images.values():
        print(f"\nimage {img.summary()}")
    return images


def ensure_kubelet() -> Path:
    """kubelet from tests/cluster/build.sh (same Go module and cache as the control plane)."""
    kubelet = cache_root() / k8s_version() / "bin" / "kubelet"
    if os.access(kubelet, os.X_OK):
        return kubelet
    log = cache_root() / "build-kubelet.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        proc = subprocess.run(["bash", str(BUILD_SH)], stdout=subprocess.PIPE, stderr=f, timeout=3 * 3600)
    if proc.returncode != 0 or not os.access(kubelet, os.X_OK):
        raise NodeError(f"{BUILD_SH} did not produce {kubelet} (exit {proc.returncode}); log: {log}")
    return kubelet


@pytest.fixture(scope="session")
def real_node(
    control_plane: Any, project_images: dict[str, BuiltImage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    _skip_if_incapable()
    if control_plane.external:
        pytest.skip(
            "the real node needs a control plane started by this run (it signs the kubelet's "
            "client certificate with the cluster CA); unset MODELDEPLOY_KUBECONFIG_EXISTING"
        )
    kubelet = ensure_kubelet()
    _python_base, pause = ensure_base_images()
    node = RealNode(control_plane, tmp_path_factory.mktemp("real-node"), kubelet_bin=kubelet, pause_image=pause)
    with node:
        # Only the runtime image: this tier runs the operator as a local process.
        node.import_seconds = {"runtime": node.load_image(project_images["runtime"].ref)}
        print(
            f"\nreal node {node.name}: ready in {node.started_in_s:.0f}s, image import "
            + ", ".join(f"{k} {v:.0f}s" for k, v in node.import_seconds.items())
        )
        overlay = [
            pod_network_policy(node.name, int(control_plane.server.rsplit(":", 1)[1])),
            binding(POD_POLICY, POD_BINDING, label=True),
        ]
        apply_objects(control_plane, overlay)
        probe_ns = control_plane.create_namespace(
            f"node-policy-probe-{uuid.uuid4().hex[:5]}", labels={NODE_LABEL: "hostnetwork"}
        )
        try:
            wait_pod_policy_active(control_plane, node.name, probe_ns)
        finally:
            control_plane.kubectl("delete", "namespace", probe_ns, "--wait=false", check=False)
        yield node
        delete_objects(control_plane, overlay[::-1])


@pytest.fixture
def node_namespace(control_plane: Any, real_node: RealNode, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"node-{request.node.name[:20].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    control_plane.create_namespace(name, labels={NODE_LABEL: "hostnetwork"})
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
