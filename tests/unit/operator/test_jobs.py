import json

from modeldeploy_operator import jobs
from modeldeploy_operator.config import OperatorConfig
from modeldeploy_operator.spec import spec_hash

from .samples import deployment

CFG = OperatorConfig(runtime_image="ghcr.io/modeldeploy/runtime:9.9")


def _build(body):
    h = spec_hash(body["spec"])
    return h, jobs.build_job(body, h, CFG), jobs.build_configmap(body, h)


def test_job_security_context_is_non_root_and_locked_down():
    _, job, _ = _build(deployment())
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"


def test_job_contract_fields():
    body = deployment(
        runtime={
            "activeDeadlineSeconds": 900,
            "backoffLimit": 3,
            "ttlSecondsAfterFinished": 60,
            "serviceAccountName": "runner",
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
    )
    h, job, cm = _build(body)
    assert job["metadata"]["name"] == f"demo-{h[:8]}" == cm["metadata"]["name"]
    assert job["metadata"]["ownerReferences"][0] == {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "name": "demo",
        "uid": "uid-demo",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert cm["metadata"]["ownerReferences"] == job["metadata"]["ownerReferences"]
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 900 and spec["backoffLimit"] == 3 and spec["ttlSecondsAfterFinished"] == 60
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "runner" and pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    c = pod["containers"][0]
    assert c["image"] == "ghcr.io/modeldeploy/runtime:9.9"
    assert c["command"] == ["modeldeploy"] and c["args"][0] == "run"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    env = {e["name"]: e for e in c["env"]}
    # the summary's path reaches the runtime once, as the flag (no MODELDEPLOY_TERMINATION_LOG env as well)
    assert c["args"][c["args"].index("--termination-log") + 1] == c["terminationMessagePath"]
    assert "MODELDEPLOY_TERMINATION_LOG" not in env
    # one run id per attempt: the pod's name (the runtime writes under <artifact uri>/runs/<run id>/)
    assert env["MODELDEPLOY_RUN_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # the runtime refuses a deploy config of another project than spec.project
    assert env["MODELDEPLOY_EXPECTED_PROJECT"] == {
        "name": "MODELDEPLOY_EXPECTED_PROJECT",
        "value": body["spec"]["project"],
    }
    assert job["metadata"]["annotations"]["modeldeploy.io/run-id"] == f"ns/demo/g1/{h[:8]}"
    assert c["args"][c["args"].index("--artifact-uri") + 1] == "s3://artifacts/calib/ns/demo/g1"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/modeldeploy/job"]["readOnly"] is True and "/work" in mounts
    assert spec["template"]["metadata"]["labels"]["modeldeploy.io/deployment"] == "demo"


def test_pod_failure_policy_fails_job_on_exit_2_and_3_only():
    _, job, _ = _build(deployment())
    rules = job["spec"]["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob"]
    assert fail == [
        {"action": "FailJob", "onExitCodes": {"containerName": "runtime", "operator": "In", "values": [2, 3]}}
    ]
    assert any(r["action"] == "Ignore" and r["onPodConditions"][0]["type"] == "DisruptionTarget" for r in rules)


def test_gpu_limit_added_for_cuda_and_absent_for_cpu():
    _, job_gpu, _ = _build(deployment(export={"mode": "trt"}))
    res = job_gpu["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == 1
    _, job_two, _ = _build(
        deployment(runtime={"device": "cuda", "resources": {"limits": {"nvidia.com/gpu": 2, "memory": "8Gi"}}})
    )
    res2 = job_two["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res2["limits"] == {"nvidia.com/gpu": 2, "memory": "8Gi"}
    _, job_cpu, _ = _build(deployment(runtime={"device": "cpu", "resources": {"requests": {"cpu": "1"}}}))
    res3 = job_cpu["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in json.dumps(res3) and res3["requests"] == {"cpu": "1"}


def test_credentials_only_as_secret_key_refs_never_literal():
    _, job, cm = _build(deployment())
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    aws = [e for e in env if e["name"].startswith("AWS_")]
    assert {e["name"] for e in aws} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
    }
    for e in aws:
        assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    required = {e["name"] for e in aws if not e["valueFrom"]["secretKeyRef"]["optional"]}
    assert required == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # Nothing anywhere in the Job/ConfigMap is a literal credential env or secret data.
    blob = json.dumps([job, cm])
    assert '"AWS_SECRET_ACCESS_KEY", "value"' not in blob and "secretKeyRef" in blob
    assert not any("AWS_" in a for a in job["spec"]["template"]["spec"]["containers"][0]["args"])


def test_no_credentials_env_without_secret_ref():
    body = deployment()
    del body["spec"]["credentialsSecretRef"]
    _, job, _ = _build(body)
    assert not [e for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"].startswith("AWS_")]


def test_configmap_holds_inline_configs_and_rendered_spec():
    body = deployment(modelConfig={"inline": "model = dict(type='X')\n"})
    h, job, cm = _build(body)
    assert cm["data"]["deploy_config.py"] == "export = dict(mode='onnx')\n"
    assert cm["data"]["model_config.py"] == "model = dict(type='X')\n"
    rendered = json.loads(cm["data"]["spec.json"])
    assert rendered["specHash"] == h and rendered["args"] == job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert cm["immutable"] is True


def test_config_map_key_ref_becomes_a_projected_volume():
    body = deployment(deployConfig={"configMapKeyRef": {"name": "team-configs", "key": "deploy.py"}})
    _, job, cm = _build(body)
    pod = job["spec"]["template"]["spec"]
    vol = [v for v in pod["volumes"] if v["name"] == "user-deployconfig"][0]
    assert vol["configMap"] == {"name": "team-configs", "items": [{"key": "deploy.py", "path": "deploy_config.py"}]}
    assert "deploy_config.py" not in cm["data"]
    assert pod["containers"][0]["args"][1] == "/etc/modeldeploy/user/deployConfig/deploy_config.py"


def test_default_runtime_resources_apply_only_when_the_spec_has_none():
    import pytest as _pytest

    cfg = OperatorConfig.from_env(
        {"MODELDEPLOY_RUNTIME_RESOURCES": '{"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi"}}'}
    )
    body = deployment()
    body["spec"].setdefault("runtime", {}).pop("resources", None)
    h = spec_hash(body["spec"])
    res = jobs.build_job(body, h, cfg)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "4", "memory": "16Gi"} and res["limits"]["memory"] == "16Gi"
    body["spec"]["runtime"]["resources"] = {"requests": {"cpu": "1"}}
    res = jobs.build_job(body, spec_hash(body["spec"]), cfg)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "1"} and "memory" not in res.get("limits", {})
    with _pytest.raises(ValueError, match="MODELDEPLOY_RUNTIME_RESOURCES is not JSON"):
        OperatorConfig.from_env({"MODELDEPLOY_RUNTIME_RESOURCES": "cpu=4"})
    with _pytest.raises(ValueError, match="only 'requests' and/or 'limits'"):
        OperatorConfig.from_env({"MODELDEPLOY_RUNTIME_RESOURCES": '{"cpu": "4"}'})


def test_secret_env_names_are_listed_for_the_runtime_to_scrub():
    _, job, _ = _build(deployment())
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    listed = env["MODELDEPLOY_SECRET_ENV"]["value"].split(",")
    from_secret = sorted(n for n, e in env.items() if (e.get("valueFrom") or {}).get("secretKeyRef"))
    assert sorted(listed) == from_secret and "AWS_SECRET_ACCESS_KEY" in listed and "AWS_ACCESS_KEY_ID" in listed
    _, job_no_secret, _ = _build(deployment(credentialsSecretRef=None))
    names = {e["name"] for e in job_no_secret["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "MODELDEPLOY_SECRET_ENV" not in names


def test_configmap_and_job_carry_spec_and_content_hashes():
    h, job, cm = _build(deployment())
    assert (
        job["metadata"]["annotations"]["modeldeploy.io/spec-sha256"]
        == h
        == cm["metadata"]["annotations"]["modeldeploy.io/spec-sha256"]
    )
    assert cm["metadata"]["annotations"]["modeldeploy.io/content-sha256"] == jobs.content_sha256(cm["data"])
    # spec.json (which records the generation) is not part of the content hash; the executed files are
    other = dict(cm["data"], **{"spec.json": "{}"})
    assert jobs.content_sha256(other) == jobs.content_sha256(cm["data"])
    assert jobs.content_sha256(dict(cm["data"], **{"deploy_config.py": "import os"})) != jobs.content_sha256(cm["data"])
