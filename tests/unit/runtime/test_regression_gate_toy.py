"""evaluation.gate on the toy project (a test double for a model project) with real ONNX
export and ONNX Runtime: a degraded engine (its ONNX weights flipped) trips the gate with
exit 3 / RegressionDetected; the good engine passes the same gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyLoader, ToyNet, ToyProject


def _good_checkpoint(path: Path) -> Path:
    """Weights that compute sign(mean(x)) — the toy label — so PyTorch scores well above chance."""
    net = ToyNet()
    with torch.no_grad():
        net.conv.weight.zero_()
        net.conv.bias.zero_()
        net.conv.weight[0] = 1.0 / 27  # channel 0: +local mean, channel 1: -local mean
        net.conv.weight[1] = -1.0 / 27
        net.fc.weight.zero_()
        net.fc.bias.zero_()
        net.fc.weight[1, 0], net.fc.weight[1, 1] = 1.0, -1.0  # class 1 iff mean(relu(m)) > mean(relu(-m))
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def _cfg(work: Path, **extra: object) -> BaseDeploymentConfig:
    raw = {
        "project": "toy",
        "export": {"mode": "onnx", "work_dir": str(work)},
        "onnx_config": {"save_file": "toy.onnx"},
        "verification": {"num_verify_samples": 2, "tolerance": 1e-4},
        "evaluation": {"num_samples": 6, "warmup": 1},
    }
    for k, v in extra.items():
        raw[k] = {**raw.get(k, {}), **v}  # type: ignore[dict-item]
    return BaseDeploymentConfig.from_dict(raw)


def _run(cfg: BaseDeploymentConfig, tmp_path: Path, ckpt: Path, name: str):
    model_cfg = tmp_path / "model_cfg.py"
    model_cfg.write_text("model = dict(type='ToyNet')\n")
    return DeploymentRunner(
        cfg,
        str(model_cfg),
        str(ckpt),
        project=ToyProject(),
        resolve_fn=Path,
        termination_log=str(tmp_path / f"{name}.term.json"),
    ).run()


def _flip_classes(src: Path, dst_dir: Path) -> Path:
    """A degraded engine: the classifier's weight rows swapped (every prediction inverted)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    m = onnx.load(str(src))
    flipped = 0
    for init in m.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.ndim >= 1 and a.shape[0] == 2 and (a.ndim == 1 or a.shape[1] == 4):  # fc.weight (2, 4) and fc.bias (2,)
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a[::-1]), init.name))
            flipped += 1
    assert flipped == 2, "toy graph layout changed: expected fc.weight and fc.bias"
    onnx.save(m, str(dst_dir / "toy.onnx"))
    return dst_dir


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("gate")
    ckpt = _good_checkpoint(tmp / "good.pth")
    out = _run(
        _cfg(tmp / "good", evaluation={"gate": {"max_metric_drop": 0.0, "max_latency_ms": 60_000.0}}), tmp, ckpt, "good"
    )
    assert out.exit_code == 0, out.results["failure"]
    return tmp, ckpt, out.results


def test_gate_passes_on_the_good_engine(good_run: tuple[Path, Path, dict]) -> None:
    tmp, _, res = good_run
    labels = ToyLoader().y
    acc = res["evaluation"]["pytorch:cpu"]["metrics"]["accuracy"]
    assert acc > float((labels == 0).float().mean()) and acc > 0.5  # the precondition that makes a flip a drop
    assert res["gate"]["passed"] is True and res["gate"]["violations"] == []
    assert res["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"] == acc
    term = json.loads((tmp / "good.term.json").read_text())
    assert term["status"] == "succeeded" and term["failure"] is None


def test_gate_trips_on_a_degraded_engine_with_exit_3(good_run: tuple[Path, Path, dict]) -> None:
    tmp, ckpt, good = good_run
    bad_dir = _flip_classes(tmp / "good" / "onnx" / "toy.onnx", tmp / "degraded")
    cfg = _cfg(
        tmp / "bad",
        verification={"enabled": False},  # the gate, not verification, must catch it
        evaluation={
            "gate": {"max_metric_drop": 0.01},
            "backends": {"pytorch": {}, "onnxruntime": {"model_dir": str(bad_dir)}},
        },
    )
    out = _run(cfg, tmp, ckpt, "bad")
    assert out.exit_code == 3
    res = json.loads(out.results_path.read_text())
    assert res["status"] == "failed"
    assert res["failure"]["reason"] == "RegressionDetected" and res["failure"]["stage"] == "gate"
    ref = res["evaluation"]["pytorch:cpu"]["metrics"]["accuracy"]
    bad = res["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    assert ref == good["evaluation"]["pytorch:cpu"]["metrics"]["accuracy"] and bad < ref - 0.01
    (v,) = res["gate"]["violations"]
    assert (
        v["backend"] == "onnxruntime:cpu"
        and v["metric"] == "accuracy"
        and v["value"] == bad
        and v["reference_value"] == ref
    )
    msg = res["failure"]["message"]
    assert "onnxruntime:cpu" in msg and "accuracy" in msg and "pytorch:cpu" in msg and "0.01" in msg
    term = json.loads((tmp / "bad.term.json").read_text())
    assert term["failure"]["reason"] == "RegressionDetected"
    # a failed run never moves the publication pointer
    assert not (tmp / "bad" / "current.json").exists()


def test_latency_and_stability_limits_name_backend_value_and_limit(good_run: tuple[Path, Path, dict]) -> None:
    from modeldeploy.config.sections import EvaluationGate
    from modeldeploy.core.results import RunResults
    from modeldeploy.evaluation.gate import evaluation_violations

    _, _, res = good_run
    ev = RunResults.from_json(res).evaluation  # the results.json the run wrote, read back typed
    tiny = min(e.latency_ms.p50 for e in ev.values()) / 2
    found = evaluation_violations(ev, EvaluationGate(max_latency_ms=tiny))
    assert {v.backend for v in found} == set(ev) and all(v.metric == "latency_p50_ms" and v.value > tiny for v in found)
    cvs = {k: e.latency_ms.std / e.latency_ms.mean for k, e in ev.items()}
    limit = min(cvs.values()) / 2
    assert limit > 0
    found = evaluation_violations(ev, EvaluationGate(max_cv=limit))
    assert {v.backend for v in found} == set(ev) and all(v.metric == "latency_cv" for v in found)


def test_raw_latencies_live_in_sidecars_named_by_results(good_run: tuple[Path, Path, dict]) -> None:
    tmp, _, res = good_run
    for label, e in res["evaluation"].items():
        side = json.loads((tmp / "good" / e["latency_samples"]).read_text())
        assert side["backend"] == label and len(side["total"]) == e["num_samples"]
        assert min(side["total"]) == pytest.approx(e["latency_ms"]["min"], abs=1e-3)
        assert "raw_latency_ms" not in e
    run = res["run"]
    assert run["started_at"].endswith("Z") and run["finished_at"] >= run["started_at"] and run["id"]
    assert len(res["inputs"]["checkpoint"]["sha256"]) == 64 and len(res["inputs"]["model_config"]["sha256"]) == 64
