"""`modeldeploy run builtin:centerpoint/deploy_tiny.py builtin:centerpoint/centerpoint_tiny.py`, shortened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.artifacts.fetch import fetch
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.projects.centerpoint.pipeline import STAGES
from modeldeploy.runners import DeploymentRunner


def test_builtin_tiny_deploy_exports_verifies_and_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    cfg = BaseDeploymentConfig.fromfile(
        fetch("builtin:centerpoint/deploy_tiny.py"),
        {
            "evaluation.num_samples": 4,
            "evaluation.warmup": 1,
            "verification.num_verify_samples": 2,
            "export.work_dir": str(tmp_path / "work"),
        },
    )
    out = DeploymentRunner(cfg, "builtin:centerpoint/centerpoint_tiny.py").run()
    assert out.exit_code == 0, out.results["failure"]
    res = json.loads(out.results_path.read_text())
    names = {Path(a["uri"]).name for a in res["artifacts"] if a["kind"] == "onnx"}
    assert names == {"pts_voxel_encoder.onnx", "pts_backbone_neck_head.onnx"}
    assert res["verification"]["passed"] and {c["output"] for c in res["verification"]["comparisons"]} == {
        "heatmap",
        "reg",
        "height",
        "dim",
        "rot",
        "vel",
    }
    ev = res["evaluation"]
    assert set(ev) == {"pytorch:cpu", "onnxruntime:cpu"}
    for e in ev.values():
        assert e["headline_metric"] == "mAP" and e["metrics"]["mAP"] > 0.2  # a trained detector, not noise
        assert set(e["stage_latency_ms"]) >= set(STAGES)
    assert abs(ev["pytorch:cpu"]["metrics"]["mAP"] - ev["onnxruntime:cpu"]["metrics"]["mAP"]) < 0.02
    sub = json.loads((tmp_path / "work" / "predictions" / "onnxruntime_cpu.json").read_text())
    assert len(sub["results"]) == 4 and sub["meta"]["use_lidar"] is True
