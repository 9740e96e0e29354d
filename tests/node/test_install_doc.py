"""docs/install.md, followed literally on a real node: the operator in-cluster from its image.

The document's ``sh`` blocks run as written and in order (install_doc.py): `kubectl create
namespace`, `helm install` of charts/modeldeploy-operator (the chart users install, default
values except the documented ``watchNamespaces``), `rollout status`, the CRD upgrade and
`helm upgrade --reuse-values`, the credentials Secret from the variables the document tells
the reader to export, its opt-in label, and `kubectl apply -f examples/calibration-deploy.yaml`
(the file as shipped) + `kubectl wait ... Succeeded`.

What is real: the control plane, the kubelet + containerd + runc node (node.py), the operator
image built from images/operator/Dockerfile running as the chart's pod (its ServiceAccount
token, the chart's RBAC, non-root, read-only root filesystem), the runtime image's Job pod,
a moto S3 server as the reader's bucket. Given to the test machine, not to the product:
the images carry the chart's default names (``ghcr.io/modeldeploy/<name>:<appVersion>``,
tagged in containerd: no registry here), the admission overlay of overlay.py (host network
+ the API server's address for pods, which stands in for a pod network and kube-proxy; CPU
instead of GPU for ModelDeployments) bound to the document's two namespaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import find_kubectl
from tests.e2e.dashboard import DASHBOARD, check_dashboard_returns_data
from tests.e2e.prometheus import PrometheusServer
from tests.e2e.tools import ToolError, ensure_helm, ensure_prometheus
from tests.integration.s3testkit import TEST_KEY_ID, TEST_SECRET
from tests.integration.s3testkit.moto import MotoServer

from .images import BuiltImage
from .install_doc import NOT_RUN, REPO, BlockFailed, check_known, run_block, sh_blocks
from .node import RealNode
from .overlay import (
    CPU_POLICY,
    POD_POLICY,
    apply_objects,
    binding,
    cpu_variant_policy,
    delete_objects,
    wait_cpu_policy_active,
    wait_pod_policy_active,
)

NAMESPACES = ["ml-team", "modeldeploy-system"]  # the document's
EXAMPLE = REPO / "examples" / "calibration-deploy.yaml"
CHART = REPO / "charts" / "modeldeploy-operator"
RELEASE_DEPLOYMENT = "modeldeploy-modeldeploy-operator"


def test_every_sh_block_is_run_or_listed_with_a_reason() -> None:
    """The fast half (no cluster): docs/install.md and NOT_RUN agree, so an edited block is
    noticed in `make test` even where the node tier does not run."""
    blocks = sh_blocks()
    to_run = check_known(blocks)
    assert to_run and len(to_run) + len(NOT_RUN) == len(blocks)
    assert all(reason.strip() for reason in NOT_RUN.values())
    joined = "".join(b.text for b in to_run)
    for step in ("helm install", "create secret", "examples/calibration-deploy.yaml", "wait mdep"):
        assert step in joined, f"docs/install.md no longer runs `{step}` in an sh block"


@pytest.fixture
def doc_env(control_plane: Any, tmp_path: Path) -> Iterator[tuple[dict[str, str], MotoServer]]:
    try:
        helm = ensure_helm()
    except ToolError as exc:
        pytest.fail(f"helm is needed and could not be built: {exc}", pytrace=False)
    moto = MotoServer()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG", "HELM_"))}
        env.update(
            PATH=os.pathsep.join([str(Path(find_kubectl()).parent), str(helm.parent), env.get("PATH", "")]),
            KUBECONFIG=str(control_plane.kubeconfig),
            HELM_CACHE_HOME=str(tmp_path / "helm/cache"),
            HELM_CONFIG_HOME=str(tmp_path / "helm/config"),
            HELM_DATA_HOME=str(tmp_path / "helm/data"),
            # The variables docs/install.md §3 tells the reader to export (their bucket: moto).
            AWS_ACCESS_KEY_ID=TEST_KEY_ID,
            AWS_SECRET_ACCESS_KEY=TEST_SECRET,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=moto.endpoint,
        )
        yield env, moto
    finally:
        moto.stop()


def s3_client(moto: MotoServer) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id=TEST_KEY_ID,
        aws_secret_access_key=TEST_SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )


def kget(cp: Any, ns: str, *args: str) -> Any:
    return json.loads(cp.kubectl("-n", ns, "get", *args, "-o", "json").stdout)


def diagnostics(cp: Any, node: RealNode) -> str:
    out = []
    for ns in NAMESPACES:
        out.append(cp.kubectl("-n", ns, "get", "all,mdep,events", check=False).stdout[-3000:])
        for pod in json.loads(cp.kubectl("-n", ns, "get", "pods", "-o", "json", check=False).stdout or "{}").get(
            "items", []
        ):
            name = pod["metadata"]["name"]
            out.append(f"--- {ns}/{name}: {json.dumps(pod.get('status'))[-1500:]}")
            out.append(cp.kubectl("-n", ns, "logs", name, "--tail=40", check=False).stdout)
    out.append(f"--- kubelet:\n{node.log('kubelet')[-3000:]}")
    return "\n".join(out)


@pytest.mark.node
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_install_doc_verbatim_operator_in_cluster_reaches_succeeded(
    control_plane: Any,
    real_node: RealNode,
    project_images: dict[str, BuiltImage],
    doc_env: tuple[dict[str, str], MotoServer],
    tmp_path: Path,
) -> None:
    cp, node = control_plane, real_node
    env, moto = doc_env
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    # The chart's default images, as a registry would serve them (no registry here).
    node.load_image(project_images["operator"].ref)
    node.tag_image(project_images["operator"].ref, f"ghcr.io/modeldeploy/operator:{app_version}")
    node.tag_image(project_images["runtime"].ref, f"ghcr.io/modeldeploy/runtime:{app_version}")
    example = yaml.safe_load(EXAMPLE.read_text())
    name = example["metadata"]["name"]
    bucket, _, prefix = example["spec"]["output"]["uri"].removeprefix("s3://").partition("/")
    s3 = s3_client(moto)
    s3.create_bucket(Bucket=bucket)  # the reader's bucket

    overlay = [
        binding(POD_POLICY, "modeldeploy-test-docs-pods", namespaces=NAMESPACES),
        cpu_variant_policy(),
        binding(CPU_POLICY, CPU_POLICY, namespaces=["ml-team"]),
    ]
    apply_objects(cp, overlay)

    def cr_failed() -> str | None:
        proc = cp.kubectl("-n", "ml-team", "get", "mdep", name, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        st = json.loads(proc.stdout).get("status") or {}
        return f"{name} Failed: {json.dumps(st.get('failure'))}" if st.get("phase") == "Failed" else None

    try:
        for block in check_known(sh_blocks()):
            if "examples/calibration-deploy.yaml" in block.text:
                # Both namespaces exist now: the overlay must be in force before the apply.
                wait_pod_policy_active(cp, node.name, "ml-team")
                wait_cpu_policy_active(cp, "ml-team", str(EXAMPLE))
            try:
                out = run_block(block, env, timeout=1200, abort=cr_failed)
            except BlockFailed as e:
                raise AssertionError(f"{e}\n{diagnostics(cp, node)}") from None
            print(f"--- docs/install.md line {block.line}:\n{out[-1500:]}")

        # The operator ran in-cluster: the chart's pod on the real node, as shipped.
        [op] = kget(cp, "modeldeploy-system", "pods", "-l", "app.kubernetes.io/name=modeldeploy-operator")["items"]
        assert op["spec"]["nodeName"] == node.name
        c = op["spec"]["containers"][0]
        assert c["image"] == f"ghcr.io/modeldeploy/operator:{app_version}"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True and op["spec"]["securityContext"]["runAsNonRoot"]
        assert op["spec"]["serviceAccountName"] == RELEASE_DEPLOYMENT
        [cs] = op["status"]["containerStatuses"]
        assert cs["ready"] and cs["restartCount"] == 0, cs
        # Inside the running container (kubectl exec: apiserver → kubelet → runc).
        ident = cp.kubectl("-n", "modeldeploy-system", "exec", op["metadata"]["name"], "--", "id", "-u").stdout
        assert ident.strip() == "10001"
        ro = cp.kubectl(
            "-n", "modeldeploy-system", "exec", op["metadata"]["name"], "--", "touch", "/opt/venv/x", check=False
        )
        assert ro.returncode != 0 and "Read-only file system" in ro.stderr, ro.stderr
        # Its metrics (on loopback through the overlay) describe the deployment.
        metrics = urllib.request.urlopen("http://127.0.0.1:8080/metrics", timeout=10).read().decode()
        assert re.search(rf'modeldeploy_\w+\{{[^}}]*name="{name}"', metrics), metrics[-2000:]
        # The dashboard the chart installed (the ConfigMap Grafana's sidecar loads) answers with
        # data from a real Prometheus scraping the in-cluster operator.
        [dash_cm] = kget(cp, "modeldeploy-system", "configmaps", "-l", "grafana_dashboard=1")["items"]
        [dash_json] = dash_cm["data"].values()
        assert json.loads(dash_json) == json.loads(DASHBOARD.read_text())
        try:
            prom_bin = ensure_prometheus()
        except ToolError as exc:
            pytest.fail(f"the Prometheus server is needed and could not be installed: {exc}", pytrace=False)
        with PrometheusServer(prom_bin, tmp_path / "prometheus", ["127.0.0.1:8080"], interval="1s") as prom:
            check_dashboard_returns_data(prom, "ml-team", name)

        # The ModelDeployment reached Succeeded and its artifacts are in the bucket as listed.
        cr = kget(cp, "ml-team", "mdep", name)
        st = cr["status"]
        assert st["phase"] == "Succeeded", st
        assert cr["spec"]["runtime"]["device"] == "cpu"  # the overlay, recorded on the object
        [job_pod] = kget(cp, "ml-team", "pods", "-l", f"modeldeploy.io/deployment={name}")["items"]
        assert job_pod["spec"]["containers"][0]["image"] == f"ghcr.io/modeldeploy/runtime:{app_version}"
        term = job_pod["status"]["containerStatuses"][0]["state"]["terminated"]
        results_uri = json.loads(term["message"])["results_uri"]
        assert results_uri.startswith(f"s3://{bucket}/{prefix}/"), results_uri
        run_prefix = results_uri.removeprefix(f"s3://{bucket}/").rsplit("/", 1)[0]
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{run_prefix}/manifest.json")["Body"].read())
        assert {"results.json", "report.md", "onnx/calibration_classifier.onnx"} <= {
            a["name"] for a in manifest["artifacts"]
        }
        for art in manifest["artifacts"]:
            data = s3.get_object(Bucket=bucket, Key=f"{run_prefix}/{art['name']}")["Body"].read()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (art["bytes"], art["sha256"]), art["name"]
        logs = cp.kubectl("-n", "ml-team", "logs", job_pod["metadata"]["name"]).stdout
        assert "succeeded" in logs and TEST_SECRET not in logs, logs[-2000:]
    finally:
        helm_uninstall = ["helm", "uninstall", "modeldeploy", "-n", "modeldeploy-system", "--wait", "--timeout", "2m"]
        subprocess.run(helm_uninstall, env=env, capture_output=True, timeout=180)
        for ns in NAMESPACES:
            cp.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
        delete_objects(cp, overlay[::-1])
