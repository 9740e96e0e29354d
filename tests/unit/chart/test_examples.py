"""examples/*.yaml: well-formed ModelDeployments whose configs the runtime accepts with the
overrides the operator renders from them (spec.export/verification/evaluation/dataset).

The API-server side (CRD schema, CEL rules) is checked in tests/e2e/test_examples_cluster.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*-deploy.yaml"))
sys.path.insert(0, str(REPO / "operator"))


def test_one_example_per_project() -> None:
    projects = {yaml.safe_load(p.read_text())["spec"]["project"] for p in EXAMPLES}
    assert projects == {"calibration", "yolox", "centerpoint"}
    assert {p.name for p in EXAMPLES} == {"calibration-deploy.yaml", "yolox-deploy.yaml", "centerpoint-deploy.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_gpu_modeldeployment_writing_to_s3(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    assert body["apiVersion"] == "modeldeploy.io/v1alpha1" and body["kind"] == "ModelDeployment"
    spec = body["spec"]
    assert spec["output"]["uri"].startswith("s3://") and spec["credentialsSecretRef"]["name"] == "s3-credentials"
    assert spec["export"]["mode"] == "both" and spec["runtime"]["device"] == "cuda"
    assert spec["runtime"]["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_runtime_accepts_the_examples_deploy_config_with_the_operators_overrides(path: Path, capsys) -> None:
    from modeldeploy.cli import main
    from modeldeploy_operator import spec as specmod

    spec = yaml.safe_load(path.read_text())["spec"]
    options = specmod.cfg_options(spec) + [f"export.device={specmod.effective_device(spec)}"]
    rc = main(["check-config", spec["deployConfig"]["uri"], "--cfg-options", *options])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"project={spec['project']}" in out.out and "mode=both" in out.out
