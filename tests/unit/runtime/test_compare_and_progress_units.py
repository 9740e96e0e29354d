"""compare() on hand-written results.json dicts, and the runner's progress events on the toy
project (a test double for a model project) with a recording reporter (a test double for
RunProgress)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.core.results import RunResults
from modeldeploy.runners import DeploymentRunner
from modeldeploy.runners.compare import compare
from tests.unit.runtime.toy_project import ToyProject


def _lat(p50: float, p99: float, mean: float | None = None, std: float = 0.0, max_: float | None = None) -> dict:
    mean = p50 if mean is None else mean
    top = p99 if max_ is None else max_
    return {"mean": mean, "std": std, "min": p50, "max": top, "p50": p50, "p90": p99, "p95": p99, "p99": p99}


def _res(acc: float, p50: float, ckpt: str = "a" * 64) -> dict[str, Any]:
    return {
        "project": "toy",
        "status": "succeeded",
        "inputs": {"checkpoint": {"path": "x.pth", "sha256": ckpt}},
        "evaluation": {
            "onnxruntime:cpu": {
                "precision": "fp32",
                "headline_metric": "accuracy",
                "metrics": {"accuracy": acc},
                "num_samples": 3,
                "latency_ms": _lat(p50, p50 * 2),
            }
        },
    }


def _typed(doc: dict[str, Any]) -> RunResults:
    return RunResults.from_json(doc)


def test_compare_flags_metric_drop_and_latency_ratio_beyond_limits() -> None:
    c = compare(_typed(_res(0.90, 10.0)), _typed(_res(0.85, 13.0)), max_metric_drop=0.01, max_latency_ratio=1.2)
    (row,) = c.rows
    assert abs(row["delta"] + 0.05) < 1e-12 and abs(row["p50_ratio"] - 1.3) < 1e-12
    assert len(c.regressions) == 2 and "accuracy 0.9 → 0.85" in c.regressions[0] and "×1.30" in c.regressions[1]
    ok = compare(_typed(_res(0.90, 10.0)), _typed(_res(0.895, 11.0)), max_metric_drop=0.01, max_latency_ratio=1.2)
    assert not ok.regressed and ok.notes == []


def test_compare_notes_different_checkpoints_and_missing_backends() -> None:
    b = _res(0.9, 10.0, ckpt="b" * 64)
    b["evaluation"]["pytorch:cpu"] = b["evaluation"]["onnxruntime:cpu"]
    c = compare(_typed(_res(0.9, 10.0)), _typed(b))
    assert not c.regressed and not c.limits_given
    assert any("different checkpoints" in n for n in c.notes) and any(
        "pytorch:cpu is only in run B" in n for n in c.notes
    )


class _RecordingReporter:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []
        self.steps: dict[str, tuple[int, int]] = {}

    def stage_started(self, stage: str) -> None:
        self.events.append(("start", stage, None))

    def stage_finished(self, stage: str, seconds: float, *, failed: bool = False, note: str | None = None) -> None:
        self.events.append(("end", stage, "FAILED" if failed else note))

    def step(self, task: str, i: int, n: int) -> None:
        self.steps[task] = (i, n)


def test_runner_reports_every_stage_with_a_recording_reporter(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    cfg = BaseDeploymentConfig.from_dict(
        {
            "project": "toy",
            "export": {"mode": "onnx", "work_dir": str(tmp_path / "w")},
            "onnx_config": {"save_file": "toy.onnx"},
            "verification": {"num_verify_samples": 2},
            "evaluation": {"num_samples": 3, "warmup": 0},
        }
    )
    rep = _RecordingReporter()
    out = DeploymentRunner(
        cfg,
        str(toy_files["model_cfg"]),
        str(toy_files["checkpoint"]),
        project=ToyProject(),
        resolve_fn=Path,
        reporter=rep,
    ).run()
    assert out.exit_code == 0, out.results["failure"]
    started = [s for k, s, _ in rep.events if k == "start"]
    assert started == [
        "preflight",
        "load",
        "fetch",
        "export_onnx",
        "export_tensorrt",
        "verify",
        "evaluate",
        "gate",
        "upload",
        "report",
    ]
    ended = {s: note for k, s, note in rep.events if k == "end"}
    assert set(ended) == set(started)
    assert ended["export_tensorrt"] == "skipped (export.mode=onnx)" and ended["gate"].startswith("skipped")
    assert ended["export_onnx"] is None and ended["verify"] is None
    assert rep.steps["verification"] == (2, 2) and rep.steps["evaluate pytorch:cpu"] == (3, 3)
    assert rep.steps["upload"][0] == rep.steps["upload"][1] >= 3
    assert (tmp_path / "w" / "report.html").is_file()


def test_unstable_latency_is_warned_about_without_a_gate() -> None:
    from modeldeploy.evaluation.gate import stability_warnings

    entry = _res(0.9, 1.0)["evaluation"]["onnxruntime:cpu"]
    doc = _res(0.9, 1.0)
    doc["evaluation"] = {
        "pytorch:cpu": {**entry, "latency_ms": _lat(5.0, 50.0, mean=10.0, std=8.0, max_=60.0)},
        "onnxruntime:cpu": {**entry, "latency_ms": _lat(10.0, 12.0, mean=10.0, std=1.0, max_=12.0)},
    }
    (w,) = stability_warnings(_typed(doc).evaluation)
    assert w.startswith("pytorch:cpu: latency is unstable (std/mean 0.80") and "evaluation.gate.max_cv" in w
