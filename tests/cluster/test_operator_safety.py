"""Multi-tenant safety of the operator on the real control plane (issue 12).

Tenants act through kubeconfigs of ServiceAccounts bound to narrow Roles (never admin):
* ``tenant``: only create/get ModelDeployments (no secrets, no pods);
* ``squatter``: only create ConfigMaps.

The operator runs as a subprocess under its own ClusterRole (config/rbac/role.yaml). The
chart's tenant policy (ValidatingAdmissionPolicy) and the operator's MODELDEPLOY_POLICY
are rendered from the chart with ``helm template`` — the same values a release gets.
Runtime pods are run by the test node agent with the fake runtime, whose ``fake_leak``
directive echoes a Secret's value like a user config raising
``ValueError(os.environ["AWS_SECRET_ACCESS_KEY"])`` in a runtime that does not scrub.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_operator.spec import child_name, spec_hash

from .operator_harness import (
    FAKE_IMAGE,
    SA,
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
CHART = REPO / "charts" / "modeldeploy-operator"
SECRET_VALUE = "exfil-wJalrXUtnFEMI-K7MDENG-bPxRfiCY"  # team B's AWS_SECRET_ACCESS_KEY
POLICY_LABEL = "modeldeploy.io/policy-test"


# ----------------------------------------------------------------------------- helpers
def new_namespace(cp: Any, prefix: str, labels: dict[str, str] | None = None) -> str:
    return cp.create_namespace(f"{prefix}-{uuid.uuid4().hex[:6]}", labels=labels)


def start_operator(cp: Any, namespaces: list[str], log_dir: Path, env: dict[str, str] | None = None) -> OperatorProcess:
    """The operator serving `namespaces` as ServiceAccount <namespaces[0]>/modeldeploy-operator."""
    kubeconfig = install_operator_rbac(cp, namespaces[0])
    extra: list[str] = []
    for ns in namespaces[1:]:
        cp.kubectl(
            "-n", ns, "create", "rolebinding", SA, f"--clusterrole={SA}", f"--serviceaccount={namespaces[0]}:{SA}"
        )
        extra += ["-n", ns]
    op = OperatorProcess(
        kubeconfig,
        namespaces[0],
        log_dir,
        extra_args=[*extra, "--resync-interval", "1", "--log-format", "json"],
        env={"MODELDEPLOY_RUNTIME_IMAGE": FAKE_IMAGE, **(env or {})},
    )
    return op.start()


def user_kubeconfig(cp: Any, ns: str, user: str, rules: list[dict[str, Any]]) -> Path:
    """A kubeconfig for ServiceAccount ns/user bound to a Role with exactly `rules`."""
    cp.kubectl("-n", ns, "create", "serviceaccount", user)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": user, "namespace": ns},
        "rules": rules,
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(role))
    cp.kubectl("-n", ns, "create", "rolebinding", user, f"--role={user}", f"--serviceaccount={ns}:{user}")
    return cp.service_account_kubeconfig(ns, user)


TENANT_RULES = [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create", "get"]}]
SQUATTER_RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]


def as_user(cp: Any, kubeconfig: Path, body: dict[str, Any], check: bool = False) -> subprocess.CompletedProcess:
    return cp.kubectl("apply", "-f", "-", input=json.dumps(body), kubeconfig=kubeconfig, check=check)


def can_i(cp: Any, kubeconfig: Path, ns: str, *what: str) -> bool:
    return cp.kubectl("auth", "can-i", *what, "-n", ns, kubeconfig=kubeconfig, check=False).stdout.strip() == "yes"


def get_cr(cp: Any, ns: str, name: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("-n", ns, "get", f"{PLURAL}.{GROUP}", name, "-o", "json").stdout)


def phase_is(cp: Any, ns: str, name: str, phase: str) -> dict[str, Any] | None:
    st = get_cr(cp, ns, name).get("status") or {}
    return st if st.get("phase") == phase else None


def wait_phase(cp: Any, ns: str, name: str, phase: str, op: OperatorProcess, timeout: float = 60) -> dict[str, Any]:
    try:
        return wait_for(lambda: phase_is(cp, ns, name, phase), timeout, f"{ns}/{name} phase {phase}")
    except AssertionError as e:
        raise AssertionError(
            f"{e}\nstatus={json.dumps(get_cr(cp, ns, name).get('status'))}\noperator log:\n{op.log()}"
        ) from None


def items(cp: Any, ns: str, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
    args = ["-n", ns, "get", kind, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(cp.kubectl(*args).stdout)["items"]


def jobs_of(cp: Any, ns: str, name: str) -> list[dict[str, Any]]:
    return items(cp, ns, "jobs.batch", f"modeldeploy.io/deployment={name}")


def events_of(cp: Any, ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in items(cp, ns, "events") if e["involvedObject"]["name"] == name]


def stored_child_name(cp: Any, body: dict[str, Any]) -> str:
    """`<name>-<hash8>` of the spec as the API server would store it (CRD defaults applied),
    as an attacker can compute it (server-side dry run)."""
    out = cp.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(body)).stdout
    return child_name(body["metadata"]["name"], spec_hash(json.loads(out)["spec"]))


def helm_template(tmp_path: Path, values: dict[str, Any], *show_only: str) -> list[dict[str, Any]]:
    """The chart rendered with `values` (helm from tests/e2e/build_helm.sh's cache)."""
    from tests.e2e.helm import Helm
    from tests.e2e.tools import ToolError, ensure_helm

    try:
        helm = Helm(ensure_helm(), tmp_path / "helm-home")
    except ToolError as exc:
        pytest.fail(f"helm is needed to render the tenant policy and could not be built: {exc}", pytrace=False)
    # JSON, not yaml.safe_dump: PyYAML leaves a string like "4e1234" (a uuid hex tag) unquoted
    # and helm's YAML reads it back as a float, so the binding's label selector got a number
    # (seen in a bare-machine run: "cannot unmarshal number into ... matchLabels of type string").
    vfile = tmp_path / "values.json"
    vfile.write_text(json.dumps(values))
    args = ["template", "safety", str(CHART), "--namespace", "default", "--kube-version", "1.37.0", "-f", str(vfile)]
    for s in show_only:
        args += ["--show-only", s]
    return [d for d in yaml.safe_load_all(helm.run(*args).stdout) if d]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def open_cluster(control_plane, node_agent, tmp_path_factory):
    """Two namespaces served by one operator WITHOUT a tenant policy (chart policy off)."""
    register_fake_image(node_agent)
    ns_a, ns_b = new_namespace(control_plane, "safe-a"), new_namespace(control_plane, "safe-b")
    op = start_operator(control_plane, [ns_a, ns_b], tmp_path_factory.mktemp("operator-open"))
    tenant = user_kubeconfig(control_plane, ns_a, "tenant", TENANT_RULES)
    yield {"ns": ns_a, "ns2": ns_b, "op": op, "tenant": tenant}
    op.stop()
    for ns in (ns_a, ns_b):
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def policy_cluster(control_plane, node_agent, tmp_path_factory):
    """The chart's tenant policy, rendered by helm: the ValidatingAdmissionPolicy bound to
    namespace `ns` (label selector), and an operator with the chart's MODELDEPLOY_POLICY
    serving `ns` and `ns_no_admission` (not bound: only the operator's re-check applies)."""
    register_fake_image(node_agent)
    tag = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("policy")
    values = {
        "fullnameOverride": f"safety-{tag}",
        "policy": {
            "allowedImagePrefixes": ["ghcr.io/modeldeploy/"],
            "allowedProjects": ["calibration", "yolox", "centerpoint"],
            "namespaceSelector": {"matchLabels": {POLICY_LABEL: tag}},
        },
    }
    docs = helm_template(tmp, values, "templates/tenant-policy.yaml", "templates/deployment.yaml")
    vap = [d for d in docs if d["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    ns = new_namespace(control_plane, "pol", labels={POLICY_LABEL: tag})
    ns_no_admission = new_namespace(control_plane, "pol-op")
    control_plane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": vap}))
    op = start_operator(
        control_plane, [ns, ns_no_admission], tmp / "operator", env={"MODELDEPLOY_POLICY": env["MODELDEPLOY_POLICY"]}
    )
    tenants = {n: user_kubeconfig(control_plane, n, "tenant", TENANT_RULES) for n in (ns, ns_no_admission)}
    yield {
        "ns": ns,
        "ns_no_admission": ns_no_admission,
        "op": op,
        "tenants": tenants,
        "vap": vap,
        "policy_env": json.loads(env["MODELDEPLOY_POLICY"]),
    }
    op.stop()
    for d in vap:
        control_plane.kubectl(
            "delete", d["kind"], d["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False
        )
    for n in (ns, ns_no_admission):
        control_plane.kubectl("delete", "namespace", n, "--wait=false", check=False)


def team_b_secret(cp: Any, ns: str, name: str, labels: dict[str, str] | None = None) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIDTEAMBEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET_VALUE},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(body))


def leak_everywhere(cp: Any, ns: str, name: str, op: OperatorProcess) -> str:
    return (
        json.dumps(get_cr(cp, ns, name)) + json.dumps(events_of(cp, ns, name)) + op.log_path.read_text(errors="replace")
    )


# ----------------------------------------------------------------------------- 1. secrets
@pytest.mark.parametrize("form, exit_code", [("json", 2), ("text", 1)])
def test_exfiltration_without_policy_leaves_no_secret_in_status_events_or_operator_log(
    control_plane, node_agent, open_cluster, form, exit_code
):
    ns, op, tenant = open_cluster["ns"], open_cluster["op"], open_cluster["tenant"]
    team_b_secret(control_plane, ns, "team-b-creds")
    assert not can_i(control_plane, tenant, ns, "get", "secrets") and not can_i(
        control_plane, tenant, ns, "create", "pods"
    )
    assert can_i(control_plane, tenant, ns, "create", f"{PLURAL}.{GROUP}")
    name = f"exfil-{form}"
    body = cr_manifest(
        name,
        ns,
        deploy_inline=f"fake_exit = {exit_code}\nfake_message = {form}\nfake_leak = AWS_SECRET_ACCESS_KEY\n",
        credentialsSecretRef={"name": "team-b-creds"},
        runtime={"backoffLimit": 0},
    )
    as_user(control_plane, tenant, body, check=True)
    st = wait_phase(control_plane, ns, name, "Failed", op)
    # the runtime really echoed the value (its own log has it) ...
    (job,) = jobs_of(control_plane, ns, name)
    pods = items(control_plane, ns, "pods", f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    assert SECRET_VALUE in node_agent.log_path(ns, pods[0]["metadata"]["name"]).read_text(errors="replace")
    # ... and the operator wrote it nowhere: status, Events, its own log
    assert "[redacted]" in st["failure"]["message"], st["failure"]
    wait_for(lambda: any(e["type"] == "Warning" for e in events_of(control_plane, ns, name)), 20, "failure Event")
    assert SECRET_VALUE not in leak_everywhere(control_plane, ns, name, op)


def test_exfiltration_through_the_real_runtime_leaves_no_secret_anywhere(control_plane, node_agent, open_cluster):
    """The issue's scenario end to end: the real `modeldeploy run` loads a deploy config that
    raises ValueError(<AWS_SECRET_ACCESS_KEY>); runtime and operator both scrub. (`__import__`:
    mmengine turns a config's `import os` into a lazy object, so `os.environ[...]` would fail
    with a TypeError before the value is read.)"""
    ns, op, tenant = open_cluster["ns"], open_cluster["op"], open_cluster["tenant"]
    team_b_secret(control_plane, ns, "team-b-creds")
    body = cr_manifest(
        "exfil-real",
        ns,
        image="ghcr.io/modeldeploy/runtime:0.1.0",
        deploy_inline='raise ValueError(__import__("os").environ["AWS_SECRET_ACCESS_KEY"])\n',
        credentialsSecretRef={"name": "team-b-creds"},
        runtime={"backoffLimit": 0},
    )
    as_user(control_plane, tenant, body, check=True)
    st = wait_phase(control_plane, ns, "exfil-real", "Failed", op, timeout=180)
    assert st["failure"]["reason"] == "ConfigError" and "ValueError: [redacted]" in st["failure"]["message"], st[
        "failure"
    ]
    wait_for(
        lambda: any(e["type"] == "Warning" for e in events_of(control_plane, ns, "exfil-real")), 20, "failure Event"
    )
    (job,) = jobs_of(control_plane, ns, "exfil-real")
    pods = items(control_plane, ns, "pods", f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    pod_log = node_agent.log_path(ns, pods[0]["metadata"]["name"]).read_text(errors="replace")
    assert SECRET_VALUE not in leak_everywhere(control_plane, ns, "exfil-real", op) + json.dumps(pods), st["failure"]
    assert SECRET_VALUE not in pod_log, "the runtime logged the secret value"


def test_exfiltration_with_policy_is_refused_and_nothing_runs(control_plane, policy_cluster):
    ns, op, tenant = policy_cluster["ns"], policy_cluster["op"], policy_cluster["tenants"][policy_cluster["ns"]]
    team_b_secret(control_plane, ns, "team-b-creds")  # team B did not opt in
    body = cr_manifest(
        "exfil",
        ns,
        deploy_inline="fake_exit = 2\nfake_leak = AWS_SECRET_ACCESS_KEY\n",
        credentialsSecretRef={"name": "team-b-creds"},
    )
    as_user(control_plane, tenant, body, check=True)  # admission cannot read Secrets: the operator refuses
    st = wait_phase(control_plane, ns, "exfil", "Failed", op)
    assert st["failure"]["reason"] == "PolicyViolation" and st["failure"]["stage"] == "admission"
    assert "policy credentials-secret-opt-in:" in st["failure"]["message"] and "jobName" not in st
    assert jobs_of(control_plane, ns, "exfil") == [] and items(control_plane, ns, "pods") == []
    assert not [c for c in items(control_plane, ns, "configmaps") if c["metadata"]["name"].startswith("exfil-")]
    wait_for(
        lambda: [e for e in events_of(control_plane, ns, "exfil") if e["reason"] == "PolicyViolation"], 20, "Event"
    )
    assert SECRET_VALUE not in leak_everywhere(control_plane, ns, "exfil", op)
    # an opted-in Secret is usable (the rule is the label, not a blanket ban)
    team_b_secret(control_plane, ns, "shared-creds", labels={"modeldeploy.io/allowed": "true"})
    as_user(control_plane, tenant, cr_manifest("optin", ns, credentialsSecretRef={"name": "shared-creds"}), check=True)
    wait_phase(control_plane, ns, "optin", "Succeeded", op)


# ----------------------------------------------------------------------------- 2. admission
@pytest.mark.parametrize(
    "runtime, rule",
    [
        ({"image": "evil.example.com/miner:latest"}, "image-allow-list"),
        ({"serviceAccountName": "cloud-admin"}, "service-account-allow-list"),
        ({"device": "cuda", "resources": {"limits": {"nvidia.com/gpu": 100000}}}, "gpu-maximum"),
        ({"resources": {"requests": {"memory": "2Ti"}}}, "memory-maximum"),
        ({"tolerations": [{"operator": "Exists"}]}, "no-wildcard-toleration"),
        (
            {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            },
            "no-control-plane-scheduling",
        ),
    ],
)
def test_api_server_refuses_what_the_policy_forbids_naming_the_rule(control_plane, policy_cluster, runtime, rule):
    ns, tenant = policy_cluster["ns"], policy_cluster["tenants"][policy_cluster["ns"]]
    name = f"bad-{rule}"[:40]
    body = cr_manifest(name, ns, runtime=runtime)

    def refused():  # the binding takes effect within a few seconds of its creation
        proc = as_user(control_plane, tenant, body)
        return proc if proc.returncode != 0 else None

    try:
        proc = wait_for(refused, 20, f"admission to refuse {rule}")
    finally:
        control_plane.kubectl("-n", ns, "delete", f"{PLURAL}.{GROUP}", name, "--ignore-not-found", check=False)
    assert f"policy {rule}:" in proc.stderr and "ValidatingAdmissionPolicy" in proc.stderr, proc.stderr


def test_api_server_admits_a_compliant_spec(control_plane, policy_cluster):
    ns, tenant = policy_cluster["ns"], policy_cluster["tenants"][policy_cluster["ns"]]
    body = cr_manifest(
        "compliant",
        ns,
        runtime={
            "device": "cuda",
            "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        },
    )
    proc = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(body), kubeconfig=tenant, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_operator_rechecks_the_policy_where_admission_is_not_bound(control_plane, policy_cluster):
    ns, op = policy_cluster["ns_no_admission"], policy_cluster["op"]
    tenant = policy_cluster["tenants"][ns]
    body = cr_manifest(
        "foreign",
        ns,
        image="evil.example.com/miner:latest",
        runtime={"resources": {"limits": {"nvidia.com/gpu": 100000}}},
    )
    as_user(control_plane, tenant, body, check=True)  # no binding in this namespace
    st = wait_phase(control_plane, ns, "foreign", "Failed", op)
    assert st["failure"]["reason"] == "PolicyViolation"
    assert "policy image-allow-list:" in st["failure"]["message"] and "policy gpu-maximum:" in st["failure"]["message"]
    assert jobs_of(control_plane, ns, "foreign") == []


def test_a_project_outside_the_allow_list_is_refused_by_both_layers(control_plane, policy_cluster):
    """spec.project is open in the CRD (external projects); policy.allowedProjects narrows it."""
    ns, op = policy_cluster["ns"], policy_cluster["op"]
    body = cr_manifest("external", ns, project="my_detector")

    def refused():  # the binding takes effect within a few seconds of its creation
        proc = as_user(control_plane, policy_cluster["tenants"][ns], body)
        return proc if proc.returncode != 0 else None

    proc = wait_for(refused, 20, "admission to refuse project my_detector")
    assert "policy project-allow-list:" in proc.stderr and "ValidatingAdmissionPolicy" in proc.stderr, proc.stderr
    other = policy_cluster["ns_no_admission"]  # no binding: the operator's re-check refuses it
    as_user(
        control_plane, policy_cluster["tenants"][other], cr_manifest("external", other, project="my_detector"), True
    )
    st = wait_phase(control_plane, other, "external", "Failed", op)
    assert st["failure"]["reason"] == "PolicyViolation" and "policy project-allow-list:" in st["failure"]["message"]
    assert jobs_of(control_plane, other, "external") == []


# ----------------------------------------------------------------------------- 3. squatting
def test_squatted_configmap_name_fails_name_conflict_and_nothing_runs(control_plane, open_cluster):
    ns, op = open_cluster["ns"], open_cluster["op"]
    squatter = user_kubeconfig(control_plane, ns, "squatter", SQUATTER_RULES)
    team_b_secret(control_plane, ns, "victim-creds")
    victim = cr_manifest("victim", ns, credentialsSecretRef={"name": "victim-creds"})
    cm_name = stored_child_name(control_plane, victim)
    evil = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm_name, "namespace": ns},
        "data": {"deploy_config.py": "fake_exit = 2\nfake_leak = AWS_SECRET_ACCESS_KEY\n"},
    }
    control_plane.kubectl("create", "-f", "-", input=json.dumps(evil), kubeconfig=squatter)
    apply(control_plane, victim)
    st = wait_phase(control_plane, ns, "victim", "Failed", op)
    assert st["failure"]["reason"] == "NameConflict" and cm_name in st["failure"]["message"]
    assert "not controlled by this ModelDeployment" in st["failure"]["message"]
    assert jobs_of(control_plane, ns, "victim") == []
    assert not [p for p in items(control_plane, ns, "pods") if p["metadata"]["name"].startswith(cm_name)]
    wait_for(lambda: [e for e in events_of(control_plane, ns, "victim") if e["reason"] == "NameConflict"], 20, "Event")


# ----------------------------------------------------------------------------- 4. prefixes
def test_identical_specs_in_two_namespaces_never_share_a_prefix(control_plane, open_cluster, tmp_path):
    op = open_cluster["op"]
    out = f"file://{tmp_path}/artifacts"
    for ns in (open_cluster["ns"], open_cluster["ns2"]):
        apply(control_plane, cr_manifest("same", ns, output={"uri": out}))
    sts = {
        ns: wait_phase(control_plane, ns, "same", "Succeeded", op) for ns in (open_cluster["ns"], open_cluster["ns2"])
    }
    assert len({st["specHash"] for st in sts.values()}) == 1  # identical specs ...
    prefixes = {}
    for ns, st in sts.items():
        (job,) = jobs_of(control_plane, ns, "same")
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        prefixes[ns] = args[args.index("--artifact-uri") + 1]
        assert prefixes[ns] == st["artifactUri"] == f"{out}/{ns}/same/g1"  # ... the run's exact prefix in status
        pod = items(control_plane, ns, "pods", f"batch.kubernetes.io/job-name={job['metadata']['name']}")[0]
        assert st["runId"] == pod["metadata"]["name"] and st["runUri"] == f"{st['artifactUri']}/runs/{st['runId']}"
        assert st["artifacts"][0]["uri"].startswith(prefixes[ns] + "/")  # the runtime got that prefix
    assert len(set(prefixes.values())) == 2  # ... never share a prefix
    # a new generation of the same CR gets its own prefix too
    apply(control_plane, cr_manifest("same", open_cluster["ns"], output={"uri": out}, export={"opset": 18}))
    wait_for(
        lambda: (phase_is(control_plane, open_cluster["ns"], "same", "Succeeded") or {}).get("observedGeneration") == 2,
        60,
        "generation 2 Succeeded",
    )
    assert (
        get_cr(control_plane, open_cluster["ns"], "same")["status"]["artifactUri"]
        == f"{out}/{open_cluster['ns']}/same/g2"
    )


# ----------------------------------------------------------------------------- 5. faults
def test_operator_killed_between_configmap_and_job_create_creates_exactly_one_job(control_plane, node_agent, tmp_path):
    register_fake_image(node_agent)
    ns = new_namespace(control_plane, "crash")
    op = start_operator(control_plane, [ns], tmp_path / "operator", env={"MODELDEPLOY_TEST_EXIT_AFTER_CONFIGMAP": "1"})
    try:
        apply(control_plane, cr_manifest("half", ns))
        wait_for(lambda: op.proc.poll() is not None, 30, "operator to exit right after the ConfigMap create")
        assert op.proc.returncode == 86, op.log()
        cms = [c for c in items(control_plane, ns, "configmaps") if c["metadata"]["name"].startswith("half-")]
        assert len(cms) == 1 and jobs_of(control_plane, ns, "half") == []
        op.env.pop("MODELDEPLOY_TEST_EXIT_AFTER_CONFIGMAP")
        op.start()
        st = wait_phase(control_plane, ns, "half", "Succeeded", op)
        (job,) = jobs_of(control_plane, ns, "half")
        assert job["metadata"]["name"] == cms[0]["metadata"]["name"] == st["jobName"] and st["attempts"] == 1
    finally:
        op.stop()
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_api_server_stopped_and_restarted_watch_recovers_without_duplicate_jobs(control_plane, open_cluster):
    if control_plane.external:
        pytest.fail("this fault test stops the API server: run it on a cluster the test starts", pytrace=False)
    ns, op = open_cluster["ns"], open_cluster["op"]
    apply(control_plane, cr_manifest("before", ns, deploy_inline="fake_exit = 0\nfake_sleep = 5\n"))
    wait_for(lambda: jobs_of(control_plane, ns, "before"), 30, "Job of 'before'")
    control_plane.stop_apiserver()
    try:
        time.sleep(4)  # the operator's watches and API calls fail meanwhile
        assert op.proc.poll() is None, f"operator died while the API server was down:\n{op.log()}"
    finally:
        control_plane.start_apiserver()
    apply(control_plane, cr_manifest("after", ns))  # only a recovered watch sees this one
    wait_phase(control_plane, ns, "after", "Succeeded", op)
    wait_phase(control_plane, ns, "before", "Succeeded", op)
    assert len(jobs_of(control_plane, ns, "before")) == 1 and len(jobs_of(control_plane, ns, "after")) == 1
    assert wait_for(op.healthy, 30, "operator /healthz after the restart")
