"""nuScenes-style AP: our matching/interpolation agrees with nuscenes-devkit's accumulate/calc_ap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modeldeploy.projects.centerpoint.evaluator import GT_FILE_NAME, CenterPointEvaluator
from modeldeploy.projects.centerpoint.metrics import (
    DIST_THS,
    Box,
    detection_metrics,
    devkit_ap,
    devkit_available,
    interpolated_ap,
    match_class,
)

CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")


def scene(seed: int, n_samples: int = 6) -> tuple[list[Box], list[Box], list[str]]:
    rng = np.random.default_rng(seed)
    gts, preds, tokens = [], [], []
    for s in range(n_samples):
        tok = f"s{s}"
        tokens.append(tok)
        for _ in range(int(rng.integers(3, 9))):
            name = CLASSES[int(rng.integers(0, 5))]
            c = (float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30)), 0.0)
            yaw = float(rng.uniform(-math.pi, math.pi))
            gts.append(Box(tok, c, (4.0, 2.0, 1.5), yaw, (0.0, 0.0), name))
            if rng.random() < 0.8:  # detected, with centre noise spanning the thresholds and heading noise
                off = rng.normal(0, 1.2, 2)
                lab = name if rng.random() < 0.9 else CLASSES[int(rng.integers(0, 5))]
                preds.append(
                    Box(
                        tok,
                        (c[0] + off[0], c[1] + off[1], 0.0),
                        (4.0, 2.0, 1.5),
                        yaw + float(rng.normal(0, 0.6)),
                        (0.0, 0.0),
                        lab,
                        float(np.round(rng.uniform(0.05, 1.0), 2)),
                    )
                )  # rounded → score ties
        for _ in range(int(rng.integers(0, 4))):  # false positives
            preds.append(
                Box(
                    tok,
                    (float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30)), 0.0),
                    (1.0, 1.0, 1.0),
                    0.0,
                    (0.0, 0.0),
                    CLASSES[int(rng.integers(0, 5))],
                    float(np.round(rng.uniform(0.05, 0.6), 2)),
                )
            )
    return gts, preds, tokens


@pytest.mark.skipif(
    not devkit_available(),
    reason="nuscenes-devkit not installed (pip install --no-deps nuscenes-devkit pyquaternion; pip install tqdm cachetools)",
)
@pytest.mark.parametrize("seed", range(4))
def test_own_ap_matches_nuscenes_devkit(seed: int) -> None:
    gts, preds, tokens = scene(seed)
    names = sorted({g.name for g in gts})
    dk = devkit_ap(gts, preds, tokens, names)
    for n in names:
        for th in DIST_THS:
            tp, fp, _, npos = match_class(gts, preds, n, th)
            assert interpolated_ap(tp, fp, npos) == pytest.approx(dk[n][th], abs=1e-12), (n, th)
    assert detection_metrics(gts, preds, tokens, CLASSES)["ap_implementation"] == "nuscenes-devkit"


def test_perfect_predictions_score_one_and_heading_errors_lower_only_maph() -> None:
    gts, _, tokens = scene(7)
    perfect = [Box(g.token, g.center, g.size, g.yaw, g.velocity, g.name, 0.9) for g in gts]
    m = detection_metrics(gts, perfect, tokens, CLASSES, use_devkit=False)
    assert m["mAP"] == pytest.approx(1.0) and m["mAPH"] == pytest.approx(1.0)
    flipped = [Box(g.token, g.center, g.size, g.yaw + math.pi / 2, g.velocity, g.name, 0.9) for g in gts]
    m2 = detection_metrics(gts, flipped, tokens, CLASSES, use_devkit=False)
    # every TP weighted 0.5 → precision 0.5 everywhere, then calc_ap's min_precision clip: (0.5 - 0.1) / 0.9
    assert m2["mAP"] == pytest.approx(1.0) and m2["mAPH"] == pytest.approx((0.5 - 0.1) / 0.9)
    assert detection_metrics(gts, [], tokens, CLASSES, use_devkit=False)["mAP"] == 0.0


def test_class_without_ground_truth_is_null_and_left_out_of_the_mean() -> None:
    gts = [Box("t", (0.0, 0.0, 0.0), (4.0, 2.0, 1.5), 0.0, (0.0, 0.0), "car")]
    preds = [Box("t", (0.1, 0.0, 0.0), (4.0, 2.0, 1.5), 0.0, (0.0, 0.0), "car", 0.8)]
    m = detection_metrics(gts, preds, ["t"], CLASSES, use_devkit=False)
    assert m["AP"]["bus"] is None and m["mAP"] == pytest.approx(1.0)


def test_evaluator_writes_nuscenes_submission_and_ground_truth(tmp_path) -> None:
    ev = CenterPointEvaluator(CLASSES)
    sample = {
        "token": "tok0",
        "gt_bboxes_3d": np.array([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.5]], dtype=np.float32),
        "gt_labels_3d": np.array([0]),
        "gt_velocity": np.array([[1.0, 0.0]], dtype=np.float32),
    }
    pred = {
        "token": "tok0",
        "bboxes_3d": np.array([[1.1, 2.0, -1.75, 4.0, 2.0, 1.5, 0.5, 1.0, 0.0]], dtype=np.float32),
        "scores_3d": np.array([0.7], dtype=np.float32),
        "labels_3d": np.array([0]),
    }
    ev.add(pred, sample)
    m = ev.compute()
    assert m["mAP"] == pytest.approx(1.0) and m["num_predictions"] == 1
    path = ev.write_predictions(tmp_path / "predictions" / "pytorch_cpu.json")
    sub = json.loads(path.read_text())
    (box,) = sub["results"]["tok0"]
    assert set(box) == {
        "sample_token",
        "translation",
        "size",
        "rotation",
        "velocity",
        "detection_name",
        "detection_score",
        "attribute_name",
    }
    assert box["translation"][2] == pytest.approx(-1.0)  # bottom z -1.75 + h/2 → centre
    assert box["size"] == pytest.approx([2.0, 4.0, 1.5])  # nuScenes w, l, h
    assert box["rotation"] == pytest.approx([math.cos(0.25), 0, 0, math.sin(0.25)])
    gt = json.loads((tmp_path / "predictions" / GT_FILE_NAME).read_text())
    assert gt["results"]["tok0"][0]["detection_score"] == -1.0
