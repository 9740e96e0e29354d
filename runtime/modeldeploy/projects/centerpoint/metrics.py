"""nuScenes-style 3D detection AP (centre-distance matching) and heading-aware APH.

Decision (numpy 2): nuscenes-devkit 1.2.0 declares ``numpy<2`` but its detection
algorithms (``nuscenes.eval.detection.algo.accumulate`` / ``calc_ap`` and
``nuscenes.eval.common``) only use plain numpy and run unchanged on numpy 2.4 — verified
by ``test_metrics.py``, which cross-checks against them. So mAP comes from the devkit
itself, through an adapter that builds ``EvalBoxes`` of ``DetectionBox`` from our
predictions and ground truth (no NuScenes database object). Install it without its pins::

    pip install --no-deps nuscenes-devkit==1.2.0 pyquaternion==0.9.9
    pip install tqdm cachetools      # imported by nuscenes/__init__.py

Where the devkit is absent (e.g. a GPU image without it) or a class name is not one of
its ``DETECTION_NAMES``, the same algorithm implemented below is used and the metrics
say so (``ap_implementation``). The devkit has no heading-aware AP, so APH always uses
the implementation below: identical greedy matching (score-descending, ties as the
devkit's ``sorted(...)[::-1]``, nearest unmatched GT of the class in the sample, match
iff distance < threshold), each true positive weighted by its heading accuracy
``1 - |Δyaw|/π`` (Waymo/T4MetricV2 APH), then the devkit's 101-point interpolation and
``calc_ap`` clipping (min_recall = min_precision = 0.1).

mAP / mAPH: mean over classes that have ground truth of the mean over distance thresholds
0.5, 1, 2, 4 m. Classes without ground truth are reported as null and left out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DIST_THS = (0.5, 1.0, 2.0, 4.0)
MIN_RECALL = 0.1
MIN_PRECISION = 0.1


@dataclass(frozen=True)
class Box:
    """One box in metric terms: centre (x, y, z), size (l, w, h), yaw, velocity, label, score."""

    token: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float
    velocity: tuple[float, float]
    name: str
    score: float = -1.0


def _angle_diff(a: float, b: float) -> float:
    d = (a - b + math.pi) % (2 * math.pi) - math.pi
    return abs(d)


def match_class(
    gts: Sequence[Box], preds: Sequence[Box], name: str, dist_th: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Greedy centre-distance matching as the devkit's ``accumulate``: (tp, fp, heading_acc, npos)."""
    by_token: dict[str, list[Box]] = {}
    for g in gts:
        if g.name == name:
            by_token.setdefault(g.token, []).append(g)
    npos = sum(len(v) for v in by_token.values())
    plist = [p for p in preds if p.name == name]
    order = [i for (_, i) in sorted((p.score, i) for i, p in enumerate(plist))][::-1]
    taken: set[tuple[str, int]] = set()
    tp, fp, hacc = [], [], []
    for i in order:
        p = plist[i]
        best, best_j = math.inf, None
        for j, g in enumerate(by_token.get(p.token, ())):
            if (p.token, j) in taken:
                continue
            d = math.hypot(p.center[0] - g.center[0], p.center[1] - g.center[1])
            if d < best:
                best, best_j = d, j
        if best < dist_th and best_j is not None:
            taken.add((p.token, best_j))
            tp.append(1.0)
            fp.append(0.0)
            hacc.append(1.0 - _angle_diff(by_token[p.token][best_j].yaw, p.yaw) / math.pi)
        else:
            tp.append(0.0)
            fp.append(1.0)
            hacc.append(0.0)
    return np.asarray(tp), np.asarray(fp), np.asarray(hacc), npos


def interpolated_ap(tp: np.ndarray, fp: np.ndarray, npos: int, tp_weight: np.ndarray | None = None) -> float:
    """The devkit's precision interpolation (101 recall points) + ``calc_ap`` clipping."""
    if npos == 0 or tp.sum() == 0:
        return 0.0
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    num = np.cumsum(tp * tp_weight) if tp_weight is not None else ctp
    prec = num / (ctp + cfp)
    rec = ctp / float(npos)
    prec_i = np.interp(np.linspace(0, 1, 101), rec, prec, right=0)
    prec_i = prec_i[round(100 * MIN_RECALL) + 1 :] - MIN_PRECISION
    prec_i[prec_i < 0] = 0
    return float(np.mean(prec_i)) / (1.0 - MIN_PRECISION)


PR_CURVE_DIST_TH = 2.0  # the middle of DIST_THS: the report's per-class PR curve


def pr_curve(tp: np.ndarray, fp: np.ndarray, npos: int, points: int = 41) -> dict[str, Any]:
    """Precision at evenly spaced recall levels (the same interpolation as ``interpolated_ap``,
    without the clipping), for plotting."""
    rec_levels = np.linspace(0, 1, points)
    if npos == 0 or tp.size == 0 or tp.sum() == 0:
        prec = np.zeros(points)
    else:
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        prec = np.interp(rec_levels, ctp / float(npos), ctp / (ctp + cfp), right=0)
    return {
        "distance_m": PR_CURVE_DIST_TH,
        "recall": [round(float(r), 4) for r in rec_levels],
        "precision": [round(float(p), 4) for p in prec],
    }


def devkit_available() -> bool:
    try:
        import nuscenes.eval.detection.algo  # noqa: F401
    except ImportError:
        return False
    return True


def _devkit_boxes(boxes: Sequence[Box], tokens: Sequence[str]) -> Any:
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox

    eb = EvalBoxes()
    grouped: dict[str, list[Any]] = {t: [] for t in tokens}
    for b in boxes:
        grouped.setdefault(b.token, []).append(
            DetectionBox(
                sample_token=b.token,
                translation=tuple(float(v) for v in b.center),
                size=(float(b.size[1]), float(b.size[0]), float(b.size[2])),  # nuScenes: w, l, h
                rotation=(math.cos(b.yaw / 2), 0.0, 0.0, math.sin(b.yaw / 2)),
                velocity=tuple(float(v) for v in b.velocity),
                detection_name=b.name,
                detection_score=float(b.score),
                attribute_name="",
            )
        )
    for t, lst in grouped.items():
        eb.add_boxes(t, lst)
    return eb


def devkit_ap(
    gts: Sequence[Box], preds: Sequence[Box], tokens: Sequence[str], names: Sequence[str]
) -> dict[str, dict[float, float]]:
    """AP per (class, threshold) computed by nuscenes-devkit's accumulate/calc_ap."""
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate, calc_ap

    gt_eb, pred_eb = _devkit_boxes(gts, tokens), _devkit_boxes(preds, tokens)
    return {
        n: {
            th: float(calc_ap(accumulate(gt_eb, pred_eb, n, center_distance, th), MIN_RECALL, MIN_PRECISION))
            for th in DIST_THS
        }
        for n in names
    }


def detection_metrics(
    gts: Sequence[Box],
    preds: Sequence[Box],
    tokens: Sequence[str],
    class_names: Sequence[str],
    *,
    use_devkit: bool | None = None,
) -> dict[str, Any]:
    """mAP, mAPH, per-class AP/APH per threshold, and which implementation computed AP."""
    present = [n for n in class_names if any(g.name == n for g in gts)]
    devkit_names: set[str] = set()
    if use_devkit is None or use_devkit:
        if devkit_available():
            from nuscenes.eval.detection.constants import DETECTION_NAMES

            devkit_names = {n for n in present if n in DETECTION_NAMES}
        elif use_devkit:
            raise RuntimeError("nuscenes-devkit is not importable")
    dk = devkit_ap(gts, preds, tokens, sorted(devkit_names)) if devkit_names else {}
    ap: dict[str, Any] = {}
    aph: dict[str, Any] = {}
    for n in class_names:
        if n not in present:
            ap[n] = aph[n] = None
            continue
        ap[n], aph[n] = {}, {}
        for th in DIST_THS:
            tp, fp, hacc, npos = match_class(gts, preds, n, th)
            ap[n][str(th)] = dk[n][th] if n in dk else interpolated_ap(tp, fp, npos)
            aph[n][str(th)] = interpolated_ap(tp, fp, npos, tp_weight=hacc)
        ap[n]["mean"] = float(np.mean([ap[n][str(t)] for t in DIST_THS]))
        aph[n]["mean"] = float(np.mean([aph[n][str(t)] for t in DIST_THS]))
    m_ap = float(np.mean([ap[n]["mean"] for n in present])) if present else 0.0
    m_aph = float(np.mean([aph[n]["mean"] for n in present])) if present else 0.0
    curves = {}
    for n in present:
        tp, fp, _, npos = match_class(gts, preds, n, PR_CURVE_DIST_TH)
        curves[n] = pr_curve(tp, fp, npos)
    impl = (
        "nuscenes-devkit" if devkit_names == set(present) and present else ("mixed" if devkit_names else "modeldeploy")
    )
    return {
        "mAP": m_ap,
        "mAPH": m_aph,
        "AP": ap,
        "APH": aph,
        "distance_thresholds_m": list(DIST_THS),
        "ap_implementation": impl,
        "pr_curves": curves,
    }


def boxes_from_arrays(
    token: str,
    boxes: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    scores: np.ndarray | None = None,
    velocity: np.ndarray | None = None,
    z_is_bottom: bool = False,
) -> list[Box]:
    """Rows (x, y, z, l, w, h, yaw[, vx, vy]) → ``Box``es with geometric-centre z."""
    out = []
    for i in range(len(labels)):
        b = boxes[i]
        z = float(b[2]) + (float(b[5]) / 2 if z_is_bottom else 0.0)
        vel = velocity[i] if velocity is not None else (b[7:9] if len(b) >= 9 else (0.0, 0.0))
        out.append(
            Box(
                token,
                (float(b[0]), float(b[1]), z),
                (float(b[3]), float(b[4]), float(b[5])),
                float(b[6]),
                (float(vel[0]), float(vel[1])),
                class_names[int(labels[i])],
                float(scores[i]) if scores is not None else -1.0,
            )
        )
    return out


def to_submission(boxes: Sequence[Box], tokens: Sequence[str], *, is_gt: bool = False) -> dict[str, Any]:
    """nuScenes detection submission JSON (boxes in the LiDAR frame: the sample has no ego pose)."""
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tokens}
    for b in boxes:
        results.setdefault(b.token, []).append(
            {
                "sample_token": b.token,
                "translation": [b.center[0], b.center[1], b.center[2]],
                "size": [b.size[1], b.size[0], b.size[2]],
                "rotation": [math.cos(b.yaw / 2), 0.0, 0.0, math.sin(b.yaw / 2)],
                "velocity": [b.velocity[0], b.velocity[1]],
                "detection_name": b.name,
                "detection_score": -1.0 if is_gt else b.score,
                "attribute_name": "",
            }
        )
    return {
        "meta": {
            "use_camera": False,
            "use_lidar": True,
            "use_radar": False,
            "use_map": False,
            "use_external": False,
            "frame": "lidar",
            "box_convention": "nuScenes: translation = box centre, size = [w, l, h], rotation = [w, x, y, z] yaw about +z",
        },
        "results": results,
    }


def summary_dict(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {"mAP": float(metrics["mAP"]), "mAPH": float(metrics["mAPH"])}
