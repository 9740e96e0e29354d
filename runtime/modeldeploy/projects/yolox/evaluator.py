"""COCO box metrics with pycocotools, the reference implementation every 2D result is quoted in.

Why pycocotools over faster-coco-eval: it is already installed, bit-for-bit the
reference numbers, and at demo/CI sizes (tens to a few thousand images) its evaluation
takes well under the inference time; faster-coco-eval matters only for very large sets.

Metrics: ``mAP`` (0.50:0.95), ``mAP_50``, ``mAP_75``, ``mAP_s/m/l``, ``AR_100``, per-class AP,
``gt_json`` (the ground-truth file, so ``predictions/<backend>.json`` can be re-scored by
anyone) and, when the in-graph NMS variant ran, the same metrics for its detections plus
how often its detections equal the Python postprocess's (``graph_nms``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.core.evaluator import BaseEvaluator

# agreement of two detection lists: same count, labels, and boxes/scores within these
BOX_ATOL = 1e-2  # pixels
SCORE_ATOL = 1e-4


def to_coco_results(image_id: int, det: dict[str, Any], category_ids: Sequence[int]) -> list[dict[str, Any]]:
    out = []
    for (x1, y1, x2, y2), s, lab in zip(
        np.asarray(det["boxes"]).reshape(-1, 4).tolist(),
        np.asarray(det["scores"]).tolist(),
        np.asarray(det["labels"]).tolist(),
    ):
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[int(lab)]),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(s), 6),
            }
        )
    return out


def detections_agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    sa, sb = np.asarray(a["scores"]), np.asarray(b["scores"])
    if sa.shape != sb.shape:
        return False
    return bool(
        np.array_equal(np.asarray(a["labels"]), np.asarray(b["labels"]))
        and np.allclose(sa, sb, atol=SCORE_ATOL, rtol=0)
        and np.allclose(np.asarray(a["boxes"]), np.asarray(b["boxes"]), atol=BOX_ATOL, rtol=0)
    )


def _coco_gt(gt: Path | Mapping[str, Any]) -> Any:
    from pycocotools.coco import COCO

    if not isinstance(gt, Mapping):
        return COCO(str(gt))
    coco = COCO()
    coco.dataset = copy.deepcopy(dict(gt))
    coco.createIndex()
    return coco


def coco_metrics(
    gt_json: Path | Mapping[str, Any],
    results: list[dict[str, Any]],
    image_ids: list[int],
    class_names: Sequence[str],
    category_ids: Sequence[int],
) -> dict[str, Any]:
    from pycocotools.cocoeval import COCOeval

    keys = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")
    if not results:
        return {
            **{k: 0.0 for k in keys},
            "AR_100": 0.0,
            "per_class": {n: 0.0 for n in class_names},
            "num_detections": 0,
        }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = _coco_gt(gt_json)
        dt = gt.loadRes(copy.deepcopy(results))  # loadRes adds area/id/segmentation in place
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(v) for v in ev.stats]
    out: dict[str, Any] = {k: max(stats[i], 0.0) for i, k in enumerate(keys)}
    out["AR_100"] = max(stats[8], 0.0)
    precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
    per_class = {}
    for name, cid in zip(class_names, category_ids):
        idx = ev.params.catIds.index(cid)
        p = precision[:, :, idx, 0, -1]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    out["per_class"] = per_class
    out["num_detections"] = len(results)
    out["pr_curves"] = _pr_curves(ev, class_names, category_ids)
    return out


def _pr_curves(ev: Any, class_names: Sequence[str], category_ids: Sequence[int]) -> dict[str, Any]:
    """Per-class precision over COCOeval's recall thresholds at IoU 0.50 (all areas, most
    detections), every 5th point: what the report plots. Classes without ground truth are left out."""
    precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]; -1 = no ground truth
    recall = ev.params.recThrs
    out: dict[str, Any] = {}
    for name, cid in zip(class_names, category_ids):
        p = precision[0, ::5, ev.params.catIds.index(cid), 0, -1]
        if (p > -1).any():
            out[name] = {
                "iou": 0.5,
                "recall": [round(float(r), 4) for r in recall[::5]],
                "precision": [round(max(float(v), 0.0), 4) for v in p],
            }
    return out


class CocoDetectionEvaluator(BaseEvaluator):
    headline_metric = "mAP"

    def __init__(
        self,
        gt_json: str | Path,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        gt_doc: Mapping[str, Any] | None = None,
    ) -> None:
        """``gt_doc``: the ground truth as a COCO dict when ``gt_json`` is not COCO (an AWML T4
        2D info file); it is scored in memory and written as ``ground_truth.json`` beside the
        predictions, so they can be re-scored by anyone with pycocotools."""
        self.gt_json = Path(gt_json).resolve()
        self.gt_doc = gt_doc
        self.class_names = tuple(class_names)
        self.category_ids = list(category_ids)
        self.reset()

    def reset(self) -> None:
        self._results: list[dict[str, Any]] = []
        self._graph_results: list[dict[str, Any]] = []
        self._image_ids: list[int] = []
        self._agree: list[bool] = []

    def add(self, prediction: Any, sample: dict[str, Any]) -> None:
        image_id = int(sample["image_id"])
        self._image_ids.append(image_id)
        self._results += to_coco_results(image_id, prediction, self.category_ids)
        graph: dict[str, Any] | None = prediction.get("graph")
        if graph is not None:
            self._graph_results += to_coco_results(image_id, graph, self.category_ids)
            self._agree.append(detections_agree(prediction, graph))

    def compute(self) -> dict[str, Any]:
        if not self._image_ids:
            raise ValueError("no predictions were added; nothing to evaluate")
        gt = self.gt_doc if self.gt_doc is not None else self.gt_json
        metrics = coco_metrics(gt, self._results, self._image_ids, self.class_names, self.category_ids)
        metrics["num_images"] = len(self._image_ids)
        metrics["gt_json"] = str(self.gt_json)
        if self._agree:
            g = coco_metrics(gt, self._graph_results, self._image_ids, self.class_names, self.category_ids)
            metrics["graph_nms"] = {
                "mAP": g["mAP"],
                "mAP_50": g["mAP_50"],
                "mAP_75": g["mAP_75"],
                "num_detections": g["num_detections"],
                "images_identical_to_python_postprocess": float(np.mean(self._agree)),
            }
        return metrics

    def write_predictions(self, path: Path) -> Path | None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self._results))
        if self.gt_doc is not None:
            (path.parent / "ground_truth.json").write_text(json.dumps(self.gt_doc))
        return path
