"""The chart's copies of the CRD and the RBAC rules are the single sources, byte for byte.

Helm reads only files inside the chart directory, so the CRD (crds/) and the operator's
RBAC (config/rbac/role.yaml) are copied in by scripts/sync_chart.sh; these tests fail
with the fix when someone edits one side only.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "modeldeploy-operator"


def test_chart_crd_is_identical_to_crds_dir() -> None:
    src, copy = REPO / "crds" / "modeldeployment.yaml", CHART / "crds" / "modeldeployment.yaml"
    assert copy.read_bytes() == src.read_bytes(), f"{copy} differs from {src}: run scripts/sync_chart.sh"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["modeldeployment.yaml"]


def test_chart_rbac_rules_file_is_identical_to_config_rbac() -> None:
    src, copy = REPO / "config" / "rbac" / "role.yaml", CHART / "files" / "rbac" / "role.yaml"
    assert copy.read_bytes() == src.read_bytes(), f"{copy} differs from {src}: run scripts/sync_chart.sh"
    rules = yaml.safe_load(copy.read_text())["rules"]
    assert rules and all(r["verbs"] for r in rules)


def test_sync_script_check_mode_agrees() -> None:
    proc = subprocess.run([str(REPO / "scripts" / "sync_chart.sh"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_template_hardcodes_rbac_rules() -> None:
    """The Role/ClusterRole must take its rules from files/rbac/role.yaml, never a second list."""
    text = (CHART / "templates" / "rbac.yaml").read_text()
    assert "apiGroups" not in text and "verbs" not in text
    assert 'include "modeldeploy-operator.rules"' in text


def test_chart_env_vars_are_read_by_the_operator() -> None:
    """Every MODELDEPLOY_* variable the Deployment sets must be one the operator reads."""
    rendered = (CHART / "templates" / "deployment.yaml").read_text()
    chart_vars = set(re.findall(r"name: (MODELDEPLOY_[A-Z_]+)", rendered))
    operator_src = (REPO / "operator" / "modeldeploy_operator" / "config.py").read_text()
    read_vars = set(re.findall(r'"(MODELDEPLOY_[A-Z_]+)"', operator_src))
    assert chart_vars, "the Deployment sets no MODELDEPLOY_* env"
    assert chart_vars <= read_vars, f"set by the chart but not read by the operator: {sorted(chart_vars - read_vars)}"


def test_values_validate_against_schema_and_schema_is_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False

    def closed(node: dict, path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} allows unknown keys"
            for key, sub in node["properties"].items():
                closed(sub, f"{path}.{key}")

    closed(schema, "values")
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "check-jsonschema"),
            "--schemafile",
            str(CHART / "values.schema.json"),
            str(CHART / "values.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_refuses_a_typo_and_a_bad_scope(tmp_path: Path) -> None:
    for bad in ({"rbac": {"scope": "cluster-wide"}}, {"metrics": {"prot": 9090}}, {"imagee": {}}):
        f = tmp_path / "bad.yaml"
        f.write_text(yaml.safe_dump(bad))
        proc = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "check-jsonschema"),
                "--schemafile",
                str(CHART / "values.schema.json"),
                str(f),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0, f"schema accepted {bad}"
