"""The chart's tenant policy: one set of values → the ValidatingAdmissionPolicy (API server)
and MODELDEPLOY_POLICY (the operator's re-check), with the same rule names.

The CEL itself is exercised on the real API server by tests/cluster/test_operator_safety.py;
here: what `helm template` renders from the values, and that the operator reads it back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_operator import policy as pol

from .helm import CHART, Helm

pytestmark = pytest.mark.timeout(3600)  # the first test may build helm (~13 min cold)

RULES_AT_ADMISSION = {
    pol.RULE_IMAGE,
    pol.RULE_SERVICE_ACCOUNT,
    pol.RULE_WILDCARD_TOLERATION,
    pol.RULE_CONTROL_PLANE,
    pol.RULE_GPU,
    pol.RULE_CPU,
    pol.RULE_MEMORY,
}


@pytest.fixture(scope="module")
def helm(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_bin, tmp_path_factory.mktemp("helm-home"))


def render(helm: Helm, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "mdo", str(CHART), "--namespace", "modeldeploy-system", "--kube-version", "1.37.0"]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm.run(*args).stdout) if d]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str | None]:
    c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c["env"]}


def test_defaults_render_a_deny_policy_and_the_same_rules_for_the_operator(helm: Helm) -> None:
    docs = render(helm)
    vap, binding = one(docs, "ValidatingAdmissionPolicy"), one(docs, "ValidatingAdmissionPolicyBinding")
    assert vap["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"]["policyName"] == vap["metadata"]["name"] and binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace by default
    assert vap["spec"]["failurePolicy"] == "Fail"
    assert vap["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["modeldeployments"]
    named = {re.match(r"policy ([a-z-]+):", v["message"]).group(1) for v in vap["spec"]["validations"]}
    assert named == RULES_AT_ADMISSION  # the Secret opt-in is the operator's (admission cannot read Secrets)
    p = pol.from_json(operator_env(docs)["MODELDEPLOY_POLICY"])
    assert p == pol.Policy(
        image_prefixes=("ghcr.io/modeldeploy/runtime:", "ghcr.io/modeldeploy/runtime@"),
        service_accounts=(),
        secret_opt_in_label="modeldeploy.io/allowed",
        allow_wildcard_toleration=False,
        forbidden_scheduling_keys=pol.DEFAULT_FORBIDDEN_KEYS,
        max_gpus=8,
        max_cpu="64",
        max_memory="512Gi",
    )
    image_rule = next(v for v in vap["spec"]["validations"] if v["message"].startswith("policy image-allow-list"))
    assert '["ghcr.io/modeldeploy/runtime:","ghcr.io/modeldeploy/runtime@"]' in image_rule["expression"]


def test_values_reach_both_layers(helm: Helm) -> None:
    docs = render(
        helm,
        "policy.allowedImagePrefixes={registry.example.com/ml/}",
        "policy.allowedServiceAccounts={runner}",
        "policy.maxGpus=2",
        "policy.maxMemory=64Gi",
        "policy.validationActions={Warn,Audit}",
        "policy.allowWildcardToleration=true",
        "policy.namespaceSelector.matchLabels.team=ml",
    )
    vap, binding = one(docs, "ValidatingAdmissionPolicy"), one(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {"team": "ml"}}
    exprs = json.dumps(vap["spec"]["validations"])
    assert "registry.example.com/ml/" in exprs and "runner" in exprs and "quantity('2')" not in exprs
    assert 'quantity(\\"2\\")' in exprs and 'quantity(\\"64Gi\\")' in exprs
    assert "no-wildcard-toleration" not in exprs
    p = pol.from_json(operator_env(docs)["MODELDEPLOY_POLICY"])
    assert p.image_prefixes == ("registry.example.com/ml/",) and p.service_accounts == ("runner",)
    assert p.max_gpus == 2 and p.max_memory == "64Gi" and p.allow_wildcard_toleration is True


def test_policy_disabled_renders_neither_layer(helm: Helm) -> None:
    docs = render(helm, "policy.enabled=false")
    assert not [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    assert "MODELDEPLOY_POLICY" not in operator_env(docs)


def test_schema_refuses_bad_policy_values(helm: Helm) -> None:
    for bad in (
        "policy.maxGpus=-1",
        "policy.validationActions={Block}",
        "policy.maxMemory=lots",
        "policy.imageAllow=x",
    ):
        proc = helm.run("template", "mdo", str(CHART), "--set", bad, check=False)
        assert proc.returncode != 0 and "values don't meet the specifications of the schema" in proc.stderr, (
            bad,
            proc.stderr,
        )


def test_allowed_projects_reach_both_layers(helm: Helm) -> None:
    """spec.project is open in the CRD (external projects); a cluster narrows it here."""
    docs = render(helm, "policy.allowedProjects={calibration,my_detector}")
    rule = next(
        v for v in one(docs, "ValidatingAdmissionPolicy")["spec"]["validations"] if pol.RULE_PROJECT in v["message"]
    )
    assert rule["expression"] == 'object.spec.project in ["calibration","my_detector"]'
    p = pol.from_json(operator_env(docs)["MODELDEPLOY_POLICY"])
    assert p.projects == ("calibration", "my_detector")
    assert pol.check({"project": "yolox"}, p)[0].rule == pol.RULE_PROJECT
    proc = helm.run("template", "mdo", str(CHART), "--set", "policy.allowedProjects={Bad Name}", check=False)
    assert proc.returncode != 0 and "values don't meet the specifications of the schema" in proc.stderr


def test_values_file_keeps_a_label_that_reads_as_a_number_a_string(tmp_path: Path) -> None:
    """The cluster tests' values file (helm_template) with a hex tag YAML 1.1 would read as a
    float: the binding's selector still carries the string the namespace is labelled with."""
    from tests.cluster.test_operator_safety import POLICY_LABEL, helm_template

    values = {"policy": {"namespaceSelector": {"matchLabels": {POLICY_LABEL: "4e1234", "n": "0123"}}}}
    docs = helm_template(tmp_path, values, "templates/tenant-policy.yaml")
    selector = one(docs, "ValidatingAdmissionPolicyBinding")["spec"]["matchResources"]["namespaceSelector"]
    assert selector == {"matchLabels": {POLICY_LABEL: "4e1234", "n": "0123"}}
