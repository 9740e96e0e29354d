"""`modeldeploy run` on the shipped YOLOX example, as a fresh clone runs it: builtin configs,
the committed checkpoint, the bundled synthetic COCO set (generated into a temp cache).

One CLI run (module-scoped) feeds several assertions: the ONNX graphs' IO, verification on
raw outputs and final detections, COCO metrics of both backends, predictions files, the
in-graph NMS agreeing with the Python postprocess, per-stage latency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[4]
MIN_MAP = 0.3  # the committed checkpoint scores ~0.5; far above an untrained net (~0.00)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("yolox_run")
    env = {**os.environ, "MODELDEPLOY_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "2"}
    cmd = [
        sys.executable,
        "-m",
        "modeldeploy",
        "run",
        "builtin:yolox/deploy_tiny.py",
        "builtin:yolox/yolox_tiny_256.py",
        "--work-dir",
        str(work / "out"),
        "--termination-log",
        str(work / "termination.json"),
        "--cfg-options",
        "evaluation.num_samples=24",
        "evaluation.warmup=1",
    ]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work / "out"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _io(path: Path) -> tuple[dict, dict]:
    m = onnx.load(str(path))
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return {i.name: dims(i) for i in m.graph.input}, {o.name: dims(o) for o in m.graph.output}


def test_onnx_graphs_have_the_awml_io_and_the_nms_variant(run_dir: Path, results: dict) -> None:
    names = {a["name"] for a in results["artifacts"]}
    assert {"onnx/yolox_tiny.onnx", "onnx/yolox_tiny_nms.onnx"} <= names
    main, nms = run_dir / "onnx" / "yolox_tiny.onnx", run_dir / "onnx" / "yolox_tiny_nms.onnx"
    ins, outs = _io(main)
    assert (
        ins == {"images": ["batch_size", 3, 256, 256]}
        and list(outs) == ["output"]
        and outs["output"][0] == "batch_size"
    )
    ins, outs = _io(nms)
    assert ins == {"images": ["batch_size", 3, 256, 256]}
    assert list(outs) == ["num_dets", "det_boxes", "det_scores", "det_classes"] and all(
        v[0] == "batch_size" for v in outs.values()
    )
    nodes = onnx.load(str(nms)).graph.node
    assert "NonMaxSuppression" in {n.op_type for n in nodes} and all(
        n.domain in ("", "ai.onnx") for n in nodes
    )  # no plugin
    # the shapes ONNX Runtime produces, for two batch sizes (dynamic batch)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 256, 256)).astype(np.float32)
    for b in (1, 2):
        (out,) = ort.InferenceSession(str(main), providers=["CPUExecutionProvider"]).run(None, {"images": x[:b]})
        assert (
            out.shape == (b, 32 * 32 + 16 * 16 + 8 * 8, 4 + 1 + 4)
            and out[..., 4:].min() >= 0
            and out[..., 4:].max() <= 1
        )
        n, boxes, scores, classes = ort.InferenceSession(str(nms), providers=["CPUExecutionProvider"]).run(
            None, {"images": x[:b]}
        )
        assert (n.shape, boxes.shape, scores.shape, classes.shape) == ((b,), (b, 100, 4), (b, 100), (b, 100))
        assert n.dtype == np.int64 and classes.dtype == np.int64 and (classes[0, n[0] :] == -1).all()


def test_verification_passed_on_raw_outputs_and_final_detections(results: dict) -> None:
    v = results["verification"]
    assert results["status"] == "succeeded" and v["passed"]
    assert {c["output"] for c in v["comparisons"]} == {"output", "num_dets", "det_boxes", "det_scores", "det_classes"}


def test_coco_metrics_predictions_and_stage_latency(run_dir: Path, results: dict) -> None:
    ev = results["evaluation"]
    assert set(ev) == {"pytorch:cpu", "onnxruntime:cpu"}
    for backend, e in ev.items():
        m = e["metrics"]
        assert e["headline_metric"] == "mAP" and m["mAP"] > MIN_MAP and m["mAP_50"] > m["mAP"], (backend, m["mAP"])
        assert Path(m["gt_json"]).is_file() and e["num_samples"] == 24
        assert set(e["stage_latency_ms"]) >= {"preprocess", "model", "model_nms", "postprocess"}
        preds = json.loads((run_dir / "predictions" / f"{backend.replace(':', '_')}.json").read_text())
        assert preds and set(preds[0]) == {"image_id", "category_id", "bbox", "score"}
    assert abs(ev["pytorch:cpu"]["metrics"]["mAP"] - ev["onnxruntime:cpu"]["metrics"]["mAP"]) < 0.01


def test_in_graph_nms_gives_the_same_detections_as_the_python_postprocess(results: dict) -> None:
    for e in results["evaluation"].values():
        g = e["metrics"]["graph_nms"]
        assert g["images_identical_to_python_postprocess"] == 1.0
        assert g["num_detections"] == e["metrics"]["num_detections"] and g["mAP"] == pytest.approx(
            e["metrics"]["mAP"], abs=1e-6
        )


def test_termination_summary_names_map(run_dir: Path) -> None:
    summary = json.loads((run_dir.parent / "termination.json").read_text())
    assert summary["status"] == "succeeded" and summary["evaluation"]["onnxruntime:cpu"]["metric"] == "mAP"
