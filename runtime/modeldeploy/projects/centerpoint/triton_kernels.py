"""Triton kernels for the fixed-shape CenterPoint path (CUDA; also runs under TRITON_INTERPRET=1).

Why Triton: it ships with torch, so no extension has to be compiled on the user's cluster,
and the two steps that plain torch ops do badly get one launch each —

* ``decorate_triton``: PillarFeatureNet decoration read straight from the points through the
  voxel's point-index table, written once as [V, P, F] (torch needs ~10 passes over
  the 100+ MB feature tensor at AWML size);
* ``greedy_nms_keep``: exact greedy NMS as a data-dependent fixed-point loop inside a single
  program (keep[j] = valid[j] and no kept i < j suppresses j, iterated until nothing
  changes; after t rounds the first t entries are final, so it ends after at most K + 1
  rounds and usually after a handful), with no host round trip per round.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl


@triton.jit
def _feature(k: tl.constexpr, x, y, z, ex, ey, ez, mx, my, mz, base_pt, has,
             C: tl.constexpr, CLUSTER: tl.constexpr, CENTER: tl.constexpr, VCD: tl.constexpr, DIST: tl.constexpr, LEGACY: tl.constexpr):
    """Decorated channel ``k`` of each slot, in PillarFeatureNet order (raw, cluster, centre, distance)."""
    OFF_CL: tl.constexpr = C
    OFF_CE: tl.constexpr = C + 3 * CLUSTER
    OFF_D: tl.constexpr = C + 3 * CLUSTER + VCD * CENTER
    if k < C:
        if LEGACY and CENTER and k < VCD:
            if k == 0:
                val = ex
            elif k == 1:
                val = ey
            else:
                val = ez
        elif k == 0:
            val = x
        elif k == 1:
            val = y
        elif k == 2:
            val = z
        else:
            val = tl.load(base_pt + k, mask=has, other=0.0)
    elif k < OFF_CE:
        if k == OFF_CL:
            val = x - mx[:, None]
        elif k == OFF_CL + 1:
            val = y - my[:, None]
        else:
            val = z - mz[:, None]
    elif k < OFF_D:
        if k == OFF_CE:
            val = ex
        elif k == OFF_CE + 1:
            val = ey
        else:
            val = ez
    else:
        if LEGACY and CENTER:
            if VCD == 3:
                val = tl.sqrt(ex * ex + ey * ey + ez * ez)
            else:
                val = tl.sqrt(ex * ex + ey * ey + z * z)
        else:
            val = tl.sqrt(x * x + y * y + z * z)
    return tl.where(has, val, 0.0)


@triton.jit
def _slot_points(pts_ptr, tab_ptr, num_ptr, coor_ptr, v, p, V, vx, vy, vz, ox, oy, oz, C: tl.constexpr, P: tl.constexpr):
    """Each slot's point (gathered through the index table), centre offsets and cluster means."""
    vm = v < V
    m2 = vm[:, None] & (p[None, :] < P)
    slot = v.to(tl.int64)[:, None] * P + p[None, :]
    idx = tl.load(tab_ptr + slot, mask=m2, other=-1)
    has = idx >= 0
    base_pt = pts_ptr + idx.to(tl.int64) * C
    x = tl.load(base_pt + 0, mask=has, other=0.0)
    y = tl.load(base_pt + 1, mask=has, other=0.0)
    z = tl.load(base_pt + 2, mask=has, other=0.0)
    cxf = tl.load(coor_ptr + v.to(tl.int64) * 3 + 2, mask=vm, other=0).to(tl.float32)
    cyf = tl.load(coor_ptr + v.to(tl.int64) * 3 + 1, mask=vm, other=0).to(tl.float32)
    czf = tl.load(coor_ptr + v.to(tl.int64) * 3 + 0, mask=vm, other=0).to(tl.float32)
    ex = x - (cxf * vx + ox)[:, None]
    ey = y - (cyf * vy + oy)[:, None]
    ez = z - (czf * vz + oz)[:, None]
    n = tl.maximum(tl.load(num_ptr + v, mask=vm, other=0).to(tl.float32), 1.0)
    mx = tl.sum(x, axis=1) / n
    my = tl.sum(y, axis=1) / n
    mz = tl.sum(z, axis=1) / n
    return slot, m2, has, base_pt, x, y, z, ex, ey, ez, mx, my, mz


@triton.jit
def _decorate_kernel(
    pts_ptr, tab_ptr, num_ptr, coor_ptr, out_ptr, V,
    vx, vy, vz, ox, oy, oz,
    C: tl.constexpr, P: tl.constexpr, PP: tl.constexpr, F: tl.constexpr, BV: tl.constexpr,
    CLUSTER: tl.constexpr, CENTER: tl.constexpr, VCD: tl.constexpr, DIST: tl.constexpr, LEGACY: tl.constexpr,
):
    v = tl.program_id(0) * BV + tl.arange(0, BV)
    p = tl.arange(0, PP)
    slot, m2, has, base_pt, x, y, z, ex, ey, ez, mx, my, mz = _slot_points(pts_ptr, tab_ptr, num_ptr, coor_ptr, v, p, V, vx, vy, vz, ox, oy, oz, C, P)
    out_base = out_ptr + slot * F
    for k in tl.static_range(F):
        val = _feature(k, x, y, z, ex, ey, ez, mx, my, mz, base_pt, has, C, CLUSTER, CENTER, VCD, DIST, LEGACY)
        tl.store(out_base + k, val.to(out_ptr.dtype.element_ty), mask=m2)


@triton.jit
def _pfn_kernel(
    pts_ptr, tab_ptr, num_ptr, coor_ptr, w_ptr, b_ptr, out_ptr, V,
    vx, vy, vz, ox, oy, oz,
    C: tl.constexpr, P: tl.constexpr, PP: tl.constexpr, F: tl.constexpr, BV: tl.constexpr, U: tl.constexpr,
    CLUSTER: tl.constexpr, CENTER: tl.constexpr, VCD: tl.constexpr, DIST: tl.constexpr, LEGACY: tl.constexpr,
):
    v = tl.program_id(0) * BV + tl.arange(0, BV)
    p = tl.arange(0, PP)
    u = tl.arange(0, U)
    slot, m2, has, base_pt, x, y, z, ex, ey, ez, mx, my, mz = _slot_points(pts_ptr, tab_ptr, num_ptr, coor_ptr, v, p, V, vx, vy, vz, ox, oy, oz, C, P)
    acc = tl.zeros([BV, PP, U], dtype=tl.float32) + tl.load(b_ptr + u)[None, None, :]
    for k in tl.static_range(F):
        val = _feature(k, x, y, z, ex, ey, ez, mx, my, mz, base_pt, has, C, CLUSTER, CENTER, VCD, DIST, LEGACY)
        acc += val[:, :, None] * tl.load(w_ptr + k * U + u)[None, None, :]
    acc = tl.maximum(acc, 0.0)
    # every one of the P slots takes part in the max (empty ones as zero features), as in mmdet3d
    acc = tl.where((p < P)[None, :, None], acc, 0.0)
    best = tl.max(acc, axis=1)
    tl.store(out_ptr + v.to(tl.int64)[:, None] * U + u[None, :], best.to(out_ptr.dtype.element_ty), mask=(v < V)[:, None])


def decorate_triton(
    points: torch.Tensor, point_index: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor,
    voxel_size: Sequence[float], pc_range: Sequence[float], *, with_cluster_center: bool = True,
    with_voxel_center: bool = True, voxel_center_dims: int = 3, with_distance: bool = False, legacy: bool = False,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """[V, P, F] decorated features in mmdet3d's PillarFeatureNet channel order; empty slots zero."""
    pts = points.contiguous().float()
    v, p = point_index.shape
    c = pts.shape[1]
    f = c + 3 * int(with_cluster_center) + voxel_center_dims * int(with_voxel_center) + int(with_distance)
    out = torch.empty((v, p, f), dtype=out_dtype, device=pts.device)
    if v == 0:
        return out
    pp = triton.next_power_of_2(p)
    bv = max(1, 128 // pp)
    _decorate_kernel[(triton.cdiv(v, bv),)](
        pts, point_index.contiguous(), num_points.contiguous(), coors.contiguous(), out, v,
        float(voxel_size[0]), float(voxel_size[1]), float(voxel_size[2]),
        float(voxel_size[0] / 2 + pc_range[0]), float(voxel_size[1] / 2 + pc_range[1]), float(voxel_size[2] / 2 + pc_range[2]),
        C=c, P=p, PP=pp, F=f, BV=bv, CLUSTER=bool(with_cluster_center), CENTER=bool(with_voxel_center),
        VCD=int(voxel_center_dims), DIST=bool(with_distance), LEGACY=bool(legacy), num_warps=4,
    )
    return out


def pfn_triton(
    points: torch.Tensor, point_index: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor,
    weight: torch.Tensor, bias: torch.Tensor, voxel_size: Sequence[float], pc_range: Sequence[float], *,
    with_cluster_center: bool = True, with_voxel_center: bool = True, voxel_center_dims: int = 3,
    with_distance: bool = False, legacy: bool = False, out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Decoration + one PFN layer (linear with eval BatchNorm folded in, ReLU, max over slots) → [V, U].

    ``weight`` is [F, U] and ``bias`` [U] (see ``fixed_ops.fold_pfn``); the decorated
    features never reach device memory.
    """
    pts = points.contiguous().float()
    v, p = point_index.shape
    c = pts.shape[1]
    f, u = weight.shape
    out = torch.empty((v, u), dtype=out_dtype, device=pts.device)
    if v == 0:
        return out
    pp = triton.next_power_of_2(p)
    bv = max(1, 64 // pp)
    _pfn_kernel[(triton.cdiv(v, bv),)](
        pts, point_index.contiguous(), num_points.contiguous(), coors.contiguous(), weight.float().contiguous(), bias.float().contiguous(), out, v,
        float(voxel_size[0]), float(voxel_size[1]), float(voxel_size[2]),
        float(voxel_size[0] / 2 + pc_range[0]), float(voxel_size[1] / 2 + pc_range[1]), float(voxel_size[2] / 2 + pc_range[2]),
        C=c, P=p, PP=pp, F=f, BV=bv, U=u, CLUSTER=bool(with_cluster_center), CENTER=bool(with_voxel_center),
        VCD=int(voxel_center_dims), DIST=bool(with_distance), LEGACY=bool(legacy), num_warps=4,
    )
    return out


@triton.jit
def _greedy_kernel(sup_ptr, valid_ptr, keep_ptr, K, BK: tl.constexpr, BI: tl.constexpr):
    cols = tl.arange(0, BK)
    cm = cols < K
    valid = tl.load(valid_ptr + cols, mask=cm, other=0) != 0
    cur = valid
    tl.store(keep_ptr + cols, cur.to(tl.int8), mask=cm)
    tl.debug_barrier()
    changed = tl.sum(cm.to(tl.int32), axis=0)
    rounds = 0
    while (changed != 0) & (rounds <= K):
        hit = tl.zeros([BK], dtype=tl.int32)
        for i0 in range(0, K, BI):
            rows = i0 + tl.arange(0, BI)
            rm = rows < K
            kr = tl.load(keep_ptr + rows, mask=rm, other=0, volatile=True).to(tl.int32)
            tile = tl.load(sup_ptr + rows.to(tl.int64)[:, None] * K + cols[None, :], mask=rm[:, None] & cm[None, :], other=0)
            hit += tl.sum(tile.to(tl.int32) * kr[:, None], axis=0)
        new = valid & (hit == 0)
        changed = tl.sum((new != cur).to(tl.int32), axis=0)
        cur = new
        tl.debug_barrier()
        tl.store(keep_ptr + cols, cur.to(tl.int8), mask=cm)
        tl.debug_barrier()
        rounds += 1


def greedy_nms_keep(suppress: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Exact greedy NMS keep-mask from a [K, K] bool matrix (row i suppresses column j > i)."""
    k = suppress.shape[0]
    keep = torch.empty(k, dtype=torch.int8, device=suppress.device)
    if k == 0:
        return keep.bool()
    bk = triton.next_power_of_2(k)
    bi = max(1, min(32, 8192 // bk))
    _greedy_kernel[(1,)](suppress.contiguous().view(torch.uint8), valid.contiguous().view(torch.uint8), keep, k, BK=bk, BI=bi, num_warps=8)
    return keep.bool()
