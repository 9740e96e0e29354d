"""The CLI's contract for bad input: non-zero exit, exactly one clear line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

CAL = "builtin:calibration"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy", "run", *args, "--work-dir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("modeldeploy: error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_misspelled_key(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.py"
    cfg.write_text("project='calibration'\nexport=dict(mode='onnx', devcie='cpu')\n")
    proc = _run(tmp_path, str(cfg), f"{CAL}/resnet18_5ch_tiny.py")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "export.devcie" in line and "did you mean 'export.device'" in line and str(cfg) in line


def test_checkpoint_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"\x00garbage" * 100)
    proc = _run(tmp_path, f"{CAL}/deploy_demo.py", f"{CAL}/resnet18_5ch_tiny.py", str(bad))
    assert proc.returncode == 2
    assert "not a PyTorch checkpoint" in _one_error_line(proc)


def test_checkpoint_with_wrong_keys(tmp_path: Path) -> None:
    bad = tmp_path / "model.pth"
    torch.save(
        {"state_dict": {"backbone.conv1.weight": torch.zeros(16, 3, 7, 7), "neck.fc.weight": torch.zeros(2, 2)}}, bad
    )
    proc = _run(tmp_path, f"{CAL}/deploy_demo.py", f"{CAL}/resnet18_5ch_tiny.py", str(bad))
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert "CheckpointMismatch" in line and "missing key" in line and "unexpected key" in line


@pytest.mark.parametrize("missing", ["deploy", "checkpoint"])
def test_missing_files(tmp_path: Path, missing: str) -> None:
    if missing == "deploy":
        proc = _run(tmp_path, str(tmp_path / "nope.py"), f"{CAL}/resnet18_5ch_tiny.py")
    else:
        proc = _run(tmp_path, f"{CAL}/deploy_demo.py", f"{CAL}/resnet18_5ch_tiny.py", str(tmp_path / "nope.pth"))
    assert proc.returncode == 2
    assert "nope" in _one_error_line(proc)


def test_trt_requested_without_tensorrt_fails_before_any_work(tmp_path: Path) -> None:
    proc = _run(
        tmp_path,
        f"{CAL}/deploy_demo.py",
        f"{CAL}/resnet18_5ch_tiny.py",
        "--cfg-options",
        "export.mode=trt",
        "export.device=cuda:0",
    )
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert ("TensorRT is not installed" in line) or ("CUDA device is requested but none is visible" in line)
    assert not (tmp_path / "work" / "onnx").exists()  # nothing exported, nothing downloaded
