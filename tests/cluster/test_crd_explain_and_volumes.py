"""Issue #15 items 6/7 on the real control plane: `kubectl explain` prints the CRD's field
descriptions, `kubectl get` prints the rounded latency column, the CRD's CEL rules refuse
hostPath volumes / reserved env names / reserved mount paths, and the operator's Job gets
spec.runtime.volumes (a PVC), volumeMounts and extra env — which reach the runtime process
(run by the test node agent with the fake runtime), a user Secret's value scrubbed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_operator.spec import child_name, spec_hash

from .operator_harness import (
    FAKE_IMAGE,
    OperatorProcess,
    apply,
    cr_manifest,
    install_crd,
    install_operator_rbac,
    register_fake_image,
    wait_for,
)

pytestmark = pytest.mark.cluster

PVC_RUNTIME = {
    "volumes": [
        {"name": "datasets", "persistentVolumeClaim": {"claimName": "t4dataset", "readOnly": True}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": "modeldeploy-cache"}},
    ],
    "volumeMounts": [
        {"name": "datasets", "mountPath": "/data", "readOnly": True},
        {"name": "cache", "mountPath": "/cache"},
    ],
    "env": [
        {"name": "MODELDEPLOY_CACHE", "value": "/cache"},
        {"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/minio/ca.crt"},
    ],
}


def test_kubectl_explain_prints_the_field_descriptions(control_plane):
    install_crd(control_plane)
    out = wait_for(
        lambda: (
            (r := control_plane.kubectl("explain", "modeldeployment.spec.export", check=False)).returncode == 0
            and r.stdout
        ),
        60,
        "kubectl explain to see the CRD's OpenAPI",
    )
    assert "what to export and how" in out
    assert "TensorRT precision policy" in out and "ONNX opset version" in out
    vols = control_plane.kubectl("explain", "modeldeployment.spec.runtime.volumes").stdout
    assert "persistentVolumeClaim" in vols and "emptyDir" in vols
    assert (
        "hostPath" not in control_plane.kubectl("explain", "modeldeployment.spec.runtime.volumes", "--recursive").stdout
    )


def test_latency_column_is_rounded_with_its_unit(control_plane, k8s_namespace):
    install_crd(control_plane)
    ns = k8s_namespace  # no operator serves it: the status below stays as written
    apply(control_plane, cr_manifest("printer", ns))
    status = {
        "status": {
            "phase": "Succeeded",
            "headline": {
                "backend": "tensorrt",
                "precision": "fp16",
                "metric": "mAP",
                "value": 0.612345,
                "p50Ms": 159.6021599999915,
            },
            "summary": {"latencyP50": "159.6 ms", "metric": "mAP 0.6123", "backend": "tensorrt fp16"},
        }
    }
    control_plane.kubectl(
        "-n",
        ns,
        "patch",
        "modeldeployment",
        "printer",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    table = control_plane.kubectl("-n", ns, "get", "mdep", "printer").stdout
    assert "LATENCY P50" in table and "159.6 ms" in table and "159.602" not in table, table
    wide = control_plane.kubectl("-n", ns, "get", "mdep", "printer", "-o", "wide").stdout
    assert "METRIC" in wide and "mAP 0.6123" in wide, wide


@pytest.mark.parametrize(
    "runtime, needle",
    [
        (
            {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
            'unknown field "spec.runtime.volumes[0].hostPath"',
        ),
        ({"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]}, "may not set the operator's own variables"),
        ({"env": [{"name": "MODELDEPLOY_SECRET_ENV", "value": ""}]}, "may not set the operator's own variables"),
        (
            {"volumes": [{"name": "v", "emptyDir": {}}], "volumeMounts": [{"name": "v", "mountPath": "/work"}]},
            "mountPath may not be",
        ),
        ({"volumes": [{"name": "work", "emptyDir": {}}]}, "are the operator's own"),
    ],
)
def test_the_api_server_refuses_forbidden_volumes_and_env(control_plane, k8s_namespace, runtime, needle):
    install_crd(control_plane)
    body = cr_manifest("bad", k8s_namespace, runtime=runtime)
    body["spec"]["runtime"].update(runtime)
    r = apply(control_plane, body, check=False)
    assert r.returncode != 0 and needle in r.stderr, r.stderr


def test_a_hostpath_volume_pruned_by_a_lax_client_is_still_refused(control_plane, k8s_namespace):
    """Without strict field validation the API server prunes the unknown hostPath field;
    the entry is then left without a source and the CRD's CEL rule refuses it."""
    install_crd(control_plane)
    body = cr_manifest("lax", k8s_namespace)
    body["spec"]["runtime"]["volumes"] = [{"name": "host", "hostPath": {"path": "/"}}]
    r = control_plane.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(body), check=False)
    assert r.returncode != 0 and "other volume types, e.g. hostPath, are not allowed" in r.stderr, r.stderr


def _start_operator(cp: Any, ns: str, log_dir: Path) -> OperatorProcess:
    kubeconfig = install_operator_rbac(cp, ns)
    return OperatorProcess(
        kubeconfig,
        ns,
        log_dir,
        extra_args=["--resync-interval", "1", "--log-format", "json"],
        env={"MODELDEPLOY_RUNTIME_IMAGE": FAKE_IMAGE},
    ).start()


def test_job_gets_the_pvc_mounts_and_env_and_the_env_reaches_the_runtime(
    control_plane, node_agent, k8s_namespace, tmp_path
):
    cp, ns = control_plane, k8s_namespace
    register_fake_image(node_agent)
    op = _start_operator(cp, ns, tmp_path)
    try:
        # 1. a PVC volume + extra env: the Job carries them (the claim does not exist: the pod
        #    stays Pending, which is all a Job object check needs)
        body = cr_manifest("pvc", ns)
        body["spec"]["runtime"].update(PVC_RUNTIME)
        apply(cp, body)
        spec = json.loads(cp.kubectl("-n", ns, "get", "mdep", "pvc", "-o", "json").stdout)["spec"]
        job_name = child_name("pvc", spec_hash(spec))
        job = wait_for(
            lambda: (
                (r := cp.kubectl("-n", ns, "get", "job", job_name, "-o", "json", check=False)).returncode == 0
                and json.loads(r.stdout)
            ),
            60,
            f"Job {job_name}",
            on_timeout=op.log,
        )
        pod = job["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["datasets"]["persistentVolumeClaim"] == {"claimName": "t4dataset", "readOnly": True}
        assert vols["cache"]["persistentVolumeClaim"]["claimName"] == "modeldeploy-cache"
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["datasets"] == "/data" and mounts["cache"] == "/cache" and mounts["work"] == "/work"
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["MODELDEPLOY_CACHE"] == "/cache" and env["AWS_CA_BUNDLE"] == "/etc/ssl/minio/ca.crt"

        # 2. a ConfigMap volume + env from a value and from a Secret reach the process; the
        #    Secret's value is scrubbed from the status (fake_leak puts it in the failure message)
        cp.kubectl("-n", ns, "create", "configmap", "minio-ca", "--from-literal=ca.crt=-----BEGIN CERTIFICATE-----")
        cp.kubectl("-n", ns, "create", "secret", "generic", "hf", "--from-literal=token=hf-token-98765")
        run = cr_manifest("run", ns, deploy_inline="fake_exit = 2\nfake_leak = HF_TOKEN\n")
        run["spec"]["runtime"].update(
            {
                "volumes": [{"name": "minio-ca", "configMap": {"name": "minio-ca"}}],
                "volumeMounts": [{"name": "minio-ca", "mountPath": "/etc/ssl/minio", "readOnly": True}],
                "env": [
                    {"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/minio/ca.crt"},
                    {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                ],
            }
        )
        apply(cp, run)

        def failed() -> dict[str, Any] | None:
            st = json.loads(cp.kubectl("-n", ns, "get", "mdep", "run", "-o", "json").stdout).get("status") or {}
            return st if st.get("phase") == "Failed" and st.get("failure") else None

        st = wait_for(failed, 90, "the run to fail with the leaked value", on_timeout=op.log)
        assert "hf-token-98765" not in json.dumps(st), st["failure"]
        assert "[redacted]" in st["failure"]["message"], st["failure"]
        job = json.loads(cp.kubectl("-n", ns, "get", "job", st["jobName"], "-o", "json").stdout)
        env_names = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "HF_TOKEN" in env_names["MODELDEPLOY_SECRET_ENV"]["value"].split(",")
    finally:
        op.stop()


def test_admission_policy_narrows_the_volume_types(control_plane, k8s_namespace, tmp_path):
    """The chart's ValidatingAdmissionPolicy rendered by helm with policy.allowedVolumeTypes
    [persistentVolumeClaim, configMap]: an emptyDir volume is refused naming the rule, a PVC
    is admitted; the operator gets the same list in MODELDEPLOY_POLICY."""
    import uuid

    from .test_operator_safety import POLICY_LABEL, helm_template

    cp, ns = control_plane, k8s_namespace
    install_crd(cp)
    tag = uuid.uuid4().hex[:6]
    values = {
        "fullnameOverride": f"vol-{tag}",
        "policy": {
            "allowedVolumeTypes": ["persistentVolumeClaim", "configMap"],
            "namespaceSelector": {"matchLabels": {POLICY_LABEL: tag}},
        },
    }
    docs = helm_template(tmp_path, values, "templates/tenant-policy.yaml", "templates/deployment.yaml")
    vap = [d for d in docs if d["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["MODELDEPLOY_POLICY"])["allowedVolumeTypes"] == ["persistentVolumeClaim", "configMap"]
    cp.kubectl("label", "namespace", ns, f"{POLICY_LABEL}={tag}")
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": vap}))
    try:
        bad = cr_manifest("scratch", ns, image="ghcr.io/modeldeploy/runtime:1")
        bad["spec"]["runtime"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]

        def refused():  # the binding takes effect within a few seconds of its creation
            proc = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False)
            return proc if proc.returncode != 0 else None

        proc = wait_for(refused, 30, "admission to refuse an emptyDir volume")
        assert "policy volume-type-allow-list:" in proc.stderr and "ValidatingAdmissionPolicy" in proc.stderr, (
            proc.stderr
        )
        good = cr_manifest("pvc", ns, image="ghcr.io/modeldeploy/runtime:1")
        good["spec"]["runtime"].update(PVC_RUNTIME)
        proc = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(good), check=False)
        assert proc.returncode == 0, proc.stderr
    finally:
        for d in vap:
            cp.kubectl("delete", d["kind"], d["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False)
