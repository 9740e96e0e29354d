from __future__ import annotations

import json

import torch

from modeldeploy.core.results import RunResults
from modeldeploy.core.timing import StageTimer
from modeldeploy.evaluation.latency import latency_stats
from modeldeploy.runners.termination import LIMIT, build_summary, encode_summary
from modeldeploy.verification.compare import compare_outputs, summarize


def _cmp(ref: dict, test: dict, tol: float = 1e-3) -> list:
    return compare_outputs(ref, test, reference="pytorch:cpu", test_label="onnxruntime:cpu", tolerance=tol)


def test_identical_outputs_pass() -> None:
    x = torch.randn(2, 3)
    (c,) = _cmp({"o": x}, {"o": x.clone()})
    assert c.passed and c.max_abs_diff == 0.0 and c.reason is None


def test_each_failure_mode_has_its_reason() -> None:
    x = torch.randn(4)
    assert _cmp({"o": x}, {"o": x + 0.1})[0].reason == "ToleranceExceeded"
    assert _cmp({"o": x}, {"o": x[:3]})[0].reason == "ShapeMismatch"
    y = x.clone()
    y[1] = float("nan")
    assert _cmp({"o": x}, {"o": y})[0].reason == "NonFinite"
    y[1] = float("inf")
    assert _cmp({"o": x}, {"o": y})[0].reason == "NonFinite"
    assert _cmp({"o": x}, {})[0].reason == "MissingOutput"


def test_summary_keeps_worst_sample() -> None:
    x = torch.zeros(3)
    rows = summarize(_cmp({"o": x}, {"o": x + 1e-5}) + _cmp({"o": x}, {"o": x + 2e-3}))
    assert len(rows) == 1 and abs((rows[0].max_abs_diff or 0) - 2e-3) < 1e-9 and rows[0].passed is False
    rows = summarize(_cmp({"o": x}, {"o": x[:2]}) + _cmp({"o": x}, {"o": x}))
    assert rows[0].max_abs_diff is None and rows[0].reason == "ShapeMismatch"


def test_latency_stats_and_cpu_timer() -> None:
    s = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["min"] == 1.0 and s["max"] == 100.0 and s["p50"] == 3.0 and s["p99"] > s["p90"] > s["p50"]
    t = StageTimer("cpu")
    with t.total():
        with t.stage("a"):
            sum(range(10000))
        with t.stage("a"):
            pass
    stages, total = t.collect()
    assert set(stages) == {"a"} and total >= stages["a"] > 0


def test_termination_summary_fits_4kib_and_drops_uris_first() -> None:
    row = {"reference": "pytorch:cpu", "test": "onnxruntime:cpu", "output": "o", "passed": True}
    lat = {k: 1.0 for k in ("mean", "std", "min", "max", "p50", "p90", "p95")} | {"p99": 2.0}
    results = {
        "status": "succeeded",
        "project": "centerpoint",
        "failure": None,
        "artifacts": [
            {
                "name": f"onnx/part{i}.onnx",
                "kind": "onnx",
                "uri": "s3://bucket/" + "x" * 100 + f"/{i}",
                "sha256": "a" * 64,
                "bytes": 1,
            }
            for i in range(40)
        ],
        "verification": {
            "passed": True,
            "tolerance": 1e-3,
            "comparisons": [{**row, "max_abs_diff": 1e-5}, {**row, "max_abs_diff": 3e-5}],
        },
        "evaluation": {
            "onnxruntime:cpu": {
                "precision": "fp32",
                "headline_metric": "mAP",
                "metrics": {"mAP": 0.5},
                "num_samples": 2,
                "latency_ms": lat,
            }
        },
        "durations_s": {"load": 1.23456},
    }
    s = build_summary(RunResults.from_json(results), run_id="r", results_uri="s3://b/results.json")
    assert s["verification"]["max_abs_diff"] == 3e-5
    text = encode_summary(s)
    assert len(text.encode()) <= LIMIT
    d = json.loads(text)
    assert d["status"] == "succeeded" and d["evaluation"]["onnxruntime:cpu"]["value"] == 0.5
    assert all("uri" not in a for a in d["artifacts"])
    assert d.get("artifacts_truncated", 0) + len(d["artifacts"]) == 40
