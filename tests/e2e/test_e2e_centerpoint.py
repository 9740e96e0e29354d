"""End to end on the real control plane: Helm-installed operator → CenterPoint Job → S3,
status and Prometheus; a GitOps-style redeploy; `helm uninstall` keeps CRs and artifacts.

What is real: etcd, kube-apiserver, controller-manager, scheduler (tests/cluster), the
chart installed by the helm binary built from its Go module, the operator (run by the
test node agent as the chart's pod, logged in with the pod's ServiceAccount token under
the chart's Role), the runtime (`python -m modeldeploy run` with the tiny CenterPoint
config on CPU), a moto S3 server, and a Prometheus server scraping the operator every 1 s
(every dashboard query is evaluated against it). The only stand-in is the node agent,
which runs pods as local processes instead of containers.

The CenterPoint resource is examples/centerpoint-deploy.yaml with the documented e2e
substitutions (`e2e_variant`): tiny configs and checkpoint, CPU, fewer samples, moto S3.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import time
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from tests.cluster.waiting import wait_for as _wait_for
from tests.integration.s3testkit import TEST_KEY_ID, TEST_SECRET

from .dashboard import check_dashboard_returns_data
from .helm import CHART, REPO, Helm
from .prometheus import PrometheusServer, free_port

# The e2e waits are on whole runtime Jobs: poll once a second unless a call says otherwise.
wait_for = functools.partial(_wait_for, interval=1.0)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

EXAMPLE = REPO / "examples" / "centerpoint-deploy.yaml"
RELEASE = "mdo"
SECRET = "s3-credentials"  # the name examples/centerpoint-deploy.yaml refers to
RUN_TIMEOUT = 1500  # one CenterPoint run on a shared 2-core machine (seconds)


def e2e_variant(example: dict[str, Any], namespace: str, bucket: str) -> dict[str, Any]:
    """The example with the substitutions that make it run here (CPU, tiny model, moto S3)."""
    body = copy.deepcopy(example)
    body["metadata"]["namespace"] = namespace
    spec = body["spec"]
    assert spec["project"] == "centerpoint" and spec["credentialsSecretRef"]["name"] == SECRET
    spec["modelConfig"] = {"uri": "builtin:centerpoint/centerpoint_tiny.py"}
    spec["deployConfig"] = {"uri": "builtin:centerpoint/deploy_tiny.py"}
    spec["checkpoint"] = {"uri": "builtin:centerpoint/centerpoint_tiny.pth"}
    spec.pop("dataset")  # the bundled synthetic T4-format sample
    spec["export"] = {"mode": "onnx", "precision": "auto", "opset": spec["export"]["opset"]}
    spec["verification"].update(numSamples=1, tolerance=1e-3)
    spec["evaluation"].update(numSamples=2)
    spec["output"]["uri"] = f"s3://{bucket}/modeldeploy/centerpoint-e2e"
    spec["runtime"]["device"] = "cpu"
    spec["runtime"]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "6Gi"}}
    spec["runtime"]["activeDeadlineSeconds"] = RUN_TIMEOUT
    spec["runtime"]["backoffLimit"] = 0
    return body


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class Cluster:
    """kubectl helpers bound to one namespace, with diagnostics for failure messages."""

    def __init__(self, cp: Any, agent: Any, namespace: str) -> None:
        self.cp, self.agent, self.ns = cp, agent, namespace

    def json(self, *args: str) -> Any:
        return json.loads(self.cp.kubectl("-n", self.ns, "get", *args, "-o", "json").stdout)

    def cr(self, name: str) -> dict[str, Any]:
        return self.json("modeldeployment", name)

    def operator_pods(self) -> list[dict[str, Any]]:
        return self.json("pods", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]

    def diagnostics(self, name: str | None = None) -> str:
        out = []
        if name:
            proc = self.cp.kubectl("-n", self.ns, "get", "mdep", name, "-o", "json", check=False)
            out.append(f"--- CR {name}:\n{proc.stdout[-4000:]}{proc.stderr}")
        for pod in self.json("pods")["items"]:
            pname = pod["metadata"]["name"]
            out.append(
                f"--- pod {pname} phase={pod['status'].get('phase')} log tail:\n"
                f"{self.agent.pod_log(self.ns, pname)[-3000:]}"
            )
        return "\n".join(out)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_prefix(s3: Any, uri: str) -> dict[str, Any]:
    """Every object listed in <uri>/manifest.json exists with the manifest's sha256 and size."""
    m = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    assert m, uri
    bucket, prefix = m.group(1), m.group(2).rstrip("/")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read())
    names = {a["name"] for a in manifest["artifacts"]}
    assert {"results.json", "report.md", "onnx/pts_voxel_encoder.onnx", "onnx/pts_backbone_neck_head.onnx"} <= names, (
        names
    )
    for a in manifest["artifacts"]:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{a['name']}")["Body"].read()
        assert sha256_of(body) == a["sha256"], f"{a['name']}: sha256 differs from manifest.json"
        assert len(body) == a["bytes"], a["name"]
    return manifest


def onnx_opset(s3: Any, uri: str, name: str) -> int:
    import onnx

    bucket, prefix = re.fullmatch(r"s3://([^/]+)/(.+)", uri).groups()
    model = onnx.load_from_string(s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}")["Body"].read())
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def series_value(prom: PrometheusServer, expr: str) -> dict[tuple[str, ...], float]:
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in prom.query(expr)}


def wait_succeeded(k: Cluster, name: str, generation: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        cr = k.cr(name)
        st = cr.get("status") or {}
        if st.get("observedGeneration") == generation and st.get("phase") == "Failed":
            raise AssertionError(f"{name} failed: {json.dumps(st.get('failure'))}\n{k.diagnostics(name)}")
        if st.get("observedGeneration") == generation and st.get("phase") == "Succeeded":
            return cr
        return None

    return wait_for(
        done,
        RUN_TIMEOUT + 120,
        f"{name} generation {generation} Succeeded",
        interval=2,
        on_timeout=lambda: k.diagnostics(name),
    )


def check_prometheus_matches_status(prom: PrometheusServer, ns: str, name: str, st: dict[str, Any]) -> None:
    sel = f'namespace="{ns}", name="{name}"'
    for e in st["evaluation"]:
        for q, key in (("0.5", "p50Ms"), ("0.99", "p99Ms")):
            got = series_value(
                prom,
                f'modeldeploy_inference_latency_seconds{{{sel}, backend="{e["backend"]}", '
                f'precision="{e["precision"]}", quantile="{q}"}}',
            )
            assert len(got) == 1, (e, q, got)
            assert list(got.values())[0] == pytest.approx(e[key] / 1000.0, rel=1e-6)
        got = series_value(
            prom, f'modeldeploy_evaluation_metric{{{sel}, backend="{e["backend"]}", metric="{e["metric"]}"}}'
        )
        assert list(got.values()) == [pytest.approx(e["value"])]
    got = series_value(prom, f"modeldeploy_verification_max_abs_diff{{{sel}}}")
    assert list(got.values()) == [pytest.approx(st["verification"]["maxAbsDiff"])]
    stages = {
        dict(k)["stage"]: v for k, v in series_value(prom, f"modeldeploy_stage_duration_seconds{{{sel}}}").items()
    }
    assert stages == pytest.approx({k: float(v) for k, v in st["durations"].items()})


def test_helm_installed_operator_deploys_centerpoint_to_s3_with_metrics(
    control_plane, node_agent, helm_bin, prometheus_bin, moto_s3, tmp_path
):
    import boto3
    from botocore.config import Config

    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    control_plane.create_namespace(ns)
    k = Cluster(control_plane, node_agent, ns)
    helm = Helm(helm_bin, tmp_path / "helm-home", control_plane.kubeconfig)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3,
        region_name="us-east-1",
        aws_access_key_id=TEST_KEY_ID,
        aws_secret_access_key=TEST_SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = f"e2e-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    metrics_port = free_port()
    prom = PrometheusServer(prometheus_bin, tmp_path / "prometheus", [f"127.0.0.1:{metrics_port}"], interval="1s")
    installed = False
    try:
        # --- S3 credentials Secret (docs/install.md), endpoint = moto ------------------------
        control_plane.kubectl(
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            SECRET,
            f"--from-literal=AWS_ACCESS_KEY_ID={TEST_KEY_ID}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={TEST_SECRET}",
            f"--from-literal=AWS_ENDPOINT_URL={moto_s3}",
            "--from-literal=AWS_DEFAULT_REGION=us-east-1",
        )
        # its owners opt it in for ModelDeployments (chart policy.secretOptInLabel, docs/operator.md#tenant-policy)
        control_plane.kubectl("-n", ns, "label", "secret", SECRET, "modeldeploy.io/allowed=true")

        # --- helm install: the node agent runs the operator pod (image mapped to the module) -
        t0 = time.monotonic()
        out = helm.run(
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            ns,
            "--wait",
            "--timeout",
            "5m",
            "--set",
            "metrics.bindAddress=127.0.0.1",
            "--set",
            f"metrics.port={metrics_port}",
            "--set",
            "operator.resyncIntervalSeconds=2",
            timeout=400,
        ).stdout
        installed = True
        # NOTES.txt: where it serves, and the manual CRD upgrade step
        assert f"It serves ModelDeployments in: {ns}" in out and "kubectl apply --server-side -f" in out, out
        (pod,) = k.operator_pods()
        assert pod["spec"]["serviceAccountName"] == f"{RELEASE}-modeldeploy-operator"
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{metrics_port}/healthz") == 200,
            120,
            "operator /healthz 200",
            on_timeout=k.diagnostics,
        )
        print(f"helm install + operator healthy in {time.monotonic() - t0:.1f}s")
        # least privilege: the operator's ServiceAccount may get a Secret (opt-in label, values to
        # scrub; docs/operator.md#rbac) but not list them, nor act outside its namespaces
        sa = f"system:serviceaccount:{ns}:{RELEASE}-modeldeploy-operator"
        assert (
            control_plane.kubectl(
                "auth", "can-i", "list", "secrets", "-n", ns, f"--as={sa}", check=False
            ).stdout.strip()
            == "no"
        )
        assert (
            control_plane.kubectl(
                "auth", "can-i", "get", "secrets", "-n", "default", f"--as={sa}", check=False
            ).stdout.strip()
            == "no"
        )
        assert (
            control_plane.kubectl(
                "auth", "can-i", "create", "jobs.batch", "-n", "default", f"--as={sa}", check=False
            ).stdout.strip()
            == "no"
        )
        assert (
            control_plane.kubectl("auth", "can-i", "create", "jobs.batch", "-n", ns, f"--as={sa}").stdout.strip()
            == "yes"
        )

        prom.start()
        wait_for(lambda: prom.targets_up(), 60, "Prometheus to scrape the operator")

        # --- kubectl apply -f (the example, e2e variant) → Succeeded ------------------------
        variant = e2e_variant(yaml.safe_load(EXAMPLE.read_text()), ns, bucket)
        name = variant["metadata"]["name"]
        manifest_file = tmp_path / "centerpoint-deploy.yaml"
        manifest_file.write_text(yaml.safe_dump(variant, sort_keys=False))
        t0 = time.monotonic()
        control_plane.kubectl("apply", "-f", str(manifest_file))
        cr1 = wait_succeeded(k, name, 1)
        print(f"run 1 (opset {variant['spec']['export']['opset']}) Succeeded in {time.monotonic() - t0:.1f}s")
        st1 = cr1["status"]
        assert cr1["metadata"]["generation"] == 1
        conds = {c["type"]: c for c in st1["conditions"]}
        assert conds["Ready"]["status"] == "True" and conds["Stalled"]["status"] == "False"
        assert conds["Reconciling"]["status"] == "False"
        backends = {e["backend"] for e in st1["evaluation"]}
        assert backends == {"pytorch:cpu", "onnxruntime:cpu"}, st1["evaluation"]
        assert all(e["p50Ms"] > 0 and e["p99Ms"] >= e["p50Ms"] and e["metric"] == "mAP" for e in st1["evaluation"])
        assert st1["headline"]["p50Ms"] > 0
        assert st1["verification"]["passed"] is True and st1["verification"]["maxAbsDiff"] < 1e-3
        # each generation publishes under <output.uri>/<namespace>/<name>/g<generation>, each run
        # (pod) under its runs/<run id>/ (status.runUri)
        assert st1["artifactUri"] == f"s3://{bucket}/modeldeploy/centerpoint-e2e/{ns}/{name}/g1", st1
        prefix1 = st1["runUri"]
        assert prefix1.startswith(f"{st1['artifactUri']}/runs/"), st1
        assert st1["resultsUri"] == f"{prefix1}/results.json"
        manifest1 = verify_prefix(s3, prefix1)
        by_name = {a["name"]: a for a in manifest1["artifacts"]}
        for a in st1["artifacts"]:
            assert a["uri"] == f"{prefix1}/{a['name']}" and a["sha256"] == by_name[a["name"]]["sha256"], a
        results1 = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{prefix1.split('/', 3)[3]}/results.json")["Body"].read()
        )
        assert results1["status"] == "succeeded" and results1["project"] == "centerpoint"
        assert onnx_opset(s3, prefix1, "onnx/pts_backbone_neck_head.onnx") == 17

        # --- Prometheus: the series equal the status; every dashboard query returns data ------
        sel = f'namespace="{ns}", name="{name}"'
        wait_for(
            lambda: prom.query(f'modeldeploy_phase{{{sel}, phase="Succeeded"}} == 1'),
            60,
            "Prometheus to see the Succeeded phase",
        )
        check_prometheus_matches_status(prom, ns, name, st1)
        check_dashboard_returns_data(prom, ns, name)
        last_ok_1 = list(series_value(prom, f"modeldeploy_last_success_timestamp_seconds{{{sel}}}").values())[0]

        # --- GitOps redeploy: edit the opset in the YAML, apply → new generation and Job ------
        variant["spec"]["export"]["opset"] = 16
        manifest_file.write_text(yaml.safe_dump(variant, sort_keys=False))
        t0 = time.monotonic()
        control_plane.kubectl("apply", "-f", str(manifest_file))
        cr2 = wait_succeeded(k, name, 2)
        print(f"run 2 (opset 16) Succeeded in {time.monotonic() - t0:.1f}s")
        st2 = cr2["status"]
        assert st2["specHash"] != st1["specHash"] and st2["jobName"] != st1["jobName"]
        jobs = wait_for(
            lambda: (lambda js: js if [j["metadata"]["name"] for j in js] == [st2["jobName"]] else None)(
                k.json("jobs", "-l", f"modeldeploy.io/deployment={name}")["items"]
            ),
            120,
            "the stale Job to be deleted",
        )
        assert jobs[0]["metadata"]["annotations"]["modeldeploy.io/generation"] == "2"
        assert st2["artifactUri"] == f"s3://{bucket}/modeldeploy/centerpoint-e2e/{ns}/{name}/g2", st2
        prefix2 = st2["runUri"]
        verify_prefix(s3, prefix2)
        assert onnx_opset(s3, prefix2, "onnx/pts_backbone_neck_head.onnx") == 16
        assert {a["uri"].rsplit("/", 2)[0] for a in st2["artifacts"]} <= {
            prefix2,
            f"{prefix2}/onnx",
            f"{prefix2}/logs",
            f"{prefix2}/predictions",
        }

        def metrics_updated() -> bool:
            got = series_value(prom, f"modeldeploy_last_success_timestamp_seconds{{{sel}}}")
            return bool(got) and list(got.values())[0] > last_ok_1

        wait_for(metrics_updated, 60, "last-success timestamp to move in Prometheus")
        check_prometheus_matches_status(prom, ns, name, st2)
        jobs_created = series_value(prom, "modeldeploy_jobs_created_total")
        assert list(jobs_created.values())[0] >= 2

        # --- helm uninstall: operator gone; CRD, CR (with status) and artifacts stay ---------
        helm.run("uninstall", RELEASE, "--namespace", ns, "--wait", "--timeout", "2m")
        installed = False
        wait_for(lambda: not k.operator_pods(), 60, "the operator pod to go away")
        assert k.json("deployments")["items"] == []
        control_plane.kubectl("get", "crd", "modeldeployments.modeldeploy.io")
        after = k.cr(name)
        assert after["status"]["phase"] == "Succeeded" and after["status"]["specHash"] == st2["specHash"]
        verify_prefix(s3, prefix1)
        verify_prefix(s3, prefix2)
    finally:
        prom.stop()
        if installed:
            helm.run("uninstall", RELEASE, "--namespace", ns, check=False)
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
