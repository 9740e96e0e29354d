"""Classification metrics for the calibration classifier (scikit-learn, so the numbers are
the ones every reviewer already trusts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from modeldeploy.core.evaluator import BaseEvaluator


def _plain_idx(value: Any) -> Any:
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


class CalibrationEvaluator(BaseEvaluator):
    """Accumulates (gt, predicted, score); ``compute`` → accuracy, P/R/F1, confusion matrix."""

    headline_metric = "accuracy"

    def __init__(self, class_names: tuple[str, ...] = ("miscalibrated", "calibrated")) -> None:
        self.class_names = tuple(class_names)
        self.reset()

    def reset(self) -> None:
        self._records: list[dict[str, Any]] = []

    def add(self, prediction: Any, sample: dict[str, Any]) -> None:
        self._records.append(
            {
                "sample_idx": _plain_idx(sample.get("sample_idx", sample.get("index", len(self._records)))),
                "label": int(sample["gt_label"]),
                "predicted": int(prediction["label"]),
                "score": float(prediction["score"]),
                "probs": [float(p) for p in prediction.get("probs", [])],
            }
        )

    def compute(self) -> dict[str, Any]:
        if not self._records:
            raise ValueError("no predictions were added; nothing to evaluate")
        labels = list(range(len(self.class_names)))
        y_true = np.array([r["label"] for r in self._records])
        y_pred = np.array([r["predicted"] for r in self._records])
        cm = confusion_matrix(y_true, y_pred, labels=labels)
        p, r, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        per_class = {}
        for i, name in enumerate(self.class_names):
            per_class[name] = {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                # per-class accuracy = recall of that class (fraction of its samples classified correctly)
                "accuracy": float(cm[i, i] / support[i]) if support[i] else 0.0,
            }
        present = support > 0
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "precision_macro": float(p[present].mean()) if present.any() else 0.0,
            "recall_macro": float(r[present].mean()) if present.any() else 0.0,
            "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
            "per_class": per_class,
            "confusion_matrix": {
                "labels": list(self.class_names),
                "matrix": cm.tolist(),
                "rows": "ground truth",
                "cols": "predicted",
            },
            "num_samples": int(y_true.size),
        }

    def write_predictions(self, path: Path) -> Path | None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "task": "classification",
            "classes": list(self.class_names),
            "predictions": [
                {k: r[k] for k in ("sample_idx", "label", "predicted", "score", "probs")} for r in self._records
            ],
        }
        path.write_text(json.dumps(doc, indent=1))
        return path
