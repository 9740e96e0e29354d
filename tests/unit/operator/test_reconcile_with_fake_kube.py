"""reconcile/observe against an in-memory API double (FakeKube): idempotence and cleanup."""

import base64
import copy
import json

import pytest

from modeldeploy_operator import jobs, scrub
from modeldeploy_operator import policy as pol
from modeldeploy_operator import reconcile as rec
from modeldeploy_operator.config import OperatorConfig
from modeldeploy_operator.spec import child_name, spec_hash

from .samples import deployment, pod, summary_json

CFG = OperatorConfig(runtime_image="img:1")


class FakeKube:
    """Test double with the Kube facade's methods; counts writes."""

    def __init__(self):
        self.crs, self.jobs, self.cms, self.pods, self.secrets = {}, {}, {}, {}, {}
        self.secret_reads = 0
        self.creates = 0
        self.deleted = []
        self.status_patches = []

    def get_deployment(self, ns, name):
        return copy.deepcopy(self.crs.get((ns, name)))

    def patch_deployment_status(self, ns, name, status):
        self.status_patches.append(status)
        cur = self.crs[(ns, name)].setdefault("status", {})
        for k, v in status.items():
            if v is None:
                cur.pop(k, None)
            else:
                cur[k] = v

    def get_job(self, ns, name):
        return copy.deepcopy(self.jobs.get((ns, name)))

    def create_job(self, ns, body):
        key = (ns, body["metadata"]["name"])
        if key in self.jobs:
            return copy.deepcopy(self.jobs[key]), False
        self.creates += 1
        self.jobs[key] = copy.deepcopy(body)
        return body, True

    def create_configmap(self, ns, body):
        key = (ns, body["metadata"]["name"])
        new = key not in self.cms
        self.cms.setdefault(key, body)
        return new

    def get_configmap(self, ns, name):
        return copy.deepcopy(self.cms.get((ns, name)))

    def get_secret(self, ns, name):
        self.secret_reads += 1
        if self.secrets == "forbidden":
            raise PermissionError(f"HTTP 403 reading Secret {ns}/{name}")
        return copy.deepcopy(self.secrets.get((ns, name)))

    def list_jobs(self, ns, deployment):
        return [
            copy.deepcopy(j)
            for (n, _), j in self.jobs.items()
            if n == ns and j["metadata"]["labels"]["modeldeploy.io/deployment"] == deployment
        ]

    def delete_job(self, ns, name):
        self.deleted.append(name)
        return self.jobs.pop((ns, name), None) is not None

    def list_job_pods(self, ns, job_name):
        return copy.deepcopy(self.pods.get((ns, job_name), []))


def _apply(kube, body):
    kube.crs[("ns", body["metadata"]["name"])] = body
    out = rec.reconcile(kube, kube.get_deployment("ns", body["metadata"]["name"]), CFG)
    if out.status_patch:
        kube.patch_deployment_status("ns", body["metadata"]["name"], out.status_patch)
    return out


def test_same_spec_twice_creates_one_job_and_one_configmap():
    kube = FakeKube()
    first = _apply(kube, deployment())
    assert first.job_created and [e.reason for e in first.events] == ["JobCreated"]
    second = rec.reconcile(kube, kube.get_deployment("ns", "demo"), CFG)  # e.g. after an operator restart
    assert not second.job_created and second.status_patch == {} and second.events == []
    assert kube.creates == 1 and len(kube.cms) == 1
    st = kube.crs[("ns", "demo")]["status"]
    assert st["phase"] == "Pending" and st["specHash"] == spec_hash(deployment()["spec"])
    assert st["jobName"] == child_name("demo", st["specHash"])


def test_already_exists_race_counts_as_success():
    kube = FakeKube()
    body = deployment()
    kube.crs[("ns", "demo")] = body
    orig_get = kube.get_job
    calls = {"n": 0}

    def get_job_misses_first(ns, name):  # another pass created it between our read and our create
        calls["n"] += 1
        return None if calls["n"] == 1 else orig_get(ns, name)

    rec.reconcile(kube, body, CFG)
    kube.get_job = get_job_misses_first
    out = rec.reconcile(kube, body, CFG)
    assert not out.job_created and kube.creates == 1


def test_new_generation_creates_new_job_and_deletes_stale_one():
    kube = FakeKube()
    _apply(kube, deployment())
    old_job = kube.crs[("ns", "demo")]["status"]["jobName"]
    cr = kube.crs[("ns", "demo")]
    cr["spec"]["export"]["opset"] = 18
    cr["metadata"]["generation"] = 2
    out = rec.reconcile(kube, copy.deepcopy(cr), CFG)
    assert out.job_created and out.stale_deleted == [old_job]
    assert {e.reason for e in out.events} == {"JobCreated", "StaleJobDeleted", "SpecChanged"}
    assert out.status_patch["observedGeneration"] == 2
    kube.patch_deployment_status("ns", "demo", out.status_patch)
    st = kube.crs[("ns", "demo")]["status"]
    assert st["phase"] == "Pending" and st["jobName"] != old_job and st["specHash"] == spec_hash(cr["spec"])
    assert len(kube.jobs) == 1


def test_finished_spec_is_not_rerun_after_job_ttl_deleted_it():
    kube = FakeKube()
    _apply(kube, deployment())
    kube.crs[("ns", "demo")]["status"]["phase"] = "Succeeded"
    kube.jobs.clear()  # ttlSecondsAfterFinished
    out = rec.reconcile(kube, kube.get_deployment("ns", "demo"), CFG)
    assert not out.job_created and kube.creates == 1


def test_job_of_an_earlier_cr_with_same_name_is_not_adopted():
    kube = FakeKube()
    _apply(kube, deployment())
    reborn = deployment()
    reborn["metadata"]["uid"] = "uid-new"
    with pytest.raises(rec.OrphanConflict, match="deleted it"):
        rec.reconcile(kube, reborn, CFG)
    assert kube.jobs == {}
    with pytest.raises(rec.OrphanConflict, match="garbage collection pending"):
        rec.reconcile(kube, reborn, CFG)  # the earlier CR's ConfigMap still exists: wait for GC
    assert kube.creates == 1
    kube.cms.clear()  # the garbage collector removed it
    out = rec.reconcile(kube, reborn, CFG)
    assert out.job_created and next(iter(kube.jobs.values()))["metadata"]["ownerReferences"][0]["uid"] == "uid-new"


def test_observe_maps_finished_job_once_and_then_is_a_no_op():
    kube = FakeKube()
    _apply(kube, deployment())
    jn = kube.crs[("ns", "demo")]["status"]["jobName"]
    kube.jobs[("ns", jn)]["status"] = {"active": 1, "ready": 1, "startTime": "2026-11-25T10:01:00Z"}
    out = rec.observe(kube, "ns", "demo", CFG, with_pods=False)
    assert [e.reason for e in out.events] == ["Running"]
    kube.jobs[("ns", jn)]["status"] = {
        "succeeded": 1,
        "startTime": "2026-11-25T10:01:00Z",
        "completionTime": "2026-11-25T10:03:00Z",
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    kube.pods[("ns", jn)] = [pod("p", phase="Succeeded", exit_code=0, message=summary_json())]
    out = rec.observe(kube, "ns", "demo", CFG, with_pods=False)
    assert [e.reason for e in out.events] == ["Succeeded"]
    st = kube.crs[("ns", "demo")]["status"]
    assert st["phase"] == "Succeeded" and st["evaluation"] and st["headline"]["p50Ms"] == 1.2
    n = len(kube.status_patches)
    again = rec.observe(kube, "ns", "demo", CFG, with_pods=True)
    assert again.events == [] and len(kube.status_patches) == n


def test_observe_ignores_until_reconcile_recorded_the_spec():
    kube = FakeKube()
    kube.crs[("ns", "demo")] = deployment()
    out = rec.observe(kube, "ns", "demo", CFG, with_pods=True)
    assert out.needs_reconcile and kube.status_patches == []


def test_observe_asks_for_reconcile_when_current_job_vanished():
    kube = FakeKube()
    _apply(kube, deployment())
    kube.jobs.clear()
    assert rec.observe(kube, "ns", "demo", CFG, with_pods=True).needs_reconcile


def test_wants_reconcile_is_a_level_trigger_on_spec_hash_job_name_and_generation():
    body = deployment()
    h = spec_hash(body["spec"])
    jn = child_name("demo", h)
    nobody = lambda _job: None  # noqa: E731 - no Job known
    assert rec.wants_reconcile(body, nobody)  # new CR, no Job yet
    assert not rec.wants_reconcile(body, {jn: "uid-demo"}.get)  # new CR whose Job exists: observe records it
    assert rec.wants_reconcile(body, {jn: "uid-earlier"}.get)  # a Job of an earlier CR of that name
    body["status"] = {"specHash": h, "jobName": jn, "observedGeneration": 1, "phase": "Running"}
    assert not rec.wants_reconcile(body, nobody)  # our own status patch coming back on the watch
    body["metadata"]["generation"] = 2
    assert rec.wants_reconcile(body, nobody)  # same spec content under a newer generation
    body["spec"]["export"]["opset"] = 18
    assert rec.wants_reconcile(body, {jn: "uid-demo"}.get)  # spec changed
    body["metadata"]["deletionTimestamp"] = "2026-11-25T10:05:00Z"
    assert not rec.wants_reconcile(body, nobody)


def test_deferred_initial_status_is_written_once_by_the_first_job_observation():
    kube = FakeKube()
    kube.crs[("ns", "demo")] = deployment()
    out = rec.reconcile(
        kube, kube.get_deployment("ns", "demo"), CFG, cleanup_stale=False, lookup_first=False, defer_initial_status=True
    )
    h = spec_hash(deployment()["spec"])
    assert out.job_created and out.job_name == child_name("demo", h)
    assert out.status_patch == {} and kube.status_patches == []  # 2 writes only: ConfigMap + Job
    first = rec.observe(kube, "ns", "demo", CFG, with_pods=False)
    st = kube.crs[("ns", "demo")]["status"]
    assert len(kube.status_patches) == 1 and first.events == []
    assert st["phase"] == "Pending" and st["specHash"] == h and st["jobName"] == out.job_name
    assert st["observedGeneration"] == 1 and {c["type"] for c in st["conditions"]} >= {
        "Ready",
        "Reconciling",
        "Stalled",
    }
    again = rec.observe(kube, "ns", "demo", CFG, with_pods=False)
    assert again.status_patch == {} and len(kube.status_patches) == 1
    assert not rec.wants_reconcile(kube.get_deployment("ns", "demo"), lambda _j: None)


def test_deferred_status_with_job_already_running_announces_running():
    kube = FakeKube()
    kube.crs[("ns", "demo")] = deployment()
    out = rec.reconcile(kube, kube.get_deployment("ns", "demo"), CFG, defer_initial_status=True)
    kube.jobs[("ns", out.job_name)]["status"] = {"active": 1, "ready": 1, "startTime": "2026-11-25T10:01:00Z"}
    seen = rec.observe(kube, "ns", "demo", CFG, with_pods=False)
    assert [e.reason for e in seen.events] == ["Running"]
    st = kube.crs[("ns", "demo")]["status"]
    assert st["phase"] == "Running" and st["specHash"] == spec_hash(deployment()["spec"]) and st["startedAt"]


def test_deferred_status_is_not_written_for_a_job_of_an_earlier_cr():
    kube = FakeKube()
    _apply(kube, deployment())
    reborn = deployment()
    reborn["metadata"]["uid"] = "uid-new"
    kube.crs[("ns", "demo")] = reborn  # same name, new object, no status; the old Job is still there
    out = rec.observe(kube, "ns", "demo", CFG, with_pods=False)
    assert out.needs_reconcile and "status" not in kube.crs[("ns", "demo")]


def test_changed_spec_still_writes_its_status_at_once_when_deferring():
    kube = FakeKube()
    _apply(kube, deployment())
    cr = kube.crs[("ns", "demo")]
    cr["spec"]["export"]["opset"] = 18
    cr["metadata"]["generation"] = 2
    out = rec.reconcile(kube, copy.deepcopy(cr), CFG, defer_initial_status=True)
    assert out.status_patch["specHash"] == spec_hash(cr["spec"]) and out.status_patch["observedGeneration"] == 2
    assert "SpecChanged" in {e.reason for e in out.events}


# ----------------------------------------------------------------------------- safety (issue 12)
POLICY_CFG = OperatorConfig(
    runtime_image="img:1",
    policy=pol.from_json(
        json.dumps(
            {
                "imagePrefixes": ["ghcr.io/modeldeploy/"],
                "serviceAccounts": [],
                "secretOptInLabel": "modeldeploy.io/allowed",
                "allowWildcardToleration": False,
                "forbiddenSchedulingKeys": ["node-role.kubernetes.io/control-plane"],
                "maxGpus": 1,
            }
        )
    ),
)


def _opted_in_secret(kube, labels=None):
    kube.secrets[("ns", "s3-creds")] = {
        "metadata": {"name": "s3-creds", "labels": {"modeldeploy.io/allowed": "true"} if labels is None else labels},
        "data": {"AWS_SECRET_ACCESS_KEY": base64.b64encode(b"sekrit-value-123").decode()},
    }


def _refusal(kube, body, cfg):
    kube.crs[("ns", body["metadata"]["name"])] = body
    out = rec.reconcile(
        kube, kube.get_deployment("ns", body["metadata"]["name"]), cfg, lookup_first=False, defer_initial_status=True
    )
    kube.patch_deployment_status("ns", body["metadata"]["name"], out.status_patch)
    return out, kube.crs[("ns", body["metadata"]["name"])]


def test_policy_violation_creates_nothing_and_fails_naming_the_rules():
    kube = FakeKube()
    _opted_in_secret(kube)
    body = deployment(runtime={"image": "evil.example.com/x:1", "resources": {"limits": {"nvidia.com/gpu": 4}}})
    out, cr = _refusal(kube, body, POLICY_CFG)
    assert kube.creates == 0 and kube.cms == {}
    st = cr["status"]
    assert (
        st["phase"] == "Failed"
        and st["failure"]["reason"] == "PolicyViolation"
        and st["failure"]["stage"] == "admission"
    )
    assert "policy image-allow-list:" in st["failure"]["message"] and "policy gpu-maximum:" in st["failure"]["message"]
    assert "jobName" not in st and st["specHash"] == spec_hash(body["spec"])
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "PolicyViolation")]
    # terminal: the watch event of our own patch does not trigger another pass, the same spec never runs
    assert not rec.wants_reconcile(cr, lambda _j: None)
    again = rec.reconcile(kube, copy.deepcopy(cr), POLICY_CFG)
    assert kube.creates == 0 and again.status_patch == {}
    # a fixed spec runs
    cr["spec"]["runtime"] = {"image": "ghcr.io/modeldeploy/runtime:1"}
    cr["metadata"]["generation"] = 2
    assert rec.wants_reconcile(cr, lambda _j: None)
    assert rec.reconcile(kube, copy.deepcopy(cr), POLICY_CFG).job_created


@pytest.mark.parametrize(
    "secrets, needle",
    [
        ({}, "does not exist"),
        ("no-label", "is not opted in"),
        ("forbidden", "may not read Secret"),
    ],
)
def test_credentials_secret_must_be_opted_in(secrets, needle):
    kube = FakeKube()
    if secrets == "no-label":
        _opted_in_secret(kube, labels={"team": "b"})
    else:
        kube.secrets = secrets
    out, cr = _refusal(kube, deployment(), POLICY_CFG)
    assert kube.creates == 0 and cr["status"]["failure"]["reason"] == "PolicyViolation"
    assert (
        "policy credentials-secret-opt-in:" in cr["status"]["failure"]["message"]
        and needle in cr["status"]["failure"]["message"]
    )


def test_opted_in_secret_and_allowed_spec_run():
    kube = FakeKube()
    _opted_in_secret(kube)
    kube.crs[("ns", "demo")] = deployment()
    out = rec.reconcile(kube, deployment(), POLICY_CFG)
    assert out.job_created and kube.secret_reads == 1


def test_squatted_configmap_fails_name_conflict_and_nothing_runs():
    kube = FakeKube()
    body = deployment()
    h = spec_hash(body["spec"])
    cm_name = child_name("demo", h)
    # another tenant (create configmaps only) pre-creates the predictable name with its own config
    kube.cms[("ns", cm_name)] = {
        "metadata": {"name": cm_name, "namespace": "ns"},
        "data": {"deploy_config.py": "import os; print(os.environ)"},
    }
    out, cr = _refusal(kube, body, CFG)
    assert kube.creates == 0 and kube.jobs == {}
    assert (
        cr["status"]["failure"]["reason"] == "NameConflict"
        and "not controlled by this ModelDeployment" in cr["status"]["failure"]["message"]
    )
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "NameConflict")]


def test_configmap_forged_with_our_owner_and_hash_but_other_content_is_refused():
    kube = FakeKube()
    body = deployment()
    h = spec_hash(body["spec"])
    forged = jobs.build_configmap(body, h)  # copies owner UID and both annotations ...
    forged["data"]["deploy_config.py"] = "import os  # attacker's config"  # ... but not the content
    kube.cms[("ns", forged["metadata"]["name"])] = forged
    out, cr = _refusal(kube, body, CFG)
    assert kube.creates == 0 and cr["status"]["failure"]["reason"] == "NameConflict"
    assert "other config files" in cr["status"]["failure"]["message"]


def test_own_configmap_from_an_interrupted_pass_is_reused_and_one_job_is_created():
    kube = FakeKube()
    body = deployment()
    h = spec_hash(body["spec"])
    kube.create_configmap("ns", jobs.build_configmap(body, h))  # the operator died right after this
    kube.crs[("ns", "demo")] = body
    out = rec.reconcile(kube, body, CFG, lookup_first=False, defer_initial_status=True)
    assert out.job_created and kube.creates == 1 and out.status_patch == {}


def test_foreign_job_with_our_name_fails_name_conflict_and_is_not_deleted():
    kube = FakeKube()
    body = deployment()
    h = spec_hash(body["spec"])
    name = child_name("demo", h)
    kube.jobs[("ns", name)] = {"metadata": {"name": name, "labels": {"modeldeploy.io/deployment": "demo"}}}
    out, cr = _refusal(kube, body, CFG)
    assert cr["status"]["failure"]["reason"] == "NameConflict" and ("ns", name) in kube.jobs and kube.deleted == []


def test_our_job_made_for_another_spec_is_a_name_conflict():
    kube = FakeKube()
    body = deployment()
    h = spec_hash(body["spec"])
    other = jobs.build_job(body, "0" * 64, CFG)
    other["metadata"]["name"] = child_name("demo", h)
    kube.jobs[("ns", other["metadata"]["name"])] = other
    assert (
        rec.check_job(other, "uid-demo", h) == f"Job {other['metadata']['name']} exists and was made for another spec"
    )
    legacy = jobs.build_job(body, h, CFG)
    legacy["metadata"]["annotations"].pop("modeldeploy.io/spec-sha256")  # made by an older operator: label decides
    assert rec.check_job(legacy, "uid-demo", h) is None


def test_observe_scrubs_secret_values_from_status_and_events():
    kube = FakeKube()
    _opted_in_secret(kube)
    _apply(kube, deployment())
    jn = kube.crs[("ns", "demo")]["status"]["jobName"]
    kube.jobs[("ns", jn)]["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}
    leak = summary_json(
        status="failed",
        failure={"stage": "load", "reason": "ConfigError", "message": "ValueError: sekrit-value-123"},
        artifacts=[{"name": "sekrit-value-123", "kind": "onnx"}],
    )
    kube.pods[("ns", jn)] = [pod("demo-x", phase="Failed", exit_code=2, message=leak)]
    cache = scrub.SecretCache(kube.get_secret)
    out = rec.observe(kube, "ns", "demo", CFG, with_pods=True, secrets=cache)
    st = kube.crs[("ns", "demo")]["status"]
    assert st["phase"] == "Failed" and st["failure"]["message"] == "ValueError: [redacted]"
    blob = json.dumps(st) + json.dumps([e.message for e in out.events])
    assert "sekrit-value-123" not in blob and "[redacted]" in blob
    # the run's exact prefix: the generation's artifact prefix + runs/<pod name> (MODELDEPLOY_RUN_ID)
    assert st["artifactUri"] == "s3://artifacts/calib/ns/demo/g1" and st["runId"] == "demo-x"
    assert st["runUri"] == "s3://artifacts/calib/ns/demo/g1/runs/demo-x"
