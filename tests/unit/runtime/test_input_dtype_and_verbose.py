"""model_io.input_dtype and evaluation.verbose are used, not silently accepted (issue #15).

Toy project (an in-test project: a test double for a real model project) with a real ONNX
export and real ONNX Runtime."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyProject


def _run(tmp_path: Path, toy_files: dict[str, Path], **over: object):
    raw = {
        "project": "toy",
        "export": {"mode": "onnx", "work_dir": str(tmp_path / "work")},
        "verification": {"num_verify_samples": 1},
        "evaluation": {"num_samples": 3, "warmup": 0},
    }
    raw.update(over)
    cfg = BaseDeploymentConfig.from_dict(raw, source="deploy.py")
    return DeploymentRunner(
        cfg, str(toy_files["model_cfg"]), str(toy_files["checkpoint"]), project=ToyProject(), resolve_fn=Path
    ).run()


def test_input_dtype_that_the_graph_does_not_have_is_a_config_error(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    out = _run(tmp_path, toy_files, model_io={"input_dtype": "float16"})
    assert out.exit_code == 2 and out.results["status"] == "failed"
    f = out.results["failure"]
    assert f["stage"] == "export_onnx" and f["reason"] == "ConfigError"
    assert "model_io.input_dtype is 'float16'" in f["message"] and "toy.onnx is float32" in f["message"]


def test_input_dtype_matching_the_graph_passes(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    from modeldeploy.exporters.input_dtype import check_input_dtype

    out = _run(tmp_path, toy_files, model_io={"input_dtype": "float32"}, evaluation={"enabled": False})
    assert out.exit_code == 0, out.results["failure"]
    onnx = tmp_path / "work" / "onnx" / "toy.onnx"
    assert check_input_dtype([onnx], "input", "float32", "x") == 1
    assert (
        check_input_dtype([onnx], "no_such_input", "float16", "x") == 0
    )  # other components' inputs are not this key's


@pytest.mark.parametrize("verbose", [True, False])
def test_evaluation_verbose_logs_one_line_per_sample(
    tmp_path: Path, toy_files: dict[str, Path], caplog: pytest.LogCaptureFixture, verbose: bool
) -> None:
    caplog.set_level(logging.INFO, logger="modeldeploy.evaluation.runner")
    out = _run(tmp_path, toy_files, evaluation={"num_samples": 3, "warmup": 0, "verbose": verbose})
    assert out.exit_code == 0, out.results["failure"]
    lines = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "sample"]
    if not verbose:
        assert lines == []
        return
    assert len(lines) == 3 * len(out.results["evaluation"])  # every timed sample of every backend
    assert any(line.startswith("evaluate onnxruntime:cpu sample 3/3 (index ") and " ms " in line for line in lines), (
        lines
    )
