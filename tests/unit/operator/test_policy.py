"""The tenant policy's pure rule function (the operator's re-check of the admission policy)."""

import json
import re

import pytest

from modeldeploy_operator import policy as pol
from modeldeploy_operator.config import OperatorConfig

from .samples import deployment

CHART_DEFAULTS = pol.from_json(
    json.dumps(
        {
            "imagePrefixes": ["ghcr.io/modeldeploy/runtime:", "ghcr.io/modeldeploy/runtime@"],
            "serviceAccounts": [],
            "secretOptInLabel": "modeldeploy.io/allowed",
            "allowWildcardToleration": False,
            "forbiddenSchedulingKeys": list(pol.DEFAULT_FORBIDDEN_KEYS),
            "maxGpus": 8,
            "maxCpu": "64",
            "maxMemory": "512Gi",
        }
    )
)


def rules(spec, policy=CHART_DEFAULTS):
    return [v.rule for v in pol.check(spec, policy)]


def test_a_plain_spec_passes_the_chart_defaults():
    assert rules(deployment()["spec"]) == []
    assert (
        rules(
            deployment(
                runtime={
                    "image": "ghcr.io/modeldeploy/runtime:0.2.0",
                    "device": "cuda",
                    "resources": {
                        "limits": {"nvidia.com/gpu": 8, "cpu": "64", "memory": "512Gi"},
                        "requests": {"cpu": "500m", "memory": "1024Mi"},
                    },
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                }
            )["spec"]
        )
        == []
    )


@pytest.mark.parametrize(
    "runtime, rule",
    [
        ({"image": "evil.example.com/miner:latest"}, pol.RULE_IMAGE),
        ({"image": "ghcr.io/modeldeploy/runtime-evil:1"}, pol.RULE_IMAGE),  # prefix includes the ':'
        ({"serviceAccountName": "cloud-admin"}, pol.RULE_SERVICE_ACCOUNT),
        ({"tolerations": [{"operator": "Exists"}]}, pol.RULE_WILDCARD_TOLERATION),
        (
            {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]},
            pol.RULE_CONTROL_PLANE,
        ),
        ({"nodeSelector": {"node-role.kubernetes.io/master": ""}}, pol.RULE_CONTROL_PLANE),
        ({"resources": {"limits": {"nvidia.com/gpu": 100000}}}, pol.RULE_GPU),
        ({"resources": {"requests": {"nvidia.com/gpu": "9"}}}, pol.RULE_GPU),
        ({"resources": {"limits": {"cpu": "64001m"}}}, pol.RULE_CPU),
        ({"resources": {"requests": {"memory": "1Ti"}}}, pol.RULE_MEMORY),
    ],
)
def test_each_rule_refuses_what_it_names(runtime, rule):
    violations = pol.check(deployment(runtime=runtime)["spec"], CHART_DEFAULTS)
    assert [v.rule for v in violations] == [rule]
    assert str(violations[0]).startswith(f"policy {rule}: ")


def test_all_violations_are_reported_together():
    spec = deployment(
        runtime={"image": "x/y:1", "serviceAccountName": "s", "resources": {"limits": {"nvidia.com/gpu": 9}}}
    )["spec"]
    assert rules(spec) == [pol.RULE_IMAGE, pol.RULE_SERVICE_ACCOUNT, pol.RULE_GPU]


def test_no_policy_restricts_nothing():
    spec = deployment(
        runtime={
            "image": "x/y:1",
            "serviceAccountName": "s",
            "tolerations": [{"operator": "Exists"}],
            "resources": {"limits": {"nvidia.com/gpu": 100000}},
        }
    )["spec"]
    assert rules(spec, pol.Policy()) == [] and not pol.Policy().enabled and CHART_DEFAULTS.enabled


def test_service_account_allow_list():
    p = pol.from_json(json.dumps({"serviceAccounts": ["modeldeploy-runtime"]}))
    assert rules(deployment(runtime={"serviceAccountName": "modeldeploy-runtime"})["spec"], p) == []
    assert rules(deployment(runtime={"serviceAccountName": "other"})["spec"], p) == [pol.RULE_SERVICE_ACCOUNT]


def test_secret_opt_in_needs_the_label_set_to_true():
    def secret(labels):
        return {"metadata": {"name": "creds", "labels": labels}, "data": {}}

    assert pol.check_secret("creds", secret({"modeldeploy.io/allowed": "true"}), CHART_DEFAULTS) is None
    v = pol.check_secret("creds", secret({"modeldeploy.io/allowed": "yes"}), CHART_DEFAULTS)
    assert v.rule == pol.RULE_SECRET_OPT_IN and "modeldeploy.io/allowed=true" in v.message
    assert "does not exist" in pol.check_secret("creds", None, CHART_DEFAULTS).message
    assert pol.check_secret("creds", secret({}), pol.Policy()) is None  # no opt-in configured


@pytest.mark.parametrize(
    "text, needle",
    [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"maxGpu": 1}', "unknown keys ['maxGpu']"),
        ('{"maxGpus": -1}', "integer >= 0"),
        ('{"maxMemory": "lots"}', "Kubernetes quantity"),
        ('{"imagePrefixes": "ghcr.io/"}', "list of non-empty strings"),
    ],
)
def test_malformed_policy_env_stops_the_operator_with_one_line(text, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        OperatorConfig.from_env({"MODELDEPLOY_POLICY": text})


def test_policy_env_reaches_the_operator_config():
    cfg = OperatorConfig.from_env({"MODELDEPLOY_POLICY": json.dumps({"maxGpus": 2, "serviceAccounts": []})})
    assert cfg.policy.max_gpus == 2 and cfg.policy.service_accounts == ()
    assert OperatorConfig.from_env({}).policy == pol.Policy()
