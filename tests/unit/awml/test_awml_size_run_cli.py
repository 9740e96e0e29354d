"""What an AWML user runs first: ``modeldeploy run <deploy config> <AWML model config>
<Runner checkpoint> --device cpu`` at AWML size, export only, no dataset — exits 0.

The checkpoints come from mmengine's Runner training the AWML-size model for two
iterations on small synthetic inputs (optimizer, param_schedulers, message_hub; EMAHook
for YOLOX, as AWML's YOLOX_opt_elan config has). The CLI runs in a subprocess, as a user
or the Job would run it. Slow: the AWML-size exports take minutes on a loaded CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.awml.conftest import FIXTURES, MODEL_CONFIGS

CASES = {  # project: (EMAHook checkpoint?, ONNX files the export writes)
    "calibration": (False, ["calibration_classifier.onnx"]),
    "centerpoint": (False, ["pts_voxel_encoder.onnx", "pts_backbone_neck_head.onnx"]),
    "yolox": (True, ["yolox_opt_elan.onnx"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("project", sorted(CASES))
def test_modeldeploy_run_exports_awml_size_model_from_runner_checkpoint(
    project: str, runner_checkpoint, tmp_path: Path
) -> None:
    ema, onnx_files = CASES[project]
    ckpt = runner_checkpoint(project, "awml", ema)
    deploy = FIXTURES / "export_only" / f"{project}_export_only.py"
    work = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MODELDEPLOY_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            str(deploy),
            str(MODEL_CONFIGS[(project, "awml")]),
            str(ckpt.path),
            "--device",
            "cpu",
            "--work-dir",
            str(work),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    results = json.loads((work / "results.json").read_text())
    assert results["status"] == "succeeded" and not results["failure"], results
    for name in onnx_files:
        found = list(work.rglob(name))
        assert found and found[0].stat().st_size > 1000, f"{name} missing under {work}"
    assert "custom_imports not imported" in log
    if ema:
        assert "mmengine EMAHook checkpoint" in log  # state_dict (the averaged weights) was deployed
    if project == "calibration":
        assert "mmpretrain::_base_/models/resnet18.py" in log and "stand-in" in log
