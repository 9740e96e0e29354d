"""The Helm chart: `helm lint` clean, and `helm template` output valid for Kubernetes
(`kubernetes-validate --strict`) in every supported configuration, with the properties
issue #8 asks for (least-privilege RBAC from config/rbac, one Recreate replica, non-root,
read-only root, /healthz liveness, metrics port, dashboard ConfigMap).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helm import CHART, REPO, Helm

# The first test builds helm if it is not cached yet (~13 min cold on 2 cores).
pytestmark = pytest.mark.timeout(3600)

RELEASE, NS = "mdo", "modeldeploy-system"
# Kinds kubernetes-validate has no schema for (custom resources); validated structurally below.
CRD_KINDS = {"ServiceMonitor"}
# helm template assumes v1.20 without a cluster; render for the version kubernetes-validate checks.
KUBE_VERSION = "1.37.0"


@pytest.fixture(scope="module")
def helm(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_bin, tmp_path_factory.mktemp("helm-home"))


def render(helm: Helm, *sets: str, crds: bool = False) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "--namespace", NS, "--kube-version", KUBE_VERSION]
    if crds:
        args.append("--include-crds")
    for s in sets:
        args += ["--set", s]
    out = helm.run(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _validator() -> str:
    exe = shutil.which("kubernetes-validate") or str(Path(sys.executable).with_name("kubernetes-validate"))
    if not Path(exe).exists():
        pytest.fail("kubernetes-validate not found: it comes with the dev extra; run `make setup`")
    return exe


def validate_strict(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    checked = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert checked
    f = tmp_path / "rendered.yaml"
    f.write_text(yaml.safe_dump_all(checked, sort_keys=False))
    proc = subprocess.run([_validator(), "--strict", str(f)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout and "WARN" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("rbac.scope=cluster",),
        ("metrics.serviceMonitor.enabled=true",),
        ("dashboards.enabled=false", "metrics.service.enabled=false"),
    ],
)
def test_helm_lint_strict_is_clean(helm: Helm, sets: tuple[str, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for s in sets:
        args += ["--set", s]
    proc = helm.run(*args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("rbac.scope=cluster",),
        ("watchNamespaces={team-a,team-b}",),
        ("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps"),
    ],
)
def test_rendered_manifests_pass_kubernetes_validate_strict(helm: Helm, sets: tuple[str, ...], tmp_path: Path) -> None:
    docs = render(helm, *sets, crds=True)
    validate_strict(docs, tmp_path)
    if any("serviceMonitor.enabled=true" in s for s in sets):
        (sm,) = kinds(docs, "ServiceMonitor")
        (svc,) = kinds(docs, "Service")
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        assert sm["metadata"]["labels"]["release"] == "kps"
        assert all(svc["metadata"]["labels"][k] == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
        assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
        assert sm["spec"]["namespaceSelector"]["matchNames"] == [NS]
    else:
        assert not kinds(docs, "ServiceMonitor")


def test_crd_rendered_by_helm_is_the_repositorys_crd(helm: Helm) -> None:
    (crd,) = kinds(render(helm, crds=True), "CustomResourceDefinition")
    assert crd == yaml.safe_load((REPO / "crds" / "modeldeployment.yaml").read_text())
    assert not kinds(render(helm), "CustomResourceDefinition"), "the CRD must live in crds/, not templates/"


def test_rbac_rules_equal_config_rbac_in_both_scopes(helm: Helm) -> None:
    rules = yaml.safe_load((REPO / "config" / "rbac" / "role.yaml").read_text())["rules"]
    ns_docs = render(helm, "watchNamespaces={team-a,team-b}")
    roles = kinds(ns_docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(r["rules"] == rules for r in roles)
    bindings = kinds(ns_docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": RELEASE + "-modeldeploy-operator",
        }
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE + "-modeldeploy-operator", "namespace": NS}]
    assert not kinds(ns_docs, "ClusterRole") and not kinds(ns_docs, "ClusterRoleBinding")
    env = {
        e["name"]: e.get("value")
        for e in kinds(ns_docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELDEPLOY_NAMESPACES"] == "team-a,team-b" and "MODELDEPLOY_ALL_NAMESPACES" not in env

    cl_docs = render(helm, "rbac.scope=cluster")
    (cr,) = kinds(cl_docs, "ClusterRole")
    assert cr["rules"] == rules
    (crb,) = kinds(cl_docs, "ClusterRoleBinding")
    assert crb["roleRef"]["kind"] == "ClusterRole" and crb["subjects"][0]["namespace"] == NS
    assert not kinds(cl_docs, "Role")
    env = {
        e["name"]: e.get("value")
        for e in kinds(cl_docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELDEPLOY_ALL_NAMESPACES"] == "true" and "MODELDEPLOY_NAMESPACES" not in env


def test_default_scope_serves_the_release_namespace_only(helm: Helm) -> None:
    docs = render(helm)
    assert [r["metadata"]["namespace"] for r in kinds(docs, "Role")] == [NS]
    dep = kinds(docs, "Deployment")[0]
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELDEPLOY_NAMESPACES"] == NS


def test_deployment_shape(helm: Helm) -> None:
    docs = render(helm, "runtimeDefaults.image.tag=9.9.9", "metrics.port=9123")
    (dep,) = kinds(docs, "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (sa,) = kinds(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    assert "command" not in c  # the image ENTRYPOINT runs (tests/unit/chart/test_images.py)
    assert c["image"] == "ghcr.io/modeldeploy/operator:0.1.0"
    sc = c["securityContext"]
    assert (
        sc["readOnlyRootFilesystem"] is True
        and sc["allowPrivilegeEscalation"] is False
        and sc["capabilities"]["drop"] == ["ALL"]
    )
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9123, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MODELDEPLOY_RUNTIME_IMAGE"] == "ghcr.io/modeldeploy/runtime:9.9.9"
    assert env["MODELDEPLOY_METRICS_PORT"] == "9123" and env["MODELDEPLOY_METRICS_HOST"] == "0.0.0.0"
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    (svc,) = kinds(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]


def test_digest_pins_override_tags(helm: Helm) -> None:
    digest = "sha256:" + "a" * 64
    dep = kinds(render(helm, f"image.digest={digest}", f"runtimeDefaults.image.digest={digest}"), "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == f"ghcr.io/modeldeploy/operator@{digest}"
    assert {e["name"]: e.get("value") for e in c["env"]}[
        "MODELDEPLOY_RUNTIME_IMAGE"
    ] == f"ghcr.io/modeldeploy/runtime@{digest}"


def test_dashboard_configmap_carries_the_dashboard_for_the_grafana_sidecar(helm: Helm) -> None:
    (cm,) = kinds(render(helm, "dashboards.namespace=monitoring"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    shipped = json.loads((CHART / "dashboards" / "modeldeploy.json").read_text())
    assert json.loads(cm["data"]["modeldeploy.json"]) == shipped


def test_values_schema_refuses_unknown_keys_at_install_time(helm: Helm) -> None:
    proc = helm.run(
        "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, "--set", "metrics.prot=1", check=False
    )
    assert proc.returncode != 0 and "additional properties" in proc.stderr.lower(), proc.stderr
    proc = helm.run(
        "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, "--set", "rbac.scope=everything", check=False
    )
    assert proc.returncode != 0 and "rbac" in proc.stderr, proc.stderr


def test_runtime_default_resources_reach_the_operator_env(helm: Helm) -> None:
    docs = render(helm, "runtimeDefaults.resources.requests.cpu=500m", "runtimeDefaults.resources.limits.memory=16Gi")
    (dep,) = kinds(docs, "Deployment")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["MODELDEPLOY_RUNTIME_RESOURCES"]) == {
        "requests": {"cpu": "500m"},
        "limits": {"memory": "16Gi"},
    }
    (dep,) = kinds(render(helm), "Deployment")
    assert "MODELDEPLOY_RUNTIME_RESOURCES" not in {
        e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }
