"""spec.runtime.volumes / volumeMounts / env (issue #15 item 7): the CRD admits them, the
Job gets them, the tenant policy refuses what it must, and the status has a rounded
latency for `kubectl get` (item 6). Structural schema via jsonschema; CEL rules are
judged by the real API server in tests/cluster/test_crd_explain_and_volumes.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from modeldeploy_operator import jobs
from modeldeploy_operator import policy as pol
from modeldeploy_operator import reconcile as rec
from modeldeploy_operator import status as st
from modeldeploy_operator.config import OperatorConfig
from modeldeploy_operator.spec import spec_hash

from .samples import deployment
from .test_reconcile_with_fake_kube import FakeKube

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "crds/modeldeployment.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
CFG = OperatorConfig(runtime_image="ghcr.io/modeldeploy/runtime:9.9")

DATASET_RUNTIME = {
    "volumes": [
        {"name": "datasets", "persistentVolumeClaim": {"claimName": "nuscenes-mini", "readOnly": True}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": "modeldeploy-cache"}},
        {"name": "minio-ca", "configMap": {"name": "minio-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    ],
    "volumeMounts": [
        {"name": "datasets", "mountPath": "/data", "readOnly": True},
        {"name": "cache", "mountPath": "/cache"},
        {"name": "minio-ca", "mountPath": "/etc/ssl/minio", "readOnly": True},
    ],
    "env": [
        {"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/minio/ca.crt"},
        {"name": "MODELDEPLOY_CACHE", "value": "/cache"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
    ],
}


def _strip_x(node):
    if isinstance(node, dict):
        return {k: _strip_x(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [_strip_x(v) for v in node]
    return node


def test_every_spec_field_has_a_description_for_kubectl_explain():
    missing = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if path and "description" not in node and path.split(".")[-1] not in ("items",):
            missing.append(path)
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict) and node["items"].get("properties"):
            for name, child in node["items"]["properties"].items():
                walk(child, f"{path}[].{name}")

    spec = SCHEMA["properties"]["spec"]
    walk(spec, "spec")
    # leaf fields of nested key/path lists and tolerations mirror core/v1 and are self-explanatory
    top = [m for m in missing if m.count(".") <= 2 and "[]" not in m]
    assert top == [], f"spec fields without description: {top}"
    for field in ("export", "runtime", "verification", "evaluation", "output", "dataset", "checkpoint"):
        assert len(spec["properties"][field]["description"]) > 20
        for name, child in spec["properties"][field]["properties"].items():
            if field != "runtime" or name not in ("resources",):
                assert child.get("description"), f"spec.{field}.{name}"


def test_latency_column_reads_the_rounded_string():
    cols = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert cols["Latency p50"]["jsonPath"] == ".status.summary.latencyP50" and cols["Latency p50"]["type"] == "string"
    summary = SCHEMA["properties"]["status"]["properties"]["summary"]["properties"]
    assert {"latencyP50", "metric", "backend"} <= set(summary)
    assert "p50Ms" in SCHEMA["properties"]["status"]["properties"]["headline"]["properties"]  # exact value kept


@pytest.mark.parametrize(
    "ms, text",
    [
        (159.6021599999915, "159.6 ms"),
        (4.21374, "4.21 ms"),
        (0.04213, "0.042 ms"),
        (12.0, "12.0 ms"),
        (2500.4, "2500 ms"),
        (float("nan"), None),
        (None, None),
    ],
)
def test_round_ms(ms, text):
    assert st.round_ms(ms) == text


def test_status_summary_is_written_next_to_the_exact_headline():
    head = {"backend": "tensorrt", "precision": "fp16", "metric": "mAP", "value": 0.612345, "p50Ms": 159.6021599999915}
    assert st.summary(head) == {"latencyP50": "159.6 ms", "metric": "mAP 0.6123", "backend": "tensorrt fp16"}
    assert st.summary(None) is None
    assert "summary" in st.RESULT_FIELDS  # cleared with the other results when a new spec starts


def test_the_crd_structurally_admits_volumes_mounts_and_env():
    validator = jsonschema.Draft4Validator(_strip_x(SCHEMA))
    spec = deployment(runtime=DATASET_RUNTIME)["spec"]
    validator.validate({"spec": spec})
    bad = deployment(runtime={"env": [{"name": "1BAD", "value": "x"}]})["spec"]
    assert any("does not match" in e.message for e in validator.iter_errors({"spec": bad}))


def test_crd_cel_rules_name_the_forbidden_things():
    rt = SCHEMA["properties"]["spec"]["properties"]["runtime"]["properties"]
    vol_rules = " ".join(r["rule"] for r in rt["volumes"]["items"]["x-kubernetes-validations"])
    assert "persistentVolumeClaim" in vol_rules and "hostPath" not in rt["volumes"]["items"]["properties"]
    env_rules = " ".join(r["rule"] for r in rt["env"]["items"]["x-kubernetes-validations"])
    for name in ("AWS_SECRET_ACCESS_KEY", "MODELDEPLOY_", "MODELDEPLOY_CACHE"):
        assert name in env_rules


def test_job_gets_the_pvc_the_mounts_and_the_extra_env():
    body = deployment(runtime=DATASET_RUNTIME)
    job = jobs.build_job(body, spec_hash(body["spec"]), CFG)
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["datasets"]["persistentVolumeClaim"] == {"claimName": "nuscenes-mini", "readOnly": True}
    assert vols["minio-ca"]["configMap"]["name"] == "minio-ca"
    assert {"job-config", "work", "tmp"} <= set(vols)  # the operator's own volumes stay
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["datasets"] == "/data" and mounts["cache"] == "/cache" and mounts["work"] == "/work"
    env = {e["name"]: e for e in c["env"]}
    assert env["AWS_CA_BUNDLE"]["value"] == "/etc/ssl/minio/ca.crt" and env["MODELDEPLOY_CACHE"]["value"] == "/cache"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
    # a user Secret env is scrubbed by the runtime like the credentials
    assert set(env["MODELDEPLOY_SECRET_ENV"]["value"].split(",")) >= {"HF_TOKEN", "AWS_SECRET_ACCESS_KEY"}
    assert len([e for e in c["env"] if e["name"] == "MODELDEPLOY_SECRET_ENV"]) == 1
    assert len({e["name"] for e in c["env"]}) == len(c["env"])  # no duplicate names
    # the spec is not modified by rendering
    assert body["spec"]["runtime"] == DATASET_RUNTIME


def test_user_secret_env_alone_still_lists_it_for_scrubbing():
    body = deployment(credentialsSecretRef=None, runtime={"env": DATASET_RUNTIME["env"][2:]})
    env = {
        e["name"]: e
        for e in jobs.build_job(body, spec_hash(body["spec"]), CFG)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELDEPLOY_SECRET_ENV"]["value"] == "HF_TOKEN"


# ----------------------------------------------------------------------------- policy
NO_POLICY = pol.Policy()


def rules(runtime, policy=NO_POLICY):
    return [v.rule for v in pol.check(deployment(runtime=runtime)["spec"], policy)]


def test_the_dataset_example_passes_the_policy():
    assert rules(DATASET_RUNTIME) == []


@pytest.mark.parametrize(
    "runtime, rule",
    [
        ({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}, pol.RULE_VOLUME_TYPE),
        ({"volumes": [{"name": "two", "emptyDir": {}, "configMap": {"name": "x"}}]}, pol.RULE_VOLUME_TYPE),
        ({"volumes": [{"name": "work", "emptyDir": {}}]}, pol.RULE_RESERVED_MOUNT),
        (
            {"volumes": [{"name": "v", "emptyDir": {}}], "volumeMounts": [{"name": "v", "mountPath": "/work"}]},
            pol.RULE_RESERVED_MOUNT,
        ),
        (
            {
                "volumes": [{"name": "v", "emptyDir": {}}],
                "volumeMounts": [{"name": "v", "mountPath": "/etc/modeldeploy/job"}],
            },
            pol.RULE_RESERVED_MOUNT,
        ),
        (
            {"volumes": [{"name": "v", "emptyDir": {}}], "volumeMounts": [{"name": "v", "mountPath": "/data/../work"}]},
            pol.RULE_RESERVED_MOUNT,
        ),
        ({"volumeMounts": [{"name": "nope", "mountPath": "/data"}]}, pol.RULE_RESERVED_MOUNT),
        ({"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]}, pol.RULE_RESERVED_ENV),
        ({"env": [{"name": "MODELDEPLOY_SECRET_ENV", "value": ""}]}, pol.RULE_RESERVED_ENV),
        ({"env": [{"name": "HOME", "value": "/"}]}, pol.RULE_RESERVED_ENV),
    ],
)
def test_volume_and_env_rules_hold_even_without_a_configured_policy(runtime, rule):
    assert rule in rules(runtime)


def test_allowed_volume_types_narrow_the_schema_types():
    policy = pol.from_json(json.dumps({"allowedVolumeTypes": ["persistentVolumeClaim", "configMap"]}))
    assert rules(DATASET_RUNTIME, policy) == []
    assert rules({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]}, policy) == [pol.RULE_VOLUME_TYPE]
    with pytest.raises(pol.PolicyError, match="allowedVolumeTypes may only name"):
        pol.from_json(json.dumps({"allowedVolumeTypes": ["hostPath"]}))


def test_referenced_secrets_cover_credentials_volumes_and_env():
    spec = deployment(
        runtime={
            **DATASET_RUNTIME,
            "volumes": DATASET_RUNTIME["volumes"] + [{"name": "tls", "secret": {"secretName": "tls-client"}}],
        }
    )["spec"]
    assert pol.referenced_secrets(spec) == ["s3-creds", "tls-client", "hf"]


POLICY_CFG = OperatorConfig(
    runtime_image="img:1",
    policy=pol.from_json(
        json.dumps({"imagePrefixes": ["ghcr.io/modeldeploy/"], "secretOptInLabel": "modeldeploy.io/allowed"})
    ),
)


def _secret(kube, name, opted_in):
    kube.secrets[("ns", name)] = {
        "metadata": {"name": name, "labels": {"modeldeploy.io/allowed": "true"} if opted_in else {}},
        "data": {"k": base64.b64encode(b"v").decode()},
    }


@pytest.mark.parametrize("hf_opted_in", [True, False])
def test_secret_env_needs_the_opt_in_label_like_the_credentials_fake_kube(hf_opted_in):
    kube = FakeKube()
    _secret(kube, "s3-creds", True)
    _secret(kube, "hf", hf_opted_in)
    body = deployment(runtime=DATASET_RUNTIME)
    kube.crs[("ns", "demo")] = body
    out = rec.reconcile(kube, kube.get_deployment("ns", "demo"), POLICY_CFG, lookup_first=False)
    if hf_opted_in:
        assert out.job_created
    else:
        assert kube.creates == 0 and out.status_patch["failure"]["reason"] == "PolicyViolation"
        assert "Secret 'hf' is not opted in" in out.status_patch["failure"]["message"]


def test_values_of_a_user_secret_env_are_scrubbed_from_the_status_fake_kube():
    from modeldeploy_operator import scrub

    from .samples import pod, summary_json
    from .test_reconcile_with_fake_kube import CFG as PLAIN_CFG
    from .test_reconcile_with_fake_kube import _apply

    kube = FakeKube()
    _secret(kube, "s3-creds", True)
    kube.secrets[("ns", "hf")] = {
        "metadata": {"name": "hf"},
        "data": {"token": base64.b64encode(b"hf-token-98765").decode()},
    }
    _apply(kube, deployment(runtime=DATASET_RUNTIME))
    jn = kube.crs[("ns", "demo")]["status"]["jobName"]
    kube.jobs[("ns", jn)]["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}
    leak = summary_json(
        status="failed", failure={"stage": "load", "reason": "ConfigError", "message": "bad token hf-token-98765"}
    )
    kube.pods[("ns", jn)] = [pod("demo-x", phase="Failed", exit_code=2, message=leak)]
    rec.observe(kube, "ns", "demo", PLAIN_CFG, with_pods=True, secrets=scrub.SecretCache(kube.get_secret))
    st_ = kube.crs[("ns", "demo")]["status"]
    assert st_["failure"]["message"] == "bad token [redacted]"


def test_succeeded_event_names_the_rounded_latency():
    old = {"phase": "Running"}
    new = {
        "phase": "Succeeded",
        "headline": {"backend": "tensorrt", "metric": "mAP", "value": 0.61, "p50Ms": 159.6021599999915},
    }
    messages = [t.message for t in st.transitions(old, new) if t.reason == "Succeeded"]
    assert messages and "p50=159.6 ms" in messages[0] and "159.602" not in messages[0]
