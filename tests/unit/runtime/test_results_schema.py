"""docs/results.schema.json describes what the runner really writes: it is generated from the
results.json models (modeldeploy.core.results, scripts/results_schema.py) and the committed
file is that output; real results.json files from tiny CLI runs of the three built-in projects
(real export, ONNX Runtime, evaluation) and a failed run validate against it; it rejects what
the contract forbids; and a results.json written by an older modeldeploy still reads (compare)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "docs" / "results.schema.json").read_text())
# A real results.json written by `modeldeploy run` (calibration demo, CPU) at commit 43dd197,
# before run/inputs/latency sidecars were recorded: the oldest schema_version 1 layout.
OLDER = Path(__file__).parent / "data" / "results_43dd197.json"
FAST = ["evaluation.num_samples=2", "evaluation.warmup=0", "verification.num_verify_samples=1"]
PROJECTS = {
    "calibration": ("deploy_demo.py", "resnet18_5ch_tiny.py"),
    "yolox": ("deploy_tiny.py", "yolox_tiny_256.py"),
    "centerpoint": ("deploy_tiny.py", "centerpoint_tiny.py"),
}


def _errors(results: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(results)]


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            *args,
            "--work-dir",
            str(tmp_path / "work"),
            "--log-level",
            "WARNING",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads((tmp_path / "work" / "results.json").read_text())


def test_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_committed_schema_is_the_one_generated_from_the_models() -> None:
    from modeldeploy.core.results import results_json_schema

    assert results_json_schema() == SCHEMA, "docs/results.schema.json is stale: run python scripts/results_schema.py"
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results_schema.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_results_json_of_an_older_modeldeploy_still_reads_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    from modeldeploy.cli import main
    from modeldeploy.core.results import RunResults
    from modeldeploy.runners.compare import load_results

    doc = json.loads(OLDER.read_text())
    assert "run" not in doc and "inputs" not in doc  # really the older layout
    assert _errors(doc) == []  # what was valid stays valid
    old = load_results(str(OLDER))
    assert isinstance(old, RunResults) and old.run is None and old.to_dict() == doc  # read and written unchanged
    assert (
        old.evaluation["onnxruntime:cpu"].headline_value == doc["evaluation"]["onnxruntime:cpu"]["metrics"]["accuracy"]
    )
    assert main(["compare", str(OLDER), str(OLDER), "--max-metric-drop", "0.01", "--max-latency-ratio", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime:cpu" in out and "pytorch:cpu" in out and "no regression" in out


def test_writer_refuses_nan_and_half_done_documents() -> None:
    from modeldeploy.core.results import RunResults

    doc = RunResults.from_json(json.loads(OLDER.read_text()))
    doc.durations_s["load"] = float("nan")
    with pytest.raises(ValueError):
        doc.to_json()  # NaN is never written as a number (the runner turns it into a failure first)
    running = RunResults(project="toy")
    with pytest.raises(ValueError, match="succeeded or failed"):
        running.to_json()


def test_contracts_links_the_schema() -> None:
    assert "(results.schema.json)" in (ROOT / "docs" / "contracts.md").read_text()


@pytest.mark.parametrize("project", sorted(PROJECTS))
def test_real_run_of_each_builtin_project_matches_the_schema(tmp_path: Path, project: str) -> None:
    deploy, model = PROJECTS[project]
    res = _run(tmp_path, f"builtin:{project}/{deploy}", f"builtin:{project}/{model}", "--cfg-options", *FAST)
    assert res["status"] == "succeeded", res["failure"]
    assert _errors(res) == []
    assert res["evaluation"] and res["verification"] and res["artifacts"]  # the optional parts were exercised
    for entry in res["evaluation"].values():
        assert isinstance(entry["metrics"][entry["headline_metric"]], (int, float))
    dt.datetime.fromisoformat(
        res["run"]["started_at"].replace("Z", "+00:00")
    )  # date-time, whether or not jsonschema checks formats


def test_failed_run_matches_the_schema(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    res = _run(tmp_path, "builtin:calibration/deploy_demo.py", "builtin:calibration/resnet18_5ch_tiny.py", str(bad))
    assert res["status"] == "failed" and res["failure"]["stage"] == "load"
    assert _errors(res) == []


def test_schema_rejects_what_the_contract_forbids() -> None:
    good = {
        "schema_version": 1,
        "project": "toy",
        "status": "succeeded",
        "failure": None,
        "environment": {k: None for k in ("torch", "onnx", "onnxruntime", "tensorrt", "gpu", "cuda")},
        "artifacts": [],
        "verification": None,
        "evaluation": {},
        "durations_s": {"load": 0.1},
    }
    assert _errors(good) == []
    assert _errors({**good, "status": "running"})  # never published half-done
    assert _errors({**good, "failure": {"stage": "nowhere", "reason": "X", "message": "m"}})
    assert _errors({**good, "evaluation": {"onnx:cpu": {}}})  # backend keys are <backend>:<device type>
    assert _errors({**good, "artifacts": [{"name": "a", "kind": "onnx", "sha256": "xyz", "bytes": 1}]})
    no_verification = dict(good)
    del no_verification["verification"]
    assert _errors(no_verification)
