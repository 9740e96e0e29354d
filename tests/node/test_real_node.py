"""The project's Jobs as real pods: kubelet + containerd + runc running the runtime image.

What is real: the control plane (tests/cluster), the kubelet v1.37 built from its Go module,
Debian's containerd 1.6 and runc, the runtime image built from images/runtime/Dockerfile
(cpu-test target), the operator (a local process under its production RBAC, as in
tests/cluster), its Job, a moto S3 server on 127.0.0.1. The overlay of this tier: a
MutatingAdmissionPolicy puts the namespace's pods on the real node with hostNetwork
(conftest.py); nothing in the operator or the Job is changed for the test.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_operator import jobs as jobsmod
from modeldeploy_operator import spec as specmod
from modeldeploy_operator.config import OperatorConfig
from tests.cluster.operator_harness import OperatorProcess, apply, install_operator_rbac
from tests.cluster.waiting import wait_for
from tests.integration.s3testkit import TEST_KEY_ID, TEST_SECRET
from tests.integration.s3testkit.moto import MotoServer

from .images import BuiltImage
from .node import RealNode

pytestmark = [pytest.mark.node, pytest.mark.slow, pytest.mark.timeout(3600)]

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
SECRET = "s3-credentials"
RUN_TIMEOUT = 900


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(moto: MotoServer) -> Any:
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


@pytest.fixture
def operator(
    control_plane: Any, node_namespace: str, project_images: dict[str, BuiltImage], moto: MotoServer, tmp_path: Any
) -> Iterator[OperatorProcess]:
    kubeconfig = install_operator_rbac(control_plane, node_namespace)
    control_plane.kubectl(
        "-n",
        node_namespace,
        "create",
        "secret",
        "generic",
        SECRET,
        f"--from-literal=AWS_ACCESS_KEY_ID={TEST_KEY_ID}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={TEST_SECRET}",
        f"--from-literal=AWS_ENDPOINT_URL={moto.endpoint}",
        "--from-literal=AWS_DEFAULT_REGION=us-east-1",
    )
    op = OperatorProcess(
        kubeconfig,
        node_namespace,
        tmp_path / "operator",
        extra_args=["--resync-interval", "2", "--log-format", "json"],
        env={"MODELDEPLOY_RUNTIME_IMAGE": project_images["runtime"].ref},
    )
    op.start()
    yield op
    op.stop()


def calibration_cr(name: str, ns: str, image: str, bucket: str, **runtime: Any) -> dict[str, Any]:
    """A calibration deployment on CPU with the image's builtin config, checkpoint and sample."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "project": "calibration",
            "modelConfig": {"uri": "builtin:calibration/resnet18_5ch_tiny.py"},
            "deployConfig": {"uri": "builtin:calibration/deploy_demo.py"},
            "checkpoint": {"uri": "builtin:calibration/resnet18_5ch_tiny.pth"},
            "export": {"mode": "onnx", "precision": "auto", "opset": 17},
            "verification": {"enabled": True, "tolerance": 0.01, "numSamples": 2},
            "evaluation": {"enabled": True, "numSamples": 8},
            "output": {"uri": f"s3://{bucket}/modeldeploy/{name}"},
            "credentialsSecretRef": {"name": SECRET},
            "runtime": {
                "image": image,
                "imagePullPolicy": "Never",
                "device": "cpu",
                "backoffLimit": 0,
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}},
                **runtime,
            },
        },
    }


def kjson(cp: Any, ns: str, *args: str) -> Any:
    return json.loads(cp.kubectl("-n", ns, "get", *args, "-o", "json").stdout)


def status_of(cp: Any, ns: str, name: str) -> dict[str, Any]:
    return kjson(cp, ns, "modeldeployment", name).get("status") or {}


def pods_of(cp: Any, ns: str, name: str) -> list[dict[str, Any]]:
    return kjson(cp, ns, "pods", "-l", f"modeldeploy.io/deployment={name}")["items"]


def diagnostics(cp: Any, ns: str, name: str, node: RealNode, op: OperatorProcess) -> str:
    out = [f"status: {json.dumps(status_of(cp, ns, name))[-3000:]}"]
    for pod in pods_of(cp, ns, name):
        pn = pod["metadata"]["name"]
        out.append(f"--- pod {pn}: {json.dumps(pod.get('status'))[-2000:]}")
        out.append(cp.kubectl("-n", ns, "logs", pn, check=False).stdout[-3000:])
    out.append(cp.kubectl("-n", ns, "get", "events", check=False).stdout[-3000:])
    out.append(f"--- operator:\n{op.log()[-2000:]}\n--- kubelet:\n{node.log('kubelet')[-3000:]}")
    return "\n".join(out)


def wait_terminal(cp: Any, ns: str, name: str, node: RealNode, op: OperatorProcess, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        st = status_of(cp, ns, name)
        return st if st.get("phase") in ("Succeeded", "Failed") else None

    return wait_for(
        done, timeout, f"{name} Succeeded/Failed", interval=2, on_timeout=lambda: diagnostics(cp, ns, name, node, op)
    )


def test_deployment_runs_as_a_real_pod_and_publishes_to_s3(
    control_plane: Any,
    real_node: RealNode,
    node_namespace: str,
    operator: OperatorProcess,
    project_images: dict[str, BuiltImage],
    s3: Any,
) -> None:
    cp, ns = control_plane, node_namespace
    bucket = f"node-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    name = "calib-real"
    apply(cp, calibration_cr(name, ns, project_images["runtime"].ref, bucket))
    st = wait_terminal(cp, ns, name, real_node, operator, RUN_TIMEOUT)
    assert st["phase"] == "Succeeded", diagnostics(cp, ns, name, real_node, operator)

    [pod] = pods_of(cp, ns, name)
    # The admission overlay put it on the real node, in the host network namespace.
    assert pod["spec"]["nodeName"] == real_node.name and pod["spec"]["hostNetwork"] is True
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    # The kubelet read /dev/termination-log: the runtime's compact summary.
    summary = json.loads(term["message"])
    prefix = f"s3://{bucket}/modeldeploy/{name}"
    assert summary["results_uri"].startswith(prefix + "/") and summary["results_uri"].endswith("/results.json")

    # Credentials reached the pod only through the Secret (secretKeyRef env): the upload worked...
    key = summary["results_uri"][len(f"s3://{bucket}/") :]
    results = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert results["status"] == "succeeded"
    run_prefix = key.rsplit("/", 1)[0]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=run_prefix + "/manifest.json")["Body"].read())
    names = {a["name"] for a in manifest["artifacts"]}
    assert {"results.json", "report.md", "onnx/calibration_classifier.onnx"} <= names
    # Every object the manifest lists is in S3 with the recorded size and sha256.
    for art in manifest["artifacts"]:
        data = s3.get_object(Bucket=bucket, Key=f"{run_prefix}/{art['name']}")["Body"].read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (art["bytes"], art["sha256"]), art["name"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == SECRET

    # kubectl logs goes apiserver → kubelet → containerd's log file.
    logs = cp.kubectl("-n", ns, "logs", pod["metadata"]["name"]).stdout
    assert logs.strip(), "empty kubectl logs"
    assert re.search(r"export|verif|evaluat", logs, re.I), logs[-2000:]
    # ...and the secret value is nowhere in what users see.
    for text in (logs, term["message"], json.dumps(st)):
        assert TEST_SECRET not in text


def test_memory_limit_kills_the_pod_and_the_cr_says_oomkilled(
    control_plane: Any,
    real_node: RealNode,
    node_namespace: str,
    operator: OperatorProcess,
    project_images: dict[str, BuiltImage],
    s3: Any,
) -> None:
    cp, ns = control_plane, node_namespace
    name = "calib-oom"
    body = calibration_cr(
        name,
        ns,
        project_images["runtime"].ref,
        "unused-bucket",
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
    )
    apply(cp, body)
    st = wait_terminal(cp, ns, name, real_node, operator, 300)
    assert st["phase"] == "Failed", st
    assert st["failure"]["reason"] == "OOMKilled", diagnostics(cp, ns, name, real_node, operator)
    [pod] = pods_of(cp, ns, name)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137, term


def test_active_deadline_ends_in_deadline_exceeded(
    control_plane: Any,
    real_node: RealNode,
    node_namespace: str,
    operator: OperatorProcess,
    project_images: dict[str, BuiltImage],
    s3: Any,
) -> None:
    cp, ns = control_plane, node_namespace
    name = "calib-deadline"
    # An S3 endpoint that accepts and never answers: the Job's preflight blocks until the
    # deadline. With moto's endpoint the runtime could reach preflight within 8 s on a warm
    # page cache and fail with ArtifactStoreError first (seen in a warm fresh-clone make test).
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    cp.kubectl(
        "-n", ns, "create", "secret", "generic", "silent-s3",
        f"--from-literal=AWS_ACCESS_KEY_ID={TEST_KEY_ID}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={TEST_SECRET}",
        f"--from-literal=AWS_ENDPOINT_URL=http://127.0.0.1:{silent.getsockname()[1]}",
        "--from-literal=AWS_DEFAULT_REGION=us-east-1",
    )  # fmt: skip
    body = calibration_cr(name, ns, project_images["runtime"].ref, "unused-bucket", activeDeadlineSeconds=8)
    body["spec"]["credentialsSecretRef"] = {"name": "silent-s3"}
    apply(cp, body)
    try:
        st = wait_terminal(cp, ns, name, real_node, operator, 300)
    finally:
        silent.close()
    assert st["phase"] == "Failed", st
    assert st["failure"]["reason"] == "DeadlineExceeded", diagnostics(cp, ns, name, real_node, operator)
    job = kjson(cp, ns, "jobs", "-l", f"modeldeploy.io/deployment={name}")["items"][0]
    assert any(c["type"] == "Failed" and c.get("reason") == "DeadlineExceeded" for c in job["status"]["conditions"])


def job_pod(ns: str, image: str) -> dict[str, Any]:
    """The pod the operator's Job builder makes for a CR (same securityContext, volumes, mounts)."""
    body = calibration_cr("probe", ns, image, "unused-bucket")
    del body["spec"]["credentialsSecretRef"]  # these probes talk to no S3
    body["metadata"].update(uid=str(uuid.uuid4()), generation=1)
    job = jobsmod.build_job(body, specmod.spec_hash(body["spec"]), OperatorConfig())
    tmpl = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"probe-{uuid.uuid4().hex[:6]}", "namespace": ns, "labels": tmpl["metadata"]["labels"]},
        "spec": tmpl["spec"],
    }


def run_pod(cp: Any, node: RealNode, pod: dict[str, Any], timeout: float = 180) -> tuple[dict[str, Any], str]:
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    cp.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def finished() -> dict[str, Any] | None:
        p = kjson(cp, ns, "pod", name)
        return p if p["status"].get("phase") in ("Succeeded", "Failed") else None

    p = wait_for(
        finished,
        timeout,
        f"pod {name} to finish",
        interval=1,
        on_timeout=lambda: json.dumps(kjson(cp, ns, "pod", name)["status"]) + "\n" + node.log("kubelet"),
    )
    return p, cp.kubectl("-n", ns, "logs", name).stdout


def test_job_pod_has_a_read_only_root_and_writable_emptydirs(
    control_plane: Any, real_node: RealNode, node_namespace: str, project_images: dict[str, BuiltImage]
) -> None:
    pod = job_pod(node_namespace, project_images["runtime"].ref)
    c = pod["spec"]["containers"][0]
    c["command"] = ["bash", "-c"]
    c["args"] = [
        "id -u; touch /opt/venv/x 2>&1 || true; touch /work/w /tmp/t && echo emptydirs-writable; "
        "cat /etc/modeldeploy/job/spec.json >/dev/null 2>&1 || echo no-configmap"
    ]
    # The ConfigMap volume the Job mounts must exist for the pod to start.
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": pod["spec"]["volumes"][0]["configMap"]["name"], "namespace": node_namespace},
        "data": {"spec.json": "{}"},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(cm))
    p, logs = run_pod(control_plane, real_node, pod)
    assert p["status"]["phase"] == "Succeeded", (p["status"], logs)
    lines = logs.splitlines()
    assert lines[0] == "1000", logs
    assert "Read-only file system" in logs, logs
    assert "emptydirs-writable" in logs and "no-configmap" not in logs, logs


def test_kubelet_enforces_run_as_non_root(
    control_plane: Any, real_node: RealNode, node_namespace: str, project_images: dict[str, BuiltImage]
) -> None:
    """runAsNonRoot with a root uid: the kubelet refuses to start the container."""
    pod = job_pod(node_namespace, project_images["runtime"].ref)
    pod["spec"]["volumes"] = []
    c = pod["spec"]["containers"][0]
    c["volumeMounts"] = []
    c["securityContext"]["runAsUser"] = 0
    c["command"], c["args"] = ["true"], []
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))
    ns, name = node_namespace, pod["metadata"]["name"]

    def refused() -> dict[str, Any] | None:
        st = kjson(control_plane, ns, "pod", name)["status"]
        for cs in st.get("containerStatuses") or []:
            w = (cs.get("state") or {}).get("waiting") or {}
            if w.get("reason") == "CreateContainerConfigError":
                return w
        return None

    w = wait_for(
        refused, 120, f"pod {name} refused by the kubelet", interval=1, on_timeout=lambda: real_node.log("kubelet")
    )
    assert "non-root" in w["message"], w
