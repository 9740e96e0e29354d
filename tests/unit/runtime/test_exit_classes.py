"""docs/contracts.md exit-code table, row by row, through the real runner (toy project).

Doubles used here are named as such: ``_NaNMetricEvaluator`` (an evaluator that reports a
NaN score, as a real one does on an all-NaN model) and the toy project itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from modeldeploy.artifacts.fetch import SourceNotFoundError, fetch
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.errors import (
    ArtifactStoreError,
    BackendUnavailableError,
    CheckpointError,
    ConfigError,
    DataError,
    EvaluationFailed,
    IONameMismatch,
    LocalStorageError,
    ModelDeployError,
    VerificationFailed,
)
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyEvaluator, ToyNet, ToyProject


@pytest.mark.parametrize(
    "cls, code",
    [
        (ModelDeployError, 1),
        (ConfigError, 2),
        (SourceNotFoundError, 2),
        (CheckpointError, 2),
        (DataError, 2),
        (IONameMismatch, 2),
        (BackendUnavailableError, 2),
        (LocalStorageError, 2),
        (VerificationFailed, 3),
        (EvaluationFailed, 3),
        (ArtifactStoreError, 4),
    ],
)
def test_table_codes(cls: type[ModelDeployError], code: int) -> None:
    assert cls("x").exit_code == code


def _cfg(tmp_path: Path, **over: Any) -> BaseDeploymentConfig:
    raw: dict[str, Any] = {
        "project": "toy",
        "export": {"mode": "onnx", "work_dir": str(tmp_path / "work")},
        "onnx_config": {"save_file": "toy.onnx"},
        "verification": {"num_verify_samples": 1, "tolerance": 1e-4},
        "evaluation": {"num_samples": 3, "warmup": 0},
    }
    raw.update(over)
    return BaseDeploymentConfig.from_dict(raw)


def _run(
    tmp_path: Path, toy_files: dict[str, Path], cfg: BaseDeploymentConfig, project: Any = None, ckpt: Path | None = None
) -> Any:
    runner = DeploymentRunner(
        cfg,
        str(toy_files["model_cfg"]),
        str(ckpt or toy_files["checkpoint"]),
        project=project or ToyProject(),
        resolve_fn=Path,
        termination_log=str(tmp_path / "term.json"),
        run_id="r",
    )
    return runner.run()


def _strict(path: Path) -> Any:
    def reject(name: str) -> None:
        raise AssertionError(f"{path} holds {name}: not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def test_wrong_onnx_io_names_exit_2_not_retried(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    torch.onnx.export(
        ToyNet().eval(),
        (torch.zeros(1, 3, 8, 8),),
        str(other / "toy.onnx"),
        input_names=["images"],
        output_names=["output"],
        dynamo=False,
    )
    cfg = _cfg(
        tmp_path,
        evaluation={"num_samples": 2, "warmup": 0, "backends": {"onnxruntime": {"model_dir": str(other)}}},
        verification={"enabled": False},
    )
    out = _run(tmp_path, toy_files, cfg)
    assert out.exit_code == 2, out.results["failure"]
    assert out.results["failure"]["reason"] == "IONameMismatch" and "images" in out.results["failure"]["message"]


def test_all_inf_checkpoint_fails_verification_exit_3(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    ckpt = tmp_path / "inf.pth"
    torch.save({"state_dict": {k: torch.full_like(v, math.inf) for k, v in ToyNet().state_dict().items()}}, ckpt)
    out = _run(tmp_path, toy_files, _cfg(tmp_path), ckpt=ckpt)
    assert out.exit_code == 3
    assert out.results["failure"]["stage"] == "verify" and "NonFinite" in out.results["failure"]["message"]
    res = _strict(tmp_path / "work" / "results.json")
    row = res["verification"]["comparisons"][0]
    assert row["passed"] is False and row["reason"] == "NonFinite" and row["max_abs_diff"] is None
    assert not (tmp_path / "work" / "current.json").exists(), "a failed run never becomes the current publication"
    assert _strict(tmp_path / "term.json")["published_current"] is False


class _NaNMetricEvaluator(ToyEvaluator):
    """Test double: an evaluator whose score is NaN and whose predictions file holds NaN."""

    def compute(self) -> dict[str, Any]:
        return {"accuracy": float("nan")}

    def write_predictions(self, path: Path) -> Path:
        path.write_text(json.dumps({"scores": [0.5, float("nan"), float("inf")]}))
        return path


class _NaNMetricProject(ToyProject):
    def build_evaluator(self, cfg: Any, model_cfg: Any) -> BaseEvaluator:
        return _NaNMetricEvaluator()


def test_nan_metric_with_a_double_evaluator_fails_exit_3_and_every_json_is_strict(
    tmp_path: Path, toy_files: dict[str, Path]
) -> None:
    out = _run(tmp_path, toy_files, _cfg(tmp_path), project=_NaNMetricProject())
    assert out.exit_code == 3
    assert out.results["failure"]["stage"] == "evaluate" and out.results["failure"]["reason"] == "NonFiniteMetric"
    assert "metrics.accuracy" in out.results["failure"]["message"]
    work = tmp_path / "work"
    res = _strict(work / "results.json")
    assert res["status"] == "failed" and res["evaluation"]["pytorch:cpu"]["metrics"]["accuracy"] is None
    for p in list(work.rglob("*.json")) + [tmp_path / "term.json"]:
        _strict(p)
    preds = _strict(next(work.rglob("predictions/*.json")))
    assert preds["scores"] == [0.5, None, None]


def test_missing_local_input_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError) as info:
        fetch(tmp_path / "nope.pth")
    assert info.value.exit_code == 2


def test_model_dir_naming_a_publication_root_uses_the_current_good_run(
    tmp_path: Path, toy_files: dict[str, Path]
) -> None:
    first = _run(tmp_path / "a", toy_files, _cfg(tmp_path / "a"))
    assert first.exit_code == 0
    published_root = tmp_path / "a" / "work"  # the default artifact dir: holds current.json + runs/r/
    cfg = _cfg(
        tmp_path / "b",
        export={"mode": "none", "work_dir": str(tmp_path / "b" / "work")},
        evaluation={"num_samples": 2, "warmup": 0, "backends": {"onnxruntime": {"model_dir": str(published_root)}}},
    )
    runner = DeploymentRunner(
        cfg,
        str(toy_files["model_cfg"]),
        str(toy_files["checkpoint"]),
        project=ToyProject(),
        termination_log=str(tmp_path / "b" / "term.json"),
        run_id="reader",
    )  # default resolve: fetch()
    out = runner.run()
    assert out.exit_code == 0, out.results["failure"]
    assert (
        out.results["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
        == first.results["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    )
