"""Cross-backend comparison of *decoded* boxes (complements raw-output verification).

Raw head outputs within tolerance can still flip a box across the score threshold or
an NMS decision; this compares the final box sets: each reference box is matched to the
nearest unmatched test box of the same label, and the result reports unmatched boxes
and the worst centre/size/yaw/score differences. Boxes whose score is within
``score_margin`` of the decoder's threshold may legitimately appear on one side only and
are not counted as unmatched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def compare_box_sets(
    ref: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    *,
    center_tol: float = 0.05,
    size_tol: float = 0.05,
    yaw_tol: float = 0.02,
    score_tol: float = 0.01,
    score_threshold: float = 0.0,
    score_margin: float = 0.01,
) -> dict[str, Any]:
    """Compare two predictions ({bboxes_3d [K,9], scores_3d [K], labels_3d [K]}); JSON-able result."""
    rb, rs, rl = (np.asarray(ref[k]) for k in ("bboxes_3d", "scores_3d", "labels_3d"))
    tb, ts, tl = (np.asarray(test[k]) for k in ("bboxes_3d", "scores_3d", "labels_3d"))
    used = np.zeros(len(tb), dtype=bool)
    worst = {"center": 0.0, "size": 0.0, "yaw": 0.0, "score": 0.0}
    unmatched_ref = 0
    for i in np.argsort(-rs, kind="stable"):
        cand = np.where((tl == rl[i]) & ~used)[0]
        d = np.linalg.norm(tb[cand, :2] - rb[i, :2], axis=1) if len(cand) else np.array([])
        if len(d) == 0 or d.min() > center_tol:
            if rs[i] > score_threshold + score_margin:
                unmatched_ref += 1
            continue
        j = cand[int(np.argmin(d))]
        used[j] = True
        dyaw = abs((tb[j, 6] - rb[i, 6] + math.pi) % (2 * math.pi) - math.pi)
        worst["center"] = max(worst["center"], float(np.linalg.norm(tb[j, :3] - rb[i, :3])))
        worst["size"] = max(worst["size"], float(np.abs(tb[j, 3:6] - rb[i, 3:6]).max()))
        worst["yaw"] = max(worst["yaw"], float(dyaw))
        worst["score"] = max(worst["score"], float(abs(ts[j] - rs[i])))
    unmatched_test = int(((~used) & (ts > score_threshold + score_margin)).sum())
    passed = (
        unmatched_ref == 0
        and unmatched_test == 0
        and worst["center"] <= center_tol
        and worst["size"] <= size_tol
        and worst["yaw"] <= yaw_tol
        and worst["score"] <= score_tol
    )
    return {
        "passed": bool(passed),
        "num_ref": int(len(rs)),
        "num_test": int(len(ts)),
        "unmatched_ref": int(unmatched_ref),
        "unmatched_test": unmatched_test,
        "max_center_diff": worst["center"],
        "max_size_diff": worst["size"],
        "max_yaw_diff": worst["yaw"],
        "max_score_diff": worst["score"],
    }
