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
    rc = main(["check-config", spec["deployConfig"]["uri"], "--project", spec["project"], "--cfg-options", *options])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"project={spec['project']}" in out.out and "mode=both" in out.out


def _plan(spec: dict):
    """The runtime's dry run on the config the operator renders for ``spec`` (no weights, no data)."""
    from modeldeploy.artifacts.fetch import fetch
    from modeldeploy.cli import _load_config, _parse_cfg_options
    from modeldeploy.runners.plan_check import check_plan
    from modeldeploy_operator import spec as specmod

    options = specmod.cfg_options(spec) + [f"export.device={specmod.effective_device(spec)}"]
    cfg = _load_config(spec["deployConfig"]["uri"], _parse_cfg_options(options))  # exactly as `run` loads it
    return check_plan(cfg, str(fetch(spec["modelConfig"]["uri"])))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_as_shipped_passes_the_full_plan_check(path: Path) -> None:
    """Every graph the example exports has a TensorRT profile, and every engine it builds is
    evaluated (otherwise `kubectl get` shows an engine precision beside another backend's latency)."""
    spec = yaml.safe_load(path.read_text())["spec"]
    report = _plan(spec)
    assert report.graphs, "the plan exports no graph"
    assert report.warnings == []


def test_example_with_a_dropped_profile_fails_the_plan_check() -> None:
    from modeldeploy.errors import ConfigError

    spec = yaml.safe_load((REPO / "examples" / "yolox-deploy.yaml").read_text())["spec"]
    spec["export"]["profiles"] = [p for p in spec["export"]["profiles"] if p["component"] != "yolox_nms"]
    with pytest.raises(ConfigError, match="yolox_nms.*has no profile"):
        _plan(spec)


def test_example_that_builds_an_engine_it_never_evaluates_is_flagged() -> None:
    from modeldeploy.cli import _load_config
    from modeldeploy.runners.plan_check import unevaluated_engine_warning

    cfg = _load_config("builtin:calibration/deploy_demo.py", {"export.mode": "both", "export.device": "cuda"})
    assert "does not evaluate it" in (unevaluated_engine_warning(cfg) or "")
    cfg = _load_config("builtin:calibration/deploy_gpu.py", {})
    assert unevaluated_engine_warning(cfg) is None
