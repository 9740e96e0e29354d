"""evaluation.gate.baseline on the toy project (a test double for a model project) with real
ONNX export, ONNX Runtime and a real local publication root: a worse checkpoint — every
backend degraded alike, which the within-run gate cannot see — trips the baseline gate with
exit 3 / RegressionDetected and leaves current.json on the good run; a good run against the
same baseline passes and publishes; no baseline (a first generation) passes with a note."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from modeldeploy.cli import build_parser
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.test_regression_gate_toy import _good_checkpoint
from tests.unit.runtime.toy_project import ToyNet, ToyProject


def _bad_checkpoint(good: Path, path: Path) -> Path:
    """The good weights with the classifier's rows swapped: every prediction inverted."""
    state = torch.load(good, map_location="cpu")["state_dict"]
    net = ToyNet()
    net.load_state_dict(state)
    with torch.no_grad():
        net.fc.weight.copy_(net.fc.weight.flip(0))
        net.fc.bias.copy_(net.fc.bias.flip(0))
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def _run(tmp: Path, ckpt: Path, name: str, baseline: dict) -> tuple[int, dict, str | None]:
    cfg = BaseDeploymentConfig.from_dict(
        {
            "project": "toy",
            "export": {"mode": "onnx", "work_dir": str(tmp / name), "artifact_uri": str(tmp / "pub")},
            "onnx_config": {"save_file": "toy.onnx"},
            "verification": {"num_verify_samples": 2, "tolerance": 1e-4},
            # the within-run gate is on too: it must NOT be what catches a worse checkpoint
            "evaluation": {"num_samples": 6, "warmup": 1, "gate": {"max_metric_drop": 0.0, "baseline": baseline}},
        }
    )
    model_cfg = tmp / "model_cfg.py"
    model_cfg.write_text("model = dict(type='ToyNet')\n")
    out = DeploymentRunner(
        cfg,
        str(model_cfg),
        str(ckpt),
        project=ToyProject(),
        resolve_fn=Path,
        run_id=name,
        termination_log=str(tmp / f"{name}.term.json"),
    ).run()
    return out.exit_code, json.loads(out.results_path.read_text()), (out.error.one_line() if out.error else None)


def _current(tmp: Path) -> str:
    return json.loads((tmp / "pub" / "current.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("baseline")
    good = _good_checkpoint(tmp / "good.pth")
    code, res, err = _run(tmp, good, "g1", {"max_metric_drop": 0.01})  # limits, no uri: a first generation
    assert code == 0, err
    return tmp, good, res


def test_first_generation_without_baseline_passes_and_says_so(first: tuple[Path, Path, dict]) -> None:
    tmp, _, res = first
    base = res["gate"]["baseline"]
    assert base["uri"] is None and base["passed"] is True and "first generation" in base["note"]
    assert _current(tmp) == "g1"


def test_worse_checkpoint_trips_the_baseline_gate_and_keeps_the_good_publication(
    first: tuple[Path, Path, dict], caplog: pytest.LogCaptureFixture
) -> None:
    tmp, good, g1 = first
    bad = _bad_checkpoint(good, tmp / "bad.pth")
    baseline_uri = str(tmp / "pub" / "runs" / "g1" / "results.json")
    code, res, err = _run(tmp, bad, "g2", {"uri": baseline_uri, "max_metric_drop": 0.01})
    assert code == 3 and res["status"] == "failed"
    assert res["failure"]["reason"] == "RegressionDetected" and res["failure"]["stage"] == "gate"
    # every backend degraded alike: the within-run gate saw nothing, the baseline gate did
    assert res["gate"]["violations"] == []
    rec = res["gate"]["baseline"]
    assert rec["passed"] is False and rec["run_id"] == g1["run"]["id"]
    acc1 = g1["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    acc2 = res["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    assert acc2 < acc1 - 0.01
    row = next(r for r in rec["rows"] if r["backend"] == "onnxruntime:cpu")
    assert row["a"] == acc1 and row["b"] == acc2
    assert any("onnxruntime:cpu" in r and "accuracy" in r for r in rec["regressions"])
    assert err is not None and "baseline" in err and baseline_uri in err
    assert any("checkpoint" in n for n in rec["notes"])  # the runs started from different checkpoints
    term = json.loads((tmp / "g2.term.json").read_text())
    assert term["failure"]["reason"] == "RegressionDetected" and term["published_current"] is False
    assert _current(tmp) == "g1"  # the good publication stays current


def test_good_run_against_the_baseline_passes_and_publishes(first: tuple[Path, Path, dict]) -> None:
    tmp, good, _ = first
    code, res, err = _run(tmp, good, "g3", {"uri": str(tmp / "pub"), "max_metric_drop": 0.01})  # a publication root
    assert code == 0, err
    rec = res["gate"]["baseline"]
    assert rec["passed"] is True and rec["regressions"] == [] and rec["run_id"] == "g1"
    assert _current(tmp) == "g3"


def test_a_vanished_baseline_passes_with_a_warning(
    first: tuple[Path, Path, dict], caplog: pytest.LogCaptureFixture
) -> None:
    tmp, good, _ = first
    gone = str(tmp / "pub" / "runs" / "deleted" / "results.json")
    with caplog.at_level(logging.WARNING, logger="modeldeploy.gate"):
        code, res, err = _run(tmp, good, "g4", {"uri": gone, "max_metric_drop": 0.01})
    assert code == 0, err
    assert "not found" in res["gate"]["baseline"]["note"]
    assert any(gone in r.getMessage() for r in caplog.records)


def test_baseline_flag_sets_the_config_key() -> None:
    from modeldeploy.cli import _override_flags

    args = build_parser().parse_args(["run", "d.py", "m.py", "--baseline", "s3://b/p/results.json"])
    assert args.baseline == "s3://b/p/results.json"
    assert _override_flags(args)["evaluation.gate.baseline.uri"] == "--baseline s3://b/p/results.json"


def test_baseline_limits_are_validated() -> None:
    from modeldeploy.errors import ConfigError

    for bad in ({"max_metric_drop": -1}, {"max_latency_ratio": 0}, {"max_latency_ratio": float("inf")}, {"x": 1}):
        with pytest.raises((ConfigError, ValueError)):
            BaseDeploymentConfig.from_dict({"project": "toy", "evaluation": {"gate": {"baseline": bad}}})
