"""Letterbox geometry (AWML's Resize keep_ratio + Pad 114, BGR 0–255) and COCO scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader
from modeldeploy.projects.yolox.evaluator import CocoDetectionEvaluator
from modeldeploy.projects.yolox.preprocess import Normalize, letterbox, letterbox_geometry, to_original

RAW = Normalize(None, None, False)


def test_letterbox_keeps_ratio_pads_with_114_and_keeps_bgr_0_255() -> None:
    img = np.zeros((200, 400, 3), np.uint8)
    img[..., 0] = 255  # blue (BGR)
    x, lb = letterbox(img, (256, 256), 114.0, RAW)
    assert x.shape == (1, 3, 256, 256) and x.dtype == torch.float32
    assert (lb.scale_w, lb.scale_h) == (256 / 400, 128 / 200)
    assert float(x[0, 0, :128].mean()) == 255.0 and float(x[0, 2, :128].max()) == 0.0  # channel 0 stays blue
    assert float(x[0, :, 128:].min()) == 114.0 and float(x[0, :, 128:].max()) == 114.0
    assert letterbox_geometry((200, 400), (256, 256)) == lb


def test_to_original_inverts_the_letterbox_and_clips() -> None:
    lb = letterbox_geometry((200, 400), (256, 256))
    boxes = torch.tensor([[64.0, 32.0, 128.0, 96.0], [200.0, 100.0, 300.0, 200.0]])
    out = to_original(boxes, lb)
    assert torch.allclose(out[0], torch.tensor([100.0, 50.0, 200.0, 150.0]))
    assert out[1].tolist() == [312.5, 156.25, 400.0, 200.0]


def _evaluate(loader: CocoDetectionDataLoader, predict) -> tuple[dict, CocoDetectionEvaluator]:  # type: ignore[no-untyped-def]
    ev = CocoDetectionEvaluator(loader.ann_file, loader.class_names, loader.coco.category_ids)
    for s in loader:
        ev.add(predict(s), s)
    return ev.compute(), ev


def test_ground_truth_as_predictions_scores_map_1_and_file_rescores(coco_dir: Path, tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    loader = CocoDetectionDataLoader(coco_dir / "annotations.json")

    def perfect(s):
        return {"boxes": s["gt_boxes"], "scores": np.ones(len(s["gt_labels"])), "labels": s["gt_labels"], "graph": None}

    metrics, ev = _evaluate(loader, perfect)
    assert metrics["mAP"] > 0.99 and metrics["mAP_50"] > 0.99 and set(metrics["per_class"]) == set(loader.class_names)
    assert metrics["gt_json"] == str(loader.ann_file) and "graph_nms" not in metrics
    path = ev.write_predictions(tmp_path / "predictions" / "pytorch_cpu.json")
    results = json.loads(path.read_text())
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score"}  # plain COCO results, not mutated by loadRes
    gt = COCO(metrics["gt_json"])
    e = COCOeval(gt, gt.loadRes(str(path)), "bbox")
    e.evaluate(), e.accumulate(), e.summarize()
    assert abs(e.stats[0] - metrics["mAP"]) < 1e-9


def test_no_detections_scores_zero_and_graph_agreement_is_counted(coco_dir: Path) -> None:
    loader = CocoDetectionDataLoader(coco_dir / "annotations.json")
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)}
    metrics, _ = _evaluate(loader, lambda s: {**empty, "graph": dict(empty)})
    assert metrics["mAP"] == 0.0 and metrics["num_detections"] == 0
    assert metrics["graph_nms"]["images_identical_to_python_postprocess"] == 1.0
