"""Issue #12 must-show, as a user runs it: the calibration demo published once (good), then
the same model with every weight +inf. The CLI exits 3 (verification: NonFinite), every
JSON it wrote is strict, and current.json still names the good run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

PKG = Path(__file__).resolve().parents[3] / "runtime" / "modeldeploy" / "projects" / "calibration"
FAST = ["--cfg-options", "evaluation.num_samples=4", "evaluation.warmup=0", "verification.num_verify_samples=1"]


def _run(tmp_path: Path, ckpt: str, run_id: str, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            "builtin:calibration/deploy_demo.py",
            "builtin:calibration/resnet18_5ch_tiny.py",
            ckpt,
            "--work-dir",
            str(tmp_path / f"work-{run_id}"),
            "--artifact-uri",
            str(store),
            "--run-id",
            run_id,
            "--log-format",
            "json",
            "--termination-log",
            str(tmp_path / f"term-{run_id}.json"),
            *FAST,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _strict(path: Path) -> dict:
    def reject(name: str) -> None:
        raise AssertionError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def test_all_inf_checkpoint_exits_3_and_the_good_publication_stays_current(tmp_path: Path) -> None:
    store = tmp_path / "published"
    good = _run(tmp_path, "builtin:calibration/resnet18_5ch_tiny.pth", "good", store)
    assert good.returncode == 0, good.stderr[-3000:]
    pointer = (store / "current.json").read_bytes()
    assert json.loads(pointer)["prefix"] == "runs/good"

    ckpt = torch.load(
        PKG / "assets" / "resnet18_5ch_tiny.pth", map_location="cpu", weights_only=False
    )  # our own shipped asset
    sd = ckpt.get("state_dict", ckpt)
    for k, v in sd.items():
        if torch.is_tensor(v) and v.is_floating_point():
            sd[k] = torch.full_like(v, float("inf"))
    torch.save(ckpt, tmp_path / "inf.pth")

    bad = _run(tmp_path, str(tmp_path / "inf.pth"), "inf", store)
    assert bad.returncode == 3, bad.stderr[-3000:]
    lines = [x for x in bad.stderr.splitlines() if x.startswith("modeldeploy: error:")]
    assert len(lines) == 1 and "NonFinite" in lines[0], bad.stderr[-2000:]
    term = _strict(tmp_path / "term-inf.json")
    assert term["status"] == "failed" and term["failure"]["stage"] == "verify" and term["published_current"] is False
    assert term["results_uri"].endswith("/runs/inf/results.json")
    assert _strict(store / "runs" / "inf" / "results.json")["status"] == "failed"
    for p in list((tmp_path / "work-inf").rglob("*.json")) + list(store.rglob("*.json")):
        _strict(p)
    assert (store / "current.json").read_bytes() == pointer, "the failed run must leave the good publication current"
    assert _strict(store / "runs" / "good" / "results.json")["status"] == "succeeded"
