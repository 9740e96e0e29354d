"""Evaluator metrics against a confusion matrix worked out by hand."""

from __future__ import annotations

import json

import pytest

from modeldeploy.projects.calibration.evaluator import CalibrationEvaluator

Y_TRUE = [1, 1, 1, 1, 0, 0]
Y_PRED = [1, 1, 0, 0, 0, 1]
# rows = truth, cols = predicted:  [[TN0=1, 1], [2, 2]]
#   class 0 (miscalibrated): P = 1/(1+2) = 1/3, R = 1/2, F1 = 0.4
#   class 1 (calibrated):    P = 2/3,           R = 2/4, F1 = 4/7


def _filled() -> CalibrationEvaluator:
    ev = CalibrationEvaluator()
    for i, (t, p) in enumerate(zip(Y_TRUE, Y_PRED)):
        ev.add(
            {
                "label": p,
                "score": 0.5 + i / 20,
                "probs": [1 - (0.5 + i / 20), 0.5 + i / 20] if p else [0.5 + i / 20, 0.5 - i / 20],
            },
            {"gt_label": t, "sample_idx": 10 + i},
        )
    return ev


def test_metrics_match_the_hand_computed_confusion_matrix() -> None:
    m = _filled().compute()
    assert m["confusion_matrix"]["matrix"] == [[1, 1], [2, 2]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    mis, cal = m["per_class"]["miscalibrated"], m["per_class"]["calibrated"]
    assert (mis["precision"], mis["recall"], mis["f1"], mis["support"]) == (
        pytest.approx(1 / 3),
        pytest.approx(1 / 2),
        pytest.approx(0.4),
        2,
    )
    assert (cal["precision"], cal["recall"], cal["f1"], cal["support"]) == (
        pytest.approx(2 / 3),
        pytest.approx(1 / 2),
        pytest.approx(4 / 7),
        4,
    )
    assert mis["accuracy"] == pytest.approx(1 / 2) and cal["accuracy"] == pytest.approx(2 / 4)
    assert m["precision_macro"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert m["f1_macro"] == pytest.approx((0.4 + 4 / 7) / 2)
    assert m["num_samples"] == 6
    assert isinstance(m[CalibrationEvaluator.headline_metric], float)


def test_reset_and_empty() -> None:
    ev = _filled()
    ev.reset()
    with pytest.raises(ValueError, match="no predictions"):
        ev.compute()


def test_write_predictions(tmp_path) -> None:
    path = _filled().write_predictions(tmp_path / "predictions" / "onnxruntime:cpu.json")
    doc = json.loads(path.read_text())
    assert doc["classes"] == ["miscalibrated", "calibrated"]
    assert [p["sample_idx"] for p in doc["predictions"]] == list(range(10, 16))
    assert [(p["label"], p["predicted"]) for p in doc["predictions"]] == list(zip(Y_TRUE, Y_PRED))
    assert doc["predictions"][2]["score"] == pytest.approx(0.6)
