"""`modeldeploy run` against a real S3 endpoint (moto server on 127.0.0.1), as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PKG = Path(__file__).resolve().parents[2] / "runtime" / "modeldeploy" / "projects" / "calibration"
FAST = ["--cfg-options", "evaluation.num_samples=8", "evaluation.warmup=1", "verification.num_verify_samples=2"]


def _run(args: list[str], tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            *args,
            "--work-dir",
            str(tmp_path / "work"),
            "--log-format",
            "json",
            "--termination-log",
            str(tmp_path / "term.json"),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_run_reads_inputs_from_s3_and_publishes_every_artifact_verified(
    s3_env: str, s3_admin: Any, bucket: str, tmp_path: Path
) -> None:
    # inputs live in S3 too: model config and checkpoint
    s3_admin.upload_file(str(PKG / "configs" / "resnet18_5ch_tiny.py"), bucket, "inputs/model.py")
    s3_admin.upload_file(str(PKG / "assets" / "resnet18_5ch_tiny.pth"), bucket, "inputs/ckpt.pth")
    root = f"s3://{bucket}/out/calib"
    prefix = f"{root}/runs/calib-1"  # each run publishes under its own prefix (docs/contracts.md §5)
    proc = _run(
        [
            "builtin:calibration/deploy_demo.py",
            f"s3://{bucket}/inputs/model.py",
            f"s3://{bucket}/inputs/ckpt.pth",
            "--artifact-uri",
            root,
            "--run-id",
            "calib-1",
            *FAST,
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    current = json.loads(s3_admin.get_object(Bucket=bucket, Key="out/calib/current.json")["Body"].read())
    assert current["prefix"] == "runs/calib-1"
    manifest = json.loads(s3_admin.get_object(Bucket=bucket, Key="out/calib/runs/calib-1/manifest.json")["Body"].read())
    names = {a["name"] for a in manifest["artifacts"]}
    assert {"results.json", "report.md", "onnx/calibration_classifier.onnx"} <= names
    for a in manifest["artifacts"]:
        body = s3_admin.get_object(Bucket=bucket, Key=f"out/calib/runs/calib-1/{a['name']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == a["sha256"], a["name"]
        assert len(body) == a["bytes"]

    results = json.loads(s3_admin.get_object(Bucket=bucket, Key="out/calib/runs/calib-1/results.json")["Body"].read())
    assert results["status"] == "succeeded"
    assert all(a["uri"].startswith(prefix + "/") for a in results["artifacts"])
    term = json.loads((tmp_path / "term.json").read_text())
    assert term["results_uri"] == f"{prefix}/results.json"
    assert term["verification"]["passed"] is True


@pytest.mark.parametrize("case", ["missing_bucket", "unreachable"])
def test_store_failures_end_with_one_clear_line(
    case: str, s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
        monkeypatch.setenv("MODELDEPLOY_S3_MAX_ATTEMPTS", "2")
        monkeypatch.setenv("MODELDEPLOY_S3_TRANSFER_ATTEMPTS", "1")
    t0 = time.monotonic()
    proc = _run(
        [
            "builtin:calibration/deploy_demo.py",
            "builtin:calibration/resnet18_5ch_tiny.py",
            "--artifact-uri",
            "s3://no-such-bucket-md/x",
            *FAST,
        ],
        tmp_path,
    )
    assert time.monotonic() - t0 < 300  # bounded: failure detection must not hang
    assert proc.returncode == 4, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("modeldeploy: error:")]
    assert len(errors) == 1
    assert "no-such-bucket-md" in errors[0]
    assert "Traceback" not in proc.stderr
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["status"] == "failed" and results["failure"]["stage"] == "preflight"  # checked before any work
