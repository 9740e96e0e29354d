"""Offline checks of crds/modeldeployment.yaml and config/rbac/role.yaml.

The API server (cluster tests) is the real judge of CEL rules; here the structural part of
the schema is exercised with jsonschema so a broken enum/bound is caught without a cluster.
"""

from pathlib import Path

import jsonschema
import pytest
import yaml

from .samples import deployment

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "crds/modeldeployment.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def _to_jsonschema(node):
    """OpenAPI v3.0 (k8s flavour) → JSON Schema draft 4 (booleans exclusiveMinimum, x-* dropped)."""
    if isinstance(node, dict):
        return {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    return node


VALIDATOR = jsonschema.Draft4Validator(_to_jsonschema(SCHEMA))


def test_crd_identity_and_printer_columns():
    assert CRD["spec"]["group"] == "modeldeploy.io" and CRD["spec"]["scope"] == "Namespaced"
    assert CRD["spec"]["names"]["plural"] == "modeldeployments" and "mdep" in CRD["spec"]["names"]["shortNames"]
    assert VERSION["name"] == "v1alpha1" and VERSION["subresources"] == {"status": {}}
    cols = [c["name"] for c in VERSION["additionalPrinterColumns"]]
    assert cols == ["Phase", "Project", "Precision", "Latency p50", "Metric", "Published", "Age"]


def test_status_keeps_kopf_fields_and_conditions_are_a_map_list():
    status = SCHEMA["properties"]["status"]["properties"]
    assert status["kopf"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_exactly_one_config_source_rule_present():
    rules = SCHEMA["properties"]["spec"]["properties"]["modelConfig"]["x-kubernetes-validations"]
    assert "exactly one" in rules[0]["message"]


def test_sample_spec_is_valid():
    VALIDATOR.validate(
        {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "x"},
            "spec": deployment()["spec"],
        }
    )


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda s: s.update(project="My Project"), "does not match"),  # open, but a project name
        (lambda s: s.update(project="a" * 64), "is too long"),
        (lambda s: s.update(evaluation={"gate": {"maxMetricDrop": -0.1}}), "less than the minimum"),
        (lambda s: s.update(evaluation={"gate": {"maxLatencyMs": 0}}), "less than or equal to the minimum"),
        (lambda s: s.update(evaluation={"gate": {"maxCV": 101}}), "greater than the maximum"),
        (lambda s: s.update(evaluation={"gate": {"baseline": {"from": "firstEver"}}}), "is not one of"),
        (lambda s: s.update(verification={"gate": {"maxMeanAbsDiff": 0}}), "less than or equal to the minimum"),
        (lambda s: s["export"].update(opset=9), "less than the minimum"),
        (lambda s: s["export"].update(opset=24), "greater than the maximum"),
        (lambda s: s["export"].update(precision="int4"), "is not one of"),
        (lambda s: s.pop("project"), "'project' is a required property"),
        (lambda s: s["modelConfig"].update(uri="http://x/y.py"), "does not match"),
        (lambda s: s["runtime"].update(backoffLimit=99), "greater than the maximum"),
    ],
)
def test_bad_specs_are_refused_by_the_structural_schema(mutate, needle):
    spec = deployment()["spec"]
    mutate(spec)
    errors = [e.message for e in VALIDATOR.iter_errors({"spec": spec})]
    assert any(needle in e for e in errors), errors


def test_role_grants_only_what_the_operator_uses():
    role = yaml.safe_load((ROOT / "config/rbac/role.yaml").read_text())
    assert role["kind"] == "ClusterRole"
    rules = {(r["apiGroups"][0], r["resources"][0]): set(r["verbs"]) for r in role["rules"]}
    assert rules[("", "secrets")] == {"get"}  # opt-in label + values to scrub; never list/watch
    assert rules[("modeldeploy.io", "modeldeployments")] == {"get", "list", "watch"}  # no kopf annotations
    assert rules[("modeldeploy.io", "modeldeployments/status")] == {"get", "patch"}
    assert rules[("batch", "jobs")] == {"get", "list", "watch", "create", "delete"}
    assert rules[("", "configmaps")] == {"create", "get"}  # get: owner/content check on 409
    assert rules[("", "events")] == {"create"}
    assert all("*" not in verbs for verbs in rules.values())
