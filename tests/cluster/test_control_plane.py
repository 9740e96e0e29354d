"""The real control plane + test node agent behave like a (tiny) Kubernetes cluster."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.cluster.waiting import wait_for as wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def core(control_plane):
    return client.CoreV1Api(control_plane.api_client())


@pytest.fixture
def batch(control_plane):
    return client.BatchV1Api(control_plane.api_client())


def job_body(
    name: str,
    command: list[str],
    *,
    backoff_limit: int = 0,
    pod_failure_policy=None,
    image: str = "busybox",
    container_extra: dict | None = None,
    pod_extra: dict | None = None,
) -> dict:
    container = {"name": "main", "image": image, "command": command, **(container_extra or {})}
    spec = {
        "backoffLimit": backoff_limit,
        "template": {"spec": {"restartPolicy": "Never", "containers": [container], **(pod_extra or {})}},
    }
    if pod_failure_policy:
        spec["podFailurePolicy"] = pod_failure_policy
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def job_condition(batch, ns: str, name: str, *types: str):
    job = batch.read_namespaced_job(name, ns)
    for c in job.status.conditions or []:
        if c.type in types and c.status == "True":
            return c
    return None


def job_pods(core, ns: str, name: str):
    return core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items


def test_apiserver_healthy(control_plane, node_agent):
    out = control_plane.kubectl("get", "--raw", "/readyz").stdout.strip()
    assert out == "ok"
    version = client.VersionApi(control_plane.api_client()).get_code()
    assert version.major == "1"
    nodes = control_plane.kubectl("get", "nodes", "-l", "modeldeploy.io/test-node=true", "-o", "name").stdout
    assert f"node/{node_agent.node_name}" in nodes


def test_node_is_ready_with_gpu(core, node_agent):
    node = core.read_node(node_agent.node_name)
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
    assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    lease = client.CoordinationV1Api(core.api_client).read_namespaced_lease(node_agent.node_name, "kube-node-lease")
    assert lease.spec.holder_identity == node_agent.node_name


def test_job_completes_with_termination_message(control_plane, node_agent, core, batch, k8s_namespace):
    ns = k8s_namespace
    batch.create_namespaced_job(ns, job_body("ok", ["sh", "-c", "echo hello-stdout; echo done > /dev/termination-log"]))
    wait_until(lambda: job_condition(batch, ns, "ok", "Complete", "Failed"), 60, "Job ok to finish")
    assert job_condition(batch, ns, "ok", "Complete"), batch.read_namespaced_job(ns, "ok").status
    (pod,) = job_pods(core, ns, "ok")
    assert pod.spec.node_name == node_agent.node_name
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    assert term.message.strip() == "done"
    assert term.started_at and term.finished_at
    assert "hello-stdout" in node_agent.pod_log(ns, pod.metadata.name)


def test_failing_job_retries_up_to_backoff_limit(core, batch, k8s_namespace):
    ns = k8s_namespace
    batch.create_namespaced_job(ns, job_body("fails", ["sh", "-c", "echo boom >&2; exit 1"], backoff_limit=1))
    # the Job controller waits ~10 s (default pod failure back-off) before the retry
    cond = wait_until(lambda: job_condition(batch, ns, "fails", "Failed", "Complete"), 90, "Job fails to fail")
    assert cond.type == "Failed" and cond.reason == "BackoffLimitExceeded"
    pods = job_pods(core, ns, "fails")
    assert len(pods) == 2
    for p in pods:
        t = p.status.container_statuses[0].state.terminated
        assert p.status.phase == "Failed" and t.exit_code == 1 and t.reason == "Error"


def test_fallback_to_logs_on_error(core, batch, k8s_namespace):
    ns = k8s_namespace
    batch.create_namespaced_job(
        ns,
        job_body(
            "logs",
            ["sh", "-c", "for i in $(seq 1 100); do echo line-$i; done; exit 3"],
            container_extra={"terminationMessagePolicy": "FallbackToLogsOnError"},
        ),
    )
    wait_until(lambda: job_condition(batch, ns, "logs", "Failed"), 60, "Job logs to fail")
    (pod,) = job_pods(core, ns, "logs")
    t = pod.status.container_statuses[0].state.terminated
    assert t.exit_code == 3
    lines = t.message.splitlines()
    assert lines[-1] == "line-100" and len(lines) == 80 and "line-20\n" not in t.message


def test_pod_failure_policy_fail_job_on_exit_code(core, batch, k8s_namespace):
    ns = k8s_namespace
    policy = {
        "rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]}}]
    }
    batch.create_namespaced_job(
        ns, job_body("usererr", ["sh", "-c", "exit 2"], backoff_limit=5, pod_failure_policy=policy)
    )
    cond = wait_until(lambda: job_condition(batch, ns, "usererr", "Failed", "Complete"), 60, "Job usererr to fail")
    assert cond.type == "Failed" and cond.reason == "PodFailurePolicy", cond
    assert len(job_pods(core, ns, "usererr")) == 1


def test_pod_needing_two_gpus_stays_unschedulable(core, k8s_namespace):
    ns = k8s_namespace
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "big"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sh", "-c", "true"],
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    }
                ],
            },
        },
    )

    def unschedulable():
        pod = core.read_namespaced_pod("big", ns)
        for c in pod.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return pod
        return None

    pod = wait_until(unschedulable, 30, "PodScheduled=False/Unschedulable")
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    assert "nvidia.com/gpu" in next(c.message for c in pod.status.conditions if c.type == "PodScheduled")


def test_background_deletion_garbage_collects_pods(core, batch, node_agent, k8s_namespace):
    ns = k8s_namespace
    batch.create_namespaced_job(
        ns,
        job_body("long", ["sh", "-c", "echo started; exec sleep 300"], pod_extra={"terminationGracePeriodSeconds": 2}),
    )

    def running_pod():
        pods = job_pods(core, ns, "long")
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod = wait_until(running_pod, 60, "the Job's pod to run")
    assert pod.status.pod_ip == "127.0.0.1"
    assert pod.status.container_statuses[0].state.running.started_at
    wait_until(lambda: "started" in node_agent.pod_log(ns, pod.metadata.name), 10, "pod output")
    batch.delete_namespaced_job("long", ns, propagation_policy="Background")
    wait_until(lambda: not job_pods(core, ns, "long"), 60, "the garbage collector to remove the pod")
    with pytest.raises(ApiException) as e:
        batch.read_namespaced_job("long", ns)
    assert e.value.status == 404


def test_active_deadline_seconds_kills_pod(core, k8s_namespace):
    ns = k8s_namespace
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "slow"},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": 1,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 60"]}],
            },
        },
    )
    pod = wait_until(
        lambda: (p := core.read_namespaced_pod("slow", ns)).status.phase == "Failed" and p,
        30,
        "pod slow to hit its deadline",
    )
    assert pod.status.reason == "DeadlineExceeded"


def test_unknown_image_fails_pod(core, k8s_namespace):
    ns = k8s_namespace
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "noimg"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "example.com/nope:1"}]},
        },
    )
    pod = wait_until(
        lambda: (p := core.read_namespaced_pod("noimg", ns)).status.phase == "Failed" and p, 30, "pod noimg to fail"
    )
    t = pod.status.container_statuses[0].state.terminated
    assert t.reason == "ErrImagePull" and "example.com/nope" in t.message


def test_service_account_kubeconfig_is_limited_by_its_role(control_plane, k8s_namespace):
    ns = k8s_namespace
    core = client.CoreV1Api(control_plane.api_client())
    rbac = client.RbacAuthorizationV1Api(control_plane.api_client())
    core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )
    kc = control_plane.service_account_kubeconfig(ns, "reader")
    sa_core = client.CoreV1Api(control_plane.api_client(kc))
    sa_core.list_namespaced_pod(ns)  # allowed
    with pytest.raises(ApiException) as e:
        sa_core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        sa_core.list_namespaced_pod("default")
    assert e.value.status == 403
    who = control_plane.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kc)
    assert who.stdout == f"system:serviceaccount:{ns}:reader"


def test_env_from_secret_and_mounted_configmap_reach_the_process(core, node_agent, k8s_namespace):
    ns = k8s_namespace
    core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"API_KEY": "s3cr3t"}})
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "cfg"}, "data": {"greeting.txt": "hello from configmap", "MODE": "fast"}}
    )
    script = (
        'echo "key=$API_KEY mode=$MODE me=$ME opt=${OPT:-unset} work=$WORK_DIR" > /dev/termination-log; '
        'echo "$(cat /etc/cfg/greeting.txt)" >> /dev/termination-log; '
        'touch /work/scratch && test -f "$WORK_DIR/scratch" && echo scratch-ok >> /dev/termination-log'
    )
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "envpod"},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "work", "emptyDir": {}}],
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", script],
                        "env": [
                            {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "API_KEY"}}},
                            {
                                "name": "OPT",
                                "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}},
                            },
                            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "WORK_DIR", "value": "/work"},
                        ],
                        "envFrom": [{"configMapRef": {"name": "cfg"}}],
                        "volumeMounts": [
                            {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                            {"name": "work", "mountPath": "/work"},
                        ],
                    }
                ],
            },
        },
    )
    pod = wait_until(
        lambda: (p := core.read_namespaced_pod("envpod", ns)).status.phase in ("Succeeded", "Failed") and p,
        30,
        "envpod to finish",
    )
    t = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", (t, node_agent.pod_log(ns, "envpod"))
    first, second, third = t.message.splitlines()
    assert first.startswith("key=s3cr3t mode=fast me=envpod opt=unset work=/")
    assert second == "hello from configmap"
    assert third == "scratch-ok"


def test_pod_logs_in_as_its_service_account(control_plane, core, node_agent, k8s_namespace):
    """In-cluster login of a pod run by the agent (what the operator pod relies on)."""
    ns = k8s_namespace
    rbac = client.RbacAuthorizationV1Api(control_plane.api_client())
    core.create_namespaced_service_account(ns, {"metadata": {"name": "lister"}})
    rbac.create_namespaced_role(
        ns, {"metadata": {"name": "lister"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "lister"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lister"},
            "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": ns}],
        },
    )
    code = (
        "import sys\n"
        "from kubernetes import client, config\n"
        "from kubernetes.client.rest import ApiException\n"
        "config.load_config()\n"
        "api = client.CoreV1Api()\n"
        "names = [p.metadata.name for p in api.list_namespaced_pod(sys.argv[1]).items]\n"
        "try:\n"
        "    api.list_namespaced_secret(sys.argv[1]); secrets = 'allowed'\n"
        "except ApiException as e:\n"
        "    secrets = str(e.status)\n"
        "open(sys.argv[2], 'w').write(','.join(names) + ' secrets=' + secrets)\n"
    )
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "sa-pod"},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": "lister",
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3",
                        "command": ["python", "-c", code],
                        "args": ["$(NS)", "/dev/termination-log"],
                        "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                    }
                ],
            },
        },
    )
    pod = wait_until(
        lambda: (p := core.read_namespaced_pod("sa-pod", ns)).status.phase in ("Succeeded", "Failed") and p,
        60,
        "sa-pod to finish",
    )
    t = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", node_agent.pod_log(ns, "sa-pod")
    assert t.message == "sa-pod secrets=403"
