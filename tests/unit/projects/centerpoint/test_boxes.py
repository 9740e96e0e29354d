"""Decoding and NMS: exact greedy semantics, rotated IoU, mmdet3d decode formulas."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from modeldeploy.projects.centerpoint.boxes import (
    circle_nms,
    decode_and_nms,
    greedy_keep,
    rotate_nms,
    rotated_iou_pairs,
)
from modeldeploy.projects.centerpoint.model import HEAD_OUTPUTS, split_task_outputs
from modeldeploy.projects.centerpoint.settings import parse_settings

from .reference_impls import brute_force_iou, sequential_greedy


@pytest.mark.parametrize("seed", range(5))
def test_greedy_keep_equals_sequential_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 60
    sup = np.triu(rng.random((k, k)) < 0.08, 1)
    got = greedy_keep(torch.from_numpy(sup)).nonzero().squeeze(1).numpy()
    assert np.array_equal(got, sequential_greedy(sup))


def test_circle_nms_uses_squared_distance_like_mmdet3d() -> None:
    centers = torch.tensor([[0.0, 0.0], [0.9, 0.0], [1.1, 0.0], [5.0, 5.0]])
    # min_radius=1.0 compares squared distance: 0.81 <= 1 suppressed, 1.21 > 1 kept
    assert circle_nms(centers, 1.0, 100).tolist() == [0, 2, 3]
    assert circle_nms(centers, 1.0, 2).tolist() == [0, 2]


def test_rotated_iou_known_cases_and_against_sampling() -> None:
    a = torch.tensor([[0, 0, 2, 2, 0.0], [0, 0, 2, 2, 0.0], [0, 0, 2, 2, 0.0], [1, 2, 4, 1.5, 0.3]])
    b = torch.tensor([[1, 0, 2, 2, 0.0], [0, 0, 2, 2, math.pi / 4], [5, 5, 1, 1, 0.0], [1, 2, 4, 1.5, 0.3]])
    iou = rotated_iou_pairs(a, b)
    torch.testing.assert_close(
        iou, torch.tensor([1 / 3, 8 * (math.sqrt(2) - 1) / (8 - 8 * (math.sqrt(2) - 1)), 0.0, 1.0])
    )
    rng = np.random.default_rng(0)
    for _ in range(6):
        p = torch.tensor(
            np.concatenate([rng.uniform(-1, 1, 2), rng.uniform(1, 4, 2), rng.uniform(-3, 3, 1)]), dtype=torch.float32
        )
        q = torch.tensor(
            np.concatenate([rng.uniform(-1, 1, 2), rng.uniform(1, 4, 2), rng.uniform(-3, 3, 1)]), dtype=torch.float32
        )
        assert abs(float(rotated_iou_pairs(p[None], q[None])[0]) - brute_force_iou(p, q)) < 0.02


def test_rotate_nms_equals_greedy_over_all_pair_ious() -> None:
    rng = np.random.default_rng(3)
    k = 40
    bev = torch.tensor(
        np.column_stack([rng.uniform(-6, 6, (k, 2)), rng.uniform(1, 4, (k, 2)), rng.uniform(-3, 3, k)]),
        dtype=torch.float32,
    )
    ii, jj = torch.triu_indices(k, k, 1)
    sup = np.zeros((k, k), dtype=bool)
    sup[ii.numpy(), jj.numpy()] = (rotated_iou_pairs(bev[ii], bev[jj]) > 0.2).numpy()
    assert rotate_nms(bev, 0.2, 1000, 1000).tolist() == sequential_greedy(sup).tolist()
    assert rotate_nms(bev, 0.2, 10, 1000).max() < 10  # pre_max_size cuts before NMS


def _head_outputs(s, peaks):
    h, w = s.head_grid
    out = {k: torch.zeros(1, c, h, w) for k, c in zip(HEAD_OUTPUTS, (sum(s.task_num_classes), 2, 1, 3, 2, 2))}
    out["heatmap"][:] = -10.0
    for cls, y, x, logit in peaks:
        out["heatmap"][0, cls, y, x] = logit
        out["reg"][0, :, y, x] = torch.tensor([0.25, 0.75])
        out["height"][0, 0, y, x] = 0.5
        out["dim"][0, :, y, x] = torch.log(torch.tensor([4.0, 2.0, 1.5]))
        out["rot"][0, :, y, x] = torch.tensor([math.sin(0.3), math.cos(0.3)])
        out["vel"][0, :, y, x] = torch.tensor([1.0, -2.0])
    return out


def test_decode_formulas_match_centerpoint_bbox_coder(tiny_cfg) -> None:
    s = parse_settings(tiny_cfg)
    out = _head_outputs(s, [(0, 10, 20, 3.0), (4, 40, 50, 1.0), (2, 70, 5, -5.0)])  # last one below score_threshold
    det = decode_and_nms(split_task_outputs(out, s.task_num_classes), s)
    assert det.labels.tolist() == [0, 4]
    step = s.out_size_factor * s.voxel_size[0]
    b = det.bboxes[0]
    torch.testing.assert_close(
        b[:2], torch.tensor([(20 + 0.25) * step + s.point_cloud_range[0], (10 + 0.75) * step + s.point_cloud_range[1]])
    )
    torch.testing.assert_close(b[2:], torch.tensor([0.5 - 0.75, 4.0, 2.0, 1.5, 0.3, 1.0, -2.0]))  # z: bottom centre
    torch.testing.assert_close(det.scores, torch.sigmoid(torch.tensor([3.0, 1.0])))


def test_multi_task_labels_are_offset_and_outputs_split(tiny_cfg) -> None:
    cfg = copy.deepcopy(tiny_cfg)  # session fixture: never mutate it
    cfg.model.pts_bbox_head.tasks = [
        dict(num_class=2, class_names=["car", "truck"]),
        dict(num_class=3, class_names=["bus", "bicycle", "pedestrian"]),
    ]
    cfg.model.test_cfg.pts.min_radius = [1.0, 0.5]
    s = parse_settings(cfg)
    one = _head_outputs(s, [(1, 10, 10, 2.0), (3, 30, 30, 2.0)])
    merged = {k: (torch.cat([v, v], 1) if k != "heatmap" else v) for k, v in one.items()}
    det = decode_and_nms(split_task_outputs(merged, s.task_num_classes), s)
    assert sorted(det.labels.tolist()) == [1, 3]
