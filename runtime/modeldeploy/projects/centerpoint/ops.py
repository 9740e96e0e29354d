"""Voxelization, point decoration and BEV scatter, vectorised in torch.

All three run on whatever device the points live on (the GPU when there is one) and give
bit-identical results on CPU and CUDA: only integer ops, stable sorts and elementwise
float ops whose order is fixed — no atomics on floats, no numpy round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch


class Voxels(NamedTuple):
    voxels: torch.Tensor  # [M, max_points, C] float, zero padded
    coors: torch.Tensor  # [M, 3] int64 (z, y, x), mmcv order
    num_points: torch.Tensor  # [M] int64


def grid_size(voxel_size: Sequence[float], pc_range: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(round((pc_range[i + 3] - pc_range[i]) / voxel_size[i])) for i in range(3))  # type: ignore[return-value]


def voxelize(
    points: torch.Tensor, voxel_size: Sequence[float], pc_range: Sequence[float], max_points: int, max_voxels: int
) -> Voxels:
    """Hard voxelization with mmcv ``Voxelization`` semantics.

    Points outside ``pc_range`` are dropped; voxels are numbered in the order their first
    point appears; a point beyond ``max_points`` in its voxel, or in a voxel created after
    ``max_voxels`` voxels exist, is dropped (first come, first served).
    """
    dev = points.device
    gx, gy, gz = grid_size(voxel_size, pc_range)
    lo = torch.tensor(pc_range[:3], dtype=points.dtype, device=dev)
    vs = torch.tensor(voxel_size, dtype=points.dtype, device=dev)
    c = torch.floor((points[:, :3] - lo) / vs).to(torch.int64)
    g = torch.tensor([gx, gy, gz], dtype=torch.int64, device=dev)
    valid = ((c >= 0) & (c < g)).all(dim=1)
    idx = valid.nonzero().squeeze(1)
    c, pts = c[idx], points[idx]
    n = int(idx.numel())
    C = points.shape[1]
    if n == 0:
        return Voxels(
            points.new_zeros((0, max_points, C)),
            torch.zeros((0, 3), dtype=torch.int64, device=dev),
            torch.zeros((0,), dtype=torch.int64, device=dev),
        )
    key = (c[:, 2] * gy + c[:, 1]) * gx + c[:, 0]
    uniq, inv = torch.unique(key, return_inverse=True)
    u = int(uniq.numel())
    ar = torch.arange(n, device=dev)
    first = torch.full((u,), n, dtype=torch.int64, device=dev).scatter_reduce_(
        0, inv, ar, reduce="amin", include_self=True
    )
    order = torch.argsort(first)  # first-appearance order (values are distinct)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(u, device=dev)
    vid = rank[inv]
    sorted_vid, perm = torch.sort(vid, stable=True)
    counts = torch.bincount(vid, minlength=u)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.empty_like(vid)
    pos[perm] = ar - starts[sorted_vid]
    m = min(u, max_voxels)
    keep = (vid < m) & (pos < max_points)
    voxels = points.new_zeros((m, max_points, C))
    voxels[vid[keep], pos[keep]] = pts[keep]
    vkey = uniq[order[:m]]
    coors = torch.stack([vkey // (gx * gy), (vkey // gx) % gy, vkey % gx], dim=1)
    return Voxels(voxels, coors, counts[:m].clamp(max=max_points))


def decorate(
    voxels: torch.Tensor,
    num_points: torch.Tensor,
    coors: torch.Tensor,
    voxel_size: Sequence[float],
    pc_range: Sequence[float],
    *,
    with_cluster_center: bool = True,
    with_voxel_center: bool = True,
    voxel_center_dims: int = 3,
    with_distance: bool = False,
    legacy: bool = False,
) -> torch.Tensor:
    """PillarFeatureNet's point decoration: [M, P, C] → [M, P, C + 3 + 3|2 (+1)].

    Order as in mmdet3d: raw features, offsets to the cluster (points) mean, offsets to the
    pillar centre, distance; padded slots zeroed. ``legacy=True`` reproduces mmdet3d's
    legacy path, where the pillar-centre offsets also overwrite the raw x/y(/z).
    """
    feats = voxels
    xyz = feats[:, :, :3]
    parts = []
    if with_cluster_center:
        mean = xyz.sum(dim=1, keepdim=True) / num_points.to(feats.dtype).clamp(min=1).view(-1, 1, 1)
        f_cluster = xyz - mean
    offsets = []
    if with_voxel_center:
        cf = coors.to(feats.dtype)
        for dim, col in zip(range(voxel_center_dims), (2, 1, 0)):  # x↔coors[:,2], y↔[:,1], z↔[:,0]
            centre = cf[:, col].unsqueeze(1) * voxel_size[dim] + (voxel_size[dim] / 2 + pc_range[dim])
            offsets.append(feats[:, :, dim] - centre)
        f_center = torch.stack(offsets, dim=2)
    if with_voxel_center and legacy:
        feats = torch.cat([f_center, feats[:, :, voxel_center_dims:]], dim=2)
    parts.append(feats)
    if with_cluster_center:
        parts.append(f_cluster)
    if with_voxel_center:
        parts.append(f_center)
    if with_distance:
        parts.append(torch.linalg.vector_norm(feats[:, :, :3], dim=2, keepdim=True))
    out = torch.cat(parts, dim=-1)
    mask = torch.arange(voxels.shape[1], device=voxels.device).view(1, -1) < num_points.view(-1, 1)
    return out * mask.unsqueeze(-1).to(out.dtype)


def scatter_to_bev(pillar_features: torch.Tensor, coors: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    """PointPillarsScatter for one sample: [M, C] or [M, 1, C] → [1, C, ny, nx]."""
    feats = pillar_features.reshape(pillar_features.shape[0], pillar_features.shape[-1])
    canvas = feats.new_zeros((feats.shape[1], ny * nx))
    canvas[:, coors[:, -2] * nx + coors[:, -1]] = feats.t()
    return canvas.view(1, feats.shape[1], ny, nx)
