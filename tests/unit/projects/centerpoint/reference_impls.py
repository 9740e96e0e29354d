"""Slow, obviously-correct reference implementations the vectorised ops are checked against."""

from __future__ import annotations

import math

import numpy as np
import torch


def mmcv_hard_voxelize(points: np.ndarray, voxel_size, pc_range, max_points: int, max_voxels: int):
    """Point-by-point transcription of mmcv's CPU hard-voxelization loop semantics."""
    grid = [int(round((pc_range[i + 3] - pc_range[i]) / voxel_size[i])) for i in range(3)]
    coor_to_idx: dict[tuple[int, int, int], int] = {}
    voxels = np.zeros((max_voxels, max_points, points.shape[1]), dtype=points.dtype)
    coors, counts = [], []
    for p in points:
        c = [
            int(math.floor((np.float32(p[j]) - np.float32(pc_range[j])) / np.float32(voxel_size[j]))) for j in range(3)
        ]
        if any(c[j] < 0 or c[j] >= grid[j] for j in range(3)):
            continue
        key = (c[2], c[1], c[0])
        idx = coor_to_idx.get(key)
        if idx is None:
            if len(coors) >= max_voxels:
                continue
            idx = len(coors)
            coor_to_idx[key] = idx
            coors.append(key)
            counts.append(0)
        if counts[idx] < max_points:
            voxels[idx, counts[idx]] = p
            counts[idx] += 1
    m = len(coors)
    return voxels[:m], np.array(coors, dtype=np.int64).reshape(-1, 3), np.array(counts, dtype=np.int64)


def sequential_greedy(suppress: np.ndarray) -> np.ndarray:
    k = suppress.shape[0]
    removed = np.zeros(k, dtype=bool)
    keep = []
    for i in range(k):
        if removed[i]:
            continue
        keep.append(i)
        removed |= suppress[i]
    return np.array(keep, dtype=np.int64)


def brute_force_iou(a: torch.Tensor, b: torch.Tensor, n: int = 400) -> float:
    """BEV IoU by dense sampling over the union's bounding square (≈ 1e-2 accurate)."""
    from modeldeploy.projects.centerpoint.boxes import _inside, box_corners_bev

    corners = torch.cat([box_corners_bev(a[None]), box_corners_bev(b[None])], dim=1)[0]
    lo, hi = corners.min(0).values, corners.max(0).values
    xs = torch.linspace(float(lo[0]), float(hi[0]), n)
    ys = torch.linspace(float(lo[1]), float(hi[1]), n)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(1, -1, 2)
    ia = _inside(grid, a[None])[0]
    ib = _inside(grid, b[None])[0]
    return float((ia & ib).sum()) / max(float((ia | ib).sum()), 1.0)
