"""Issue #15: the operator gates a new generation against the last succeeded one, on the real
control plane with the real runtime (`python -m modeldeploy`, run by the test node agent) and
a real S3 endpoint (moto server process), credentials only from the tenant's Secret.

Generation 1 (the builtin calibration checkpoint) succeeds and publishes; generation 2 (the
same model with its classifier rows swapped, uploaded to S3: every backend degraded alike, so
the within-run gate passes) trips the baseline gate → exit 3, the CR shows RegressionDetected,
status.lastSucceeded and g1/current.json stay on generation 1 and g2 publishes nothing
current; generation 3 (the good weights again, from S3) passes the gate and publishes.
Also: the open spec.project and the baseline's CEL rule at admission, `kubectl explain`.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.s3testkit.moto import MotoServer

from .operator_harness import OperatorProcess, apply, cr_manifest, install_operator_rbac, wait_for

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "runtime/modeldeploy/projects/calibration/assets/resnet18_5ch_tiny.pth"
KEY_ID, SECRET = "AKIDBASELINETEST", "baseline-test-secret-value"
NAME = "gated"
BASELINE = {"maxMetricDrop": 0.05}


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server.endpoint


@pytest.fixture(scope="module")
def s3(moto):
    import boto3

    return boto3.client(
        "s3", endpoint_url=moto, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1"
    )


@pytest.fixture(scope="module")
def env(control_plane, node_agent, moto, s3, tmp_path_factory):
    """Namespace + tenant Secret + bucket with the good and the degraded checkpoint + operator."""
    import torch

    ns = f"gate-{uuid.uuid4().hex[:6]}"
    control_plane.create_namespace(ns)
    control_plane.kubectl(
        "-n",
        ns,
        "create",
        "secret",
        "generic",
        "s3-creds",
        f"--from-literal=AWS_ACCESS_KEY_ID={KEY_ID}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={SECRET}",
        f"--from-literal=AWS_ENDPOINT_URL={moto}",
        "--from-literal=AWS_DEFAULT_REGION=us-east-1",
    )
    bucket = f"gate-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    ckpt = torch.load(CHECKPOINT, map_location="cpu")
    s3.put_object(Bucket=bucket, Key="ckpt/good.pth", Body=CHECKPOINT.read_bytes())
    sd = ckpt["state_dict"]
    sd["head.fc.weight"], sd["head.fc.bias"] = sd["head.fc.weight"].flip(0), sd["head.fc.bias"].flip(0)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    s3.put_object(Bucket=bucket, Key="ckpt/degraded.pth", Body=buf.getvalue())
    kubeconfig = install_operator_rbac(control_plane, ns)
    op = OperatorProcess(
        kubeconfig, ns, tmp_path_factory.mktemp("operator"), extra_args=["--resync-interval", "1"]
    ).start()
    yield {"ns": ns, "bucket": bucket, "op": op}
    op.stop()
    control_plane.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def _cr(api, ns: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, NAME)


@pytest.fixture(scope="module")
def api(control_plane):
    from kubernetes import client

    return client.CustomObjectsApi(control_plane.api_client())


def _body(ns: str, bucket: str, checkpoint: str, num_samples: int) -> dict[str, Any]:
    body = cr_manifest(NAME, ns, image="ghcr.io/modeldeploy/runtime:0.1.0")
    spec = body["spec"]
    spec["deployConfig"] = {"uri": "builtin:calibration/deploy_demo.py"}
    spec["checkpoint"] = {"uri": checkpoint}
    spec["export"] = {"mode": "onnx", "opset": 17}
    spec["verification"] = {"numSamples": 2}
    # the within-run gate is on too: a checkpoint that is worse on every backend passes it
    spec["evaluation"] = {"numSamples": num_samples, "gate": {"maxMetricDrop": 0.05, "baseline": BASELINE}}
    spec["output"] = {"uri": f"s3://{bucket}/published"}
    spec["credentialsSecretRef"] = {"name": "s3-creds"}
    return body


def _wait_done(api, env, generation: int, timeout: float = 480) -> dict[str, Any]:
    def done():
        st = _cr(api, env["ns"]).get("status") or {}
        ok = st.get("observedGeneration") == generation and st.get("phase") in ("Succeeded", "Failed")
        return st if ok else None

    try:
        return wait_for(done, timeout, f"generation {generation} finished")
    except AssertionError as e:
        st = json.dumps(_cr(api, env["ns"]).get("status"))
        raise AssertionError(f"{e}\nstatus={st}\noperator log:\n{env['op'].log()[-4000:]}") from None


def _json(s3, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _keys(s3, bucket: str, prefix: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def _job_args(control_plane, ns: str, job_name: str) -> list[str]:
    job = json.loads(control_plane.kubectl("-n", ns, "get", "job", job_name, "-o", "json").stdout)
    return job["spec"]["template"]["spec"]["containers"][0]["args"]


def _pod_log(control_plane, node_agent, ns: str, job_name: str) -> str:
    pods = json.loads(
        control_plane.kubectl(
            "-n", ns, "get", "pods", "-l", f"batch.kubernetes.io/job-name={job_name}", "-o", "json"
        ).stdout
    )["items"]
    return "".join(node_agent.log_path(ns, p["metadata"]["name"]).read_text(errors="replace") for p in pods)


def test_generation_2_with_a_degraded_model_trips_the_gate_and_generation_1_stays_published(
    control_plane, node_agent, api, env, s3
):
    ns, bucket = env["ns"], env["bucket"]
    root = f"published/{ns}/{NAME}"

    # ---- generation 1: no predecessor, the baseline gate passes and says so
    apply(control_plane, _body(ns, bucket, "builtin:calibration/resnet18_5ch_tiny.pth", 8))
    st1 = _wait_done(api, env, 1)
    assert st1["phase"] == "Succeeded", st1.get("failure")
    assert "--baseline" not in _job_args(control_plane, ns, st1["jobName"])
    assert "no baseline run to compare with" in _pod_log(control_plane, node_agent, ns, st1["jobName"])
    last1 = st1["lastSucceeded"]
    assert last1["generation"] == 1 and last1["artifactUri"] == f"s3://{bucket}/{root}/g1"
    assert last1["resultsUri"] == st1["resultsUri"] and last1["resultsUri"].startswith(f"s3://{bucket}/{root}/g1/runs/")
    current1 = _json(s3, bucket, f"{root}/g1/current.json")
    assert current1["results_uri"] == last1["resultsUri"]
    res1 = _json(s3, bucket, last1["resultsUri"].split("/", 3)[3])
    good_acc = res1["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    assert res1["gate"]["baseline"]["uri"] is None and res1["gate"]["passed"] is True

    # ---- generation 2: a worse model (from S3, read with the tenant's credentials) trips it
    apply(control_plane, _body(ns, bucket, f"s3://{bucket}/ckpt/degraded.pth", 8))
    st2 = _wait_done(api, env, 2)
    assert st2["phase"] == "Failed", st2
    assert st2["failure"]["reason"] == "RegressionDetected" and st2["failure"]["stage"] == "gate", st2["failure"]
    assert "against baseline" in st2["failure"]["message"] and "accuracy" in st2["failure"]["message"]
    ready = {c["type"]: c for c in st2["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "RegressionDetected"
    args2 = _job_args(control_plane, ns, st2["jobName"])
    assert args2[args2.index("--baseline") + 1] == last1["resultsUri"]
    # the published result is still generation 1's: in the CR and in the store
    assert st2["lastSucceeded"] == last1
    assert _json(s3, bucket, f"{root}/g1/current.json") == current1
    assert f"{root}/g2/current.json" not in _keys(s3, bucket, f"{root}/g2/")
    res2 = _json(s3, bucket, st2["resultsUri"].split("/", 3)[3])  # the failed run recorded why, in its own prefix
    assert res2["status"] == "failed" and res2["gate"]["violations"] == []  # the within-run gate saw nothing
    bad_acc = res2["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    assert bad_acc < good_acc - BASELINE["maxMetricDrop"]
    assert res2["gate"]["baseline"]["passed"] is False and res2["gate"]["baseline"]["uri"] == last1["resultsUri"]
    wide = control_plane.kubectl("-n", ns, "get", "mdep", NAME, "-o", "wide").stdout
    assert "PUBLISHED" in wide.splitlines()[0] and wide.splitlines()[1].split()[-2] == "1", wide

    # ---- generation 3: the good weights again (another spec: from S3) pass the gate and publish
    apply(control_plane, _body(ns, bucket, f"s3://{bucket}/ckpt/good.pth", 8))
    st3 = _wait_done(api, env, 3)
    assert st3["phase"] == "Succeeded", st3.get("failure")
    args3 = _job_args(control_plane, ns, st3["jobName"])
    assert args3[args3.index("--baseline") + 1] == last1["resultsUri"]  # g2 never succeeded
    assert st3["lastSucceeded"]["generation"] == 3 and st3["lastSucceeded"]["resultsUri"] == st3["resultsUri"]
    res3 = _json(s3, bucket, st3["resultsUri"].split("/", 3)[3])
    assert res3["gate"]["baseline"]["passed"] is True and res3["gate"]["baseline"]["run_id"] == res1["run"]["id"]
    assert _json(s3, bucket, f"{root}/g3/current.json")["results_uri"] == st3["resultsUri"]
    # the tenant's credentials never reached the operator's status
    assert SECRET not in json.dumps(_cr(api, ns))


def test_admission_accepts_an_external_project_and_refuses_a_baseline_without_a_limit(control_plane, env):
    ns = env["ns"]

    def dry_run(body: dict[str, Any]):
        return control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)

    ok = dry_run(cr_manifest("external", ns, project="my_detector", evaluation={"gate": {"baseline": BASELINE}}))
    assert ok.returncode == 0, ok.stderr
    r = dry_run(cr_manifest("nolimit", ns, evaluation={"gate": {"baseline": {}}}))
    assert r.returncode != 0 and "evaluation.gate.baseline needs a limit" in r.stderr, r.stderr
    r = dry_run(cr_manifest("badname", ns, project="My Project"))
    assert r.returncode != 0 and "spec.project" in r.stderr, r.stderr


def test_kubectl_explain_describes_the_gate_fields(control_plane, env):
    out = control_plane.kubectl("explain", "modeldeployment.spec.evaluation.gate.baseline").stdout
    assert "last succeeded generation" in out and "maxLatencyRatio" in out and "credentials" in out
    out = control_plane.kubectl("explain", "modeldeployment.spec.evaluation.gate").stdout
    assert (
        "maxCV" in out
        and "coefficient" in control_plane.kubectl("explain", "modeldeployment.spec.evaluation.gate.maxCV").stdout
    )
    assert "external" in control_plane.kubectl("explain", "modeldeployment.spec.project").stdout
