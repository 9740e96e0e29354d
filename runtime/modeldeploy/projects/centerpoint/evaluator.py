"""Detection3DEvaluator: nuScenes-style mAP / mAPH over a run (see ``metrics.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.projects.centerpoint.metrics import Box, boxes_from_arrays, detection_metrics, to_submission

GT_FILE_NAME = "ground_truth.json"


class CenterPointEvaluator(BaseEvaluator):
    headline_metric = "mAP"

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        self.reset()

    def reset(self) -> None:
        self._gts: list[Box] = []
        self._preds: list[Box] = []
        self._tokens: list[str] = []

    def add(self, prediction: dict[str, Any], sample: dict[str, Any]) -> None:
        token = str(sample.get("token", prediction.get("token")))
        self._tokens.append(token)
        self._gts += boxes_from_arrays(
            token, sample["gt_bboxes_3d"], sample["gt_labels_3d"], self.class_names, velocity=sample.get("gt_velocity")
        )
        self._preds += boxes_from_arrays(
            token,
            prediction["bboxes_3d"],
            prediction["labels_3d"],
            self.class_names,
            scores=prediction["scores_3d"],
            z_is_bottom=True,
        )

    def compute(self) -> dict[str, Any]:
        m = detection_metrics(self._gts, self._preds, self._tokens, self.class_names)
        m["num_predictions"] = len(self._preds)
        m["num_ground_truth"] = len(self._gts)
        return m

    def write_predictions(self, path: Path) -> Path | None:
        """``path`` (predictions/<backend>.json) + ``ground_truth.json`` beside it, same box format."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_submission(self._preds, self._tokens)))
        (path.parent / GT_FILE_NAME).write_text(json.dumps(to_submission(self._gts, self._tokens, is_gt=True)))
        return path
