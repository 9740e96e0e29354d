"""The operator on the real control plane, under its own ClusterRole (not admin).

The operator runs as a subprocess (`python -m modeldeploy_operator`) so it can be killed
and restarted; runtime pods are run by the test node agent, mostly with the fake runtime
(tests/cluster/fakes/fake_runtime.py), and once with the real `python -m modeldeploy`.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from .operator_harness import (
    FAKE_IMAGE,
    OperatorProcess,
    apply,
    cr_manifest,
    install_operator_rbac,
    register_fake_image,
    wait_for,
)

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ns(control_plane):
    name = f"op-{uuid.uuid4().hex[:6]}"
    control_plane.create_namespace(name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def operator(control_plane, node_agent, ns, tmp_path_factory):
    register_fake_image(node_agent)
    kubeconfig = install_operator_rbac(control_plane, ns)
    op = OperatorProcess(
        kubeconfig,
        ns,
        tmp_path_factory.mktemp("operator"),
        extra_args=["--unschedulable-after", "3", "--resync-interval", "1", "--log-format", "json"],
        env={"MODELDEPLOY_RUNTIME_IMAGE": FAKE_IMAGE},
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def api(control_plane):
    from kubernetes import client

    c = control_plane.api_client()
    return client.CustomObjectsApi(c), client.BatchV1Api(c), client.CoreV1Api(c)


def get_cr(api, ns, name):
    return api[0].get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)


def jobs_of(api, ns, name):
    return api[1].list_namespaced_job(ns, label_selector=f"modeldeploy.io/deployment={name}").items


def wait_phase(api, ns, name, phase, operator, timeout=90):
    def check():
        st = get_cr(api, ns, name).get("status") or {}
        return st if st.get("phase") == phase else None

    try:
        return wait_for(check, timeout, f"{name} phase {phase}")
    except AssertionError as e:
        raise AssertionError(
            f"{e}\nstatus={json.dumps(get_cr(api, ns, name).get('status'))}\noperator log:\n{operator.log()}"
        ) from None


def cond(status, ctype):
    return next(c for c in status["conditions"] if c["type"] == ctype)


def metrics_with(operator, *needles):
    text = operator.metrics()
    return text if all(n in text for n in needles) else None


def events_of(api, ns, name):
    evs = api[2].list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in evs]


def test_apply_runs_job_with_contract_fields_and_reports_success(control_plane, operator, api, ns):
    control_plane.kubectl(
        "-n",
        ns,
        "create",
        "secret",
        "generic",
        "s3-creds",
        "--from-literal=AWS_ACCESS_KEY_ID=AKIDTEST",
        "--from-literal=AWS_SECRET_ACCESS_KEY=sekrit-value-123",
        check=False,
    )
    apply(
        control_plane,
        cr_manifest(
            "ok",
            ns,
            credentialsSecretRef={"name": "s3-creds"},
            output={"uri": "s3://bucket/ok"},
            verification={"numSamples": 2},
        ),
    )
    job = wait_for(lambda: jobs_of(api, ns, "ok"), 30, "Job of ok")[0]
    cr = get_cr(api, ns, "ok")
    assert job.metadata.owner_references[0].uid == cr["metadata"]["uid"] and job.metadata.owner_references[0].controller
    assert re.fullmatch(r"ok-[0-9a-f]{8}", job.metadata.name)
    pod = job.spec.template.spec
    c = pod.containers[0]
    assert c.image == FAKE_IMAGE and c.command == ["modeldeploy"] and c.args[0] == "run"
    assert "--cfg-options" in c.args and "onnx_config.opset_version=17" in c.args
    assert "verification.num_verify_samples=2" in c.args
    assert c.termination_message_policy == "FallbackToLogsOnError"
    assert c.security_context.allow_privilege_escalation is False and c.security_context.capabilities.drop == ["ALL"]
    assert pod.security_context.run_as_non_root is True and pod.security_context.run_as_user == 1000
    assert job.spec.pod_failure_policy.rules[0].on_exit_codes.values == [2, 3]
    secret_env = {
        e.name: e.value_from.secret_key_ref.name for e in c.env if e.value_from and e.value_from.secret_key_ref
    }
    assert secret_env["AWS_SECRET_ACCESS_KEY"] == "s3-creds"
    cm = api[2].read_namespaced_config_map(job.metadata.name, ns)
    assert json.loads(cm.data["spec.json"])["specHash"].startswith(job.metadata.name[-8:])

    st = wait_phase(api, ns, "ok", "Succeeded", operator)
    assert st["observedGeneration"] == 1 and st["jobName"] == job.metadata.name and st["attempts"] == 1
    assert st["artifacts"][0]["uri"].startswith("s3://bucket/ok/")
    assert st["headline"] == {
        "backend": "onnxruntime:cpu",
        "precision": "fp32",
        "metric": "accuracy",
        "value": 0.9,
        "p50Ms": 1.5,
        "p99Ms": 2.5,
    }
    assert cond(st, "Ready")["status"] == "True" and cond(st, "Verified")["status"] == "True"
    assert st["startedAt"] and st["completedAt"]
    wait_for(lambda: {"JobCreated", "Succeeded"} <= {r for _, r, _ in events_of(api, ns, "ok")}, 20, "Events")

    get = control_plane.kubectl("-n", ns, "get", "mdep", "ok").stdout
    assert re.search(r"NAME\s+PHASE\s+PROJECT\s+PRECISION\s+LATENCY P50\s+AGE", get), get
    assert re.search(r"ok\s+Succeeded\s+calibration\s+fp16\s+1\.50 ms\s+", get), get  # status.summary.latencyP50
    described = control_plane.kubectl("-n", ns, "describe", "mdep", "ok").stdout
    assert "JobCreated" in described and "Succeeded" in described
    # Secrets never leave the Secret: not in status, events, or the operator's log.
    blob = json.dumps(get_cr(api, ns, "ok")) + json.dumps(events_of(api, ns, "ok")) + operator.log()
    assert "sekrit-value-123" not in blob

    metrics = wait_for(
        lambda: metrics_with(operator, 'name="ok"', "modeldeploy_inference_latency"), 20, "metrics for ok"
    )
    assert re.search(
        r'modeldeploy_inference_latency_seconds\{[^}]*name="ok"[^}]*quantile="0.5"[^}]*\} 0.0015', metrics
    ), metrics
    assert re.search(r'modeldeploy_phase\{[^}]*name="ok"[^}]*phase="Succeeded"[^}]*\} 1.0', metrics), [
        l for l in metrics.splitlines() if "phase{" in l
    ]
    assert re.search(r"modeldeploy_jobs_created_total [1-9]", metrics)


def test_spec_edit_creates_new_job_and_deletes_the_old_one(control_plane, operator, api, ns):
    apply(control_plane, cr_manifest("edit", ns, deploy_inline="fake_exit = 0\nfake_sleep = 30\n"))
    old = wait_for(lambda: jobs_of(api, ns, "edit"), 30, "first Job")[0].metadata.name
    wait_phase(api, ns, "edit", "Running", operator)
    apply(control_plane, cr_manifest("edit", ns, export={"opset": 18}))
    st = wait_phase(api, ns, "edit", "Succeeded", operator)
    assert st["observedGeneration"] == 2 and st["jobName"] != old
    wait_for(
        lambda: (
            [j.metadata.name for j in jobs_of(api, ns, "edit") if not j.metadata.deletion_timestamp] == [st["jobName"]]
        ),
        30,
        "old Job deleted",
    )
    reasons = {r for _, r, _ in events_of(api, ns, "edit")}
    assert {"StaleJobDeleted", "SpecChanged"} <= reasons


def test_operator_killed_mid_run_and_restarted_keeps_exactly_one_job(control_plane, operator, api, ns):
    apply(control_plane, cr_manifest("crash", ns, deploy_inline="fake_exit = 0\nfake_sleep = 4\n"))
    wait_for(lambda: jobs_of(api, ns, "crash"), 30, "Job")
    operator.kill()
    try:
        wait_for(
            lambda: any(j.status.succeeded for j in jobs_of(api, ns, "crash")),
            60,
            "Job to finish while operator is down",
        )
        assert (get_cr(api, ns, "crash").get("status") or {}).get("phase") != "Succeeded"  # nobody reported it yet
    finally:
        operator.start()
    st = wait_phase(api, ns, "crash", "Succeeded", operator)
    assert len(jobs_of(api, ns, "crash")) == 1 and st["attempts"] == 1
    # metrics after a restart are rebuilt from status, including CRs finished before the restart
    m = wait_for(lambda: metrics_with(operator, 'name="ok"', 'name="crash"'), 20, "rebuilt metrics")
    assert re.search(r'modeldeploy_phase\{[^}]*name="ok"[^}]*phase="Succeeded"[^}]*\} 1.0', m)


def test_operator_restart_before_reconcile_creates_exactly_one_job(control_plane, operator, api, ns):
    operator.kill()
    try:
        apply(control_plane, cr_manifest("offline", ns))
    finally:
        operator.start()
    wait_phase(api, ns, "offline", "Succeeded", operator)
    operator.kill()
    operator.start()
    wait_for(lambda: 'name="offline"' in operator.metrics(), 20, "metrics after second restart")
    assert len(jobs_of(api, ns, "offline")) == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        # spec.project is open to external projects, but must be a project name (the CRD's pattern)
        (lambda b: b["spec"].update(project="ResNet 18"), 'spec.project: Invalid value: "ResNet 18"'),
        (lambda b: b["spec"]["export"].update(opset=30), "spec.export.opset: Invalid value: 30"),
        (
            lambda b: b["spec"]["deployConfig"].update(uri="builtin:calibration/deploy_demo.py"),
            "set exactly one of uri, configMapKeyRef, inline",
        ),
        (lambda b: b["spec"].pop("project"), "spec.project: Required value"),
        (lambda b: b["spec"]["export"].update(mode="trt"), "needs runtime.device: cuda"),
        (lambda b: b["spec"]["export"].update(precision="int4"), 'spec.export.precision: Unsupported value: "int4"'),
    ],
)
def test_invalid_specs_are_refused_by_the_api_server(control_plane, operator, ns, mutate, message):
    body = cr_manifest("bad", ns)
    mutate(body)
    proc = apply(control_plane, body, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_exit_2_fails_as_config_error_without_retry(control_plane, operator, api, ns):
    apply(control_plane, cr_manifest("cfgerr", ns, deploy_inline="fake_exit = 2\n", runtime={"backoffLimit": 3}))
    st = wait_phase(api, ns, "cfgerr", "Failed", operator)
    assert st["failure"]["reason"] == "ConfigError" and st["failure"]["stage"] == "load"
    assert "exprt" in st["failure"]["message"]
    assert st["attempts"] == 1
    assert cond(st, "Stalled")["status"] == "True" and cond(st, "Ready")["reason"] == "ConfigError"
    assert ("Warning", "ConfigError") in {(t, r) for t, r, _ in events_of(api, ns, "cfgerr")}


def test_exit_3_fails_as_verification_failed(control_plane, operator, api, ns):
    apply(control_plane, cr_manifest("verr", ns, deploy_inline="fake_exit = 3\n", runtime={"backoffLimit": 2}))
    st = wait_phase(api, ns, "verr", "Failed", operator)
    assert st["failure"]["reason"] == "VerificationFailed" and st["attempts"] == 1
    assert cond(st, "Verified")["status"] == "False"


def test_exit_1_is_retried_up_to_backoff_limit_then_runtime_crash(control_plane, operator, api, ns):
    apply(
        control_plane,
        cr_manifest("crashy", ns, deploy_inline="fake_exit = 1\nfake_message = text\n", runtime={"backoffLimit": 1}),
    )
    st = wait_phase(api, ns, "crashy", "Failed", operator, timeout=120)
    assert st["failure"]["reason"] == "RuntimeCrash" and st["attempts"] == 2
    assert "fake text failure" in st["failure"]["message"]  # FallbackToLogsOnError text


def test_sigkill_137_is_reported_as_oom_killed(control_plane, operator, api, ns):
    apply(control_plane, cr_manifest("oom", ns, deploy_inline="fake_exit = 137\n"))
    st = wait_phase(api, ns, "oom", "Failed", operator)
    assert st["failure"]["reason"] == "OOMKilled"


def test_two_gpus_on_a_one_gpu_node_is_stalled_unschedulable(control_plane, operator, api, ns):
    apply(
        control_plane,
        cr_manifest("greedy", ns, runtime={"device": "cuda", "resources": {"limits": {"nvidia.com/gpu": 2}}}),
    )

    def stalled():
        st = get_cr(api, ns, "greedy").get("status") or {}
        c = [x for x in st.get("conditions", []) if x["type"] == "Stalled"]
        return st if c and c[0]["status"] == "True" else None

    st = wait_for(stalled, 60, "Stalled")
    assert st["phase"] == "Pending" and cond(st, "Stalled")["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in cond(st, "Stalled")["message"]
    wait_for(lambda: ("Warning", "Unschedulable") in {(t, r) for t, r, _ in events_of(api, ns, "greedy")}, 20, "event")


def test_deleting_the_cr_garbage_collects_job_and_configmap(control_plane, operator, api, ns):
    apply(control_plane, cr_manifest("gone", ns, deploy_inline="fake_exit = 0\nfake_sleep = 20\n"))
    job = wait_for(lambda: jobs_of(api, ns, "gone"), 30, "Job")[0].metadata.name
    control_plane.kubectl("-n", ns, "delete", "mdep", "gone", "--wait=true", "--timeout=30s")
    wait_for(lambda: not jobs_of(api, ns, "gone"), 60, "Job GC")
    wait_for(
        lambda: not [c for c in api[2].list_namespaced_config_map(ns).items if c.metadata.name == job],
        60,
        "ConfigMap GC",
    )
    wait_for(lambda: 'name="gone"' not in operator.metrics(), 20, "metrics series removed")


def test_real_runtime_calibration_demo_succeeds(control_plane, operator, api, ns):
    cli = REPO / "runtime" / "modeldeploy" / "cli.py"
    demo = REPO / "runtime" / "modeldeploy" / "projects" / "calibration" / "configs" / "deploy_demo.py"
    assert cli.is_file() and demo.is_file(), "the runtime CLI and the calibration demo config must exist"
    body = cr_manifest("real", ns, image="ghcr.io/modeldeploy/runtime:0.1.0")
    body["spec"]["deployConfig"] = {"uri": "builtin:calibration/deploy_demo.py"}
    body["spec"]["export"] = {"mode": "onnx", "opset": 17}
    body["spec"]["verification"] = {"numSamples": 2}
    body["spec"]["evaluation"] = {"numSamples": 16}
    body["spec"]["output"] = {"uri": f"file://{operator.log_dir}/artifacts"}
    apply(control_plane, body)
    try:
        st = wait_phase(api, ns, "real", "Succeeded", operator, timeout=480)
    except AssertionError:
        jobs = jobs_of(api, ns, "real")
        pods = (
            api[2].list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={jobs[0].metadata.name}").items
            if jobs
            else []
        )
        raise AssertionError(
            f"real runtime failed; termination: {[p.status.container_statuses for p in pods]}"
        ) from None
    assert st["verification"]["passed"] is True
    assert any(a["kind"] == "onnx" for a in st["artifacts"])
    assert st["evaluation"] and all(e["p50Ms"] > 0 for e in st["evaluation"])
    assert cond(st, "Exported")["status"] == "True" and cond(st, "Evaluated")["status"] == "True"
