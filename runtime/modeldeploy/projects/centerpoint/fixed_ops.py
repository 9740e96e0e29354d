"""Fixed-shape, host-sync-free CenterPoint pre/post-processing (the GPU fast path).

Why a second implementation beside ``ops.py``/``boxes.py``: those return exactly-sized
tensors, so every stage reads a size on the host (``nonzero``, ``unique``, ``int(n)``) and
the CPU waits for the GPU between kernels. Here every output has a size known before the
frame arrives (``max_voxels`` rows, ``max_num`` candidates) plus a device-side count or
mask, so a whole frame — voxelize → encoder → scatter → network → decode → NMS — can be
queued without waiting and captured in one CUDA graph. Results are the reference's:

* ``voxelize_fixed(...)[:count]`` equals ``ops.voxelize`` bit for bit (mmcv hard
  voxelization, first come first served), rows past ``count`` are padding;
* ``decode_and_nms_fixed(...).compact()`` equals ``boxes.decode_and_nms``.

The only loop that needs data-dependent control flow, greedy NMS, runs inside one Triton
program on CUDA (``triton_kernels.greedy_nms_keep``) and as the torch fixed-point loop on
other devices. Decoration has a fused Triton kernel on CUDA (gathers points through the
voxel's point-index table, writes the decorated features once) and the reference torch
``decorate`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypedDict

import torch

from modeldeploy.projects.centerpoint.boxes import Detections, boxes_at, rotated_iou_pairs
from modeldeploy.projects.centerpoint.ops import decorate, grid_size
from modeldeploy.projects.centerpoint.settings import CenterPointSettings

if TYPE_CHECKING:
    from modeldeploy.projects.centerpoint.model import PillarFeatureNet


class _DecorateFlags(TypedDict):
    """PillarFeatureNet's decoration switches, passed on as ``**flags`` (typed so that checks)."""

    with_cluster_center: bool
    with_voxel_center: bool
    voxel_center_dims: int
    with_distance: bool
    legacy: bool


class FixedVoxels(NamedTuple):
    point_index: torch.Tensor  # [V, P] int32: index into the points of each slot, -1 = empty
    coors: torch.Tensor  # [V, 3] int64 (z, y, x); rows ≥ count are 0
    num_points: torch.Tensor  # [V] int64; rows ≥ count are 0
    # The field shadows tuple.count on purpose (the name every caller and test reads); mypy
    # reports any NamedTuple field named like a tuple method, whatever its use.
    count: torch.Tensor  # type: ignore[assignment]  # [] int64 on the device: voxels in use, ≤ V

    def voxels(self, points: torch.Tensor) -> torch.Tensor:
        """[V, P, C] zero-padded point features, as ``ops.voxelize`` returns (for checks)."""
        idx = self.point_index.long()
        out = points[idx.clamp(min=0)]
        return torch.where((idx >= 0).unsqueeze(-1), out, torch.zeros_like(out))


_CONSTS: dict[tuple, torch.Tensor] = {}


def _const(values: Sequence[float | int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant tensor made once per (values, dtype, device): creating it from a Python
    list is a host→device copy, which CUDA-graph capture forbids, so replays reuse this one."""
    key = (tuple(values), dtype, str(device))
    t = _CONSTS.get(key)
    if t is None:
        t = _CONSTS[key] = torch.tensor(list(values), dtype=dtype, device=device)
    return t


def voxel_keys(
    points: torch.Tensor, voxel_size: Sequence[float], pc_range: Sequence[float]
) -> tuple[torch.Tensor, int, tuple[int, int, int]]:
    """Flat cell id per point ((z·ny + y)·nx + x, as the reference), ``G`` for out-of-range points."""
    dev = points.device
    gx, gy, gz = grid_size(voxel_size, pc_range)
    lo = _const(pc_range[:3], points.dtype, dev)
    vs = _const(voxel_size, points.dtype, dev)
    c = torch.floor((points[:, :3] - lo) / vs).to(torch.int64)
    g = _const((gx, gy, gz), torch.int64, dev)
    valid = ((c >= 0) & (c < g)).all(dim=1)
    big = gx * gy * gz
    key = torch.where(valid, (c[:, 2] * gy + c[:, 1]) * gx + c[:, 0], torch.full_like(c[:, 0], big))
    return key, big, (gx, gy, gz)


def voxelize_fixed(
    points: torch.Tensor,
    voxel_size: Sequence[float],
    pc_range: Sequence[float],
    max_points: int,
    max_voxels: int,
    use_triton: bool | None = None,
) -> FixedVoxels:
    """mmcv hard voxelization into fixed-size outputs, no host synchronisation.

    One stable sort by cell id groups each voxel's points in arrival order: the position in
    its group is the slot, the group's first point is the voxel's first appearance, and a
    running count of first appearances (in point order) is the voxel number — the order
    mmcv creates voxels in. Points whose voxel number ≥ ``max_voxels`` or slot ≥
    ``max_points`` are dropped, exactly as the reference does.
    """
    dev = points.device
    n = points.shape[0]
    V, P = int(max_voxels), int(max_points)
    grid = grid_size(voxel_size, pc_range)
    gx, gy, _ = grid
    big = gx * gy * grid[2]
    if use_triton is None:
        use_triton = points.is_cuda
    if use_triton and big < 2**31 - 1:
        from modeldeploy.projects.centerpoint.triton_kernels import voxel_keys_triton

        key = voxel_keys_triton(points, voxel_size, pc_range, grid)
    else:
        key, big, _ = voxel_keys(points, voxel_size, pc_range)
        if big < 2**31 - 1:
            key = key.to(torch.int32)  # half the radix-sort passes
    sk, perm = torch.sort(key, stable=True)
    ar = torch.arange(n, device=dev)
    first = torch.searchsorted(sk, sk, side="left")  # sorted index where each point's group starts
    pos = ar - first  # slot of each (sorted) point in its voxel
    start = pos == 0
    valid = sk < big
    is_first = torch.zeros(n, dtype=torch.int64, device=dev)
    is_first[perm] = (start & valid).to(torch.int64)
    created = torch.cumsum(is_first, 0)  # voxels created up to and including point i
    vid = created[perm[first]] - 1  # the voxel number of each point's group = its first point's
    keep = valid & (vid < V) & (pos < P)
    # every write goes to its own address (dropped points to a scratch slot each): no contention
    dest = torch.where(keep, vid * P + pos, V * P + ar)
    table = torch.full((V * P + n,), -1, dtype=torch.int32, device=dev)
    table[dest] = perm.to(torch.int32)
    table = table[: V * P].view(V, P)
    vrow = torch.where(start & keep, vid, V + ar)  # each voxel's first point writes its row once
    group = torch.searchsorted(sk, sk, right=True) - first
    num = torch.zeros(V + n, dtype=torch.int64, device=dev)
    num[vrow] = group.clamp(max=P)
    num = num[:V]
    vkey = torch.zeros(V + n, dtype=torch.int64, device=dev)
    vkey[vrow] = sk.to(torch.int64)
    vkey = vkey[:V]
    total = created[-1] if n else torch.zeros((), dtype=torch.int64, device=dev)
    coors = torch.stack([vkey // (gx * gy), (vkey // gx) % gy, vkey % gx], dim=1)
    count = torch.clamp(total, max=V)
    return FixedVoxels(table, coors, num, count)


def decorate_fixed(
    points: torch.Tensor,
    vox: FixedVoxels,
    voxel_size: Sequence[float],
    pc_range: Sequence[float],
    *,
    with_cluster_center: bool = True,
    with_voxel_center: bool = True,
    voxel_center_dims: int = 3,
    with_distance: bool = False,
    legacy: bool = False,
    out_dtype: torch.dtype = torch.float32,
    use_triton: bool | None = None,
) -> torch.Tensor:
    """PillarFeatureNet decoration of every row (padding rows come out all zero): [V, P, F]."""
    flags: _DecorateFlags = {
        "with_cluster_center": with_cluster_center,
        "with_voxel_center": with_voxel_center,
        "voxel_center_dims": voxel_center_dims,
        "with_distance": with_distance,
        "legacy": legacy,
    }
    if use_triton is None:
        use_triton = points.is_cuda
    if use_triton:
        from modeldeploy.projects.centerpoint.triton_kernels import decorate_triton

        return decorate_triton(
            points, vox.point_index, vox.num_points, vox.coors, voxel_size, pc_range, out_dtype=out_dtype, **flags
        )
    return decorate(vox.voxels(points), vox.num_points, vox.coors, voxel_size, pc_range, **flags).to(out_dtype)


def scatter_fixed(
    pillar_features: torch.Tensor, coors: torch.Tensor, count: torch.Tensor, ny: int, nx: int
) -> torch.Tensor:
    """PointPillarsScatter of the first ``count`` rows → [1, C, ny, nx] in channels_last memory.

    The canvas is written as [ny·nx + V, C] (scratch rows for padding voxels), so the
    result is already the NHWC layout a channels_last backbone reads, with no transpose.
    """
    feats = pillar_features.reshape(pillar_features.shape[0], pillar_features.shape[-1])
    v, c = feats.shape
    canvas = feats.new_zeros((ny * nx + v, c))  # padding rows land in a scratch row each
    ar = torch.arange(v, device=feats.device)
    idx = torch.where(ar < count, coors[:, -2] * nx + coors[:, -1], ny * nx + ar)
    canvas.index_copy_(0, idx, feats)
    return canvas[: ny * nx].view(1, ny, nx, c).permute(0, 3, 1, 2)


@dataclass
class FixedDetections:
    """Per-task padded candidates; ``keep`` marks the detections (score order within a task)."""

    bboxes: torch.Tensor  # [T·K, 9]
    scores: torch.Tensor  # [T·K]
    labels: torch.Tensor  # [T·K]
    keep: torch.Tensor  # [T·K] bool

    def compact(self) -> Detections:
        """The exact-size result (one host synchronisation: reading how many were kept)."""
        idx = self.keep.nonzero().squeeze(1)
        return Detections(self.bboxes[idx], self.scores[idx], self.labels[idx])


TOPK_METHOD = "sort"  # "sort" | "topk" | "key": the same result; speed differs by card (see the benchmark)


def top_candidates_fixed(scores: torch.Tensor, k: int, method: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` scores (descending, ties → lower index first, as a stable sort) and their indices.

    ``sort``: one stable descending radix sort of all scores (NaN moved last), first k.
    ``topk``: ``topk`` alone breaks ties arbitrarily, so it only finds the k-th value ``t``; the
    selection is then every score above ``t`` plus the first (in index order) of those equal
    to ``t`` — exactly k — compacted by a running count and stably sorted. NaN sorts last
    (the reference's threshold drops it too).
    """
    method = method or TOPK_METHOD
    if method == "key":
        return top_candidates_fixed_key(scores, k)
    n = scores.numel()
    k = min(k, n)
    if k == 0:
        return scores.reshape(-1)[:0], torch.zeros(0, dtype=torch.int64, device=scores.device)
    sc = torch.where(torch.isnan(scores), torch.full_like(scores, -1.0), scores).reshape(-1)
    if method == "sort":
        idx = torch.sort(sc, descending=True, stable=True).indices[:k]
        return scores.reshape(-1)[idx], idx
    t = torch.topk(sc, k, sorted=True).values[k - 1]
    above = sc > t
    tie = sc == t
    room = k - above.sum()
    sel = above | (tie & (torch.cumsum(tie.to(torch.int32), 0) <= room))
    rank = torch.cumsum(sel.to(torch.int32), 0) - 1
    ar = torch.arange(n, device=scores.device)
    picked = torch.zeros(k + n, dtype=torch.int64, device=scores.device)
    picked[torch.where(sel, rank.to(torch.int64), k + ar)] = ar
    idx = picked[:k]
    order = torch.sort(sc[idx], descending=True, stable=True).indices
    idx = idx[order]
    return scores.reshape(-1)[idx], idx


def top_candidates_fixed_key(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as ``top_candidates_fixed`` through one ``topk`` over int64 (score bits, index) keys.

    Kept as the benchmark's alternative: which of the two is faster depends on the card.
    """
    n = scores.numel()
    shift = max(1, int(n).bit_length())
    bits = scores.float().contiguous().view(torch.int32).to(torch.int64)
    bits = torch.where(torch.isnan(scores), torch.full_like(bits, -1), bits)
    key = bits * (1 << shift) + (n - 1 - torch.arange(n, device=scores.device))
    topv, _ = torch.topk(key, min(k, n), sorted=True)
    inds = (n - 1) - (topv & ((1 << shift) - 1))
    return scores[inds], inds


def greedy_keep_masked(suppress: torch.Tensor, valid: torch.Tensor, use_triton: bool | None = None) -> torch.Tensor:
    """Greedy NMS over candidates in score order: ``keep[j] = valid[j] and no kept i < j suppresses j``."""
    if use_triton is None:
        use_triton = suppress.is_cuda
    if use_triton:
        from modeldeploy.projects.centerpoint.triton_kernels import greedy_nms_keep

        return greedy_nms_keep(suppress, valid)
    keep = valid.clone()
    s = suppress.to(torch.float32)
    for _ in range(suppress.shape[0] + 1):
        new = valid & ((keep.to(torch.float32) @ s) == 0)
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def _upper(k: int, device: torch.device) -> torch.Tensor:
    return torch.ones(k, k, dtype=torch.bool, device=device).triu(1)


def decode_task_fixed(
    heatmap: torch.Tensor,
    reg: torch.Tensor,
    height: torch.Tensor,
    dim: torch.Tensor,
    rot: torch.Tensor,
    vel: torch.Tensor,
    s: CenterPointSettings,
    task_id: int,
    use_triton: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One task, fixed size: (boxes [K, 9] gravity-centre z, scores [K], class [K], keep [K])."""
    _, _, h, w = heatmap.shape
    scores = torch.sigmoid(heatmap.reshape(-1).float())
    top, inds = top_candidates_fixed(scores, s.max_num)
    valid = top > s.score_threshold if s.score_threshold > 0 else torch.ones_like(top, dtype=torch.bool)
    boxes, cls = boxes_at(inds, h, w, reg, height, dim, rot, vel, s)
    if s.post_center_range is not None:
        pcr = _const(s.post_center_range, boxes.dtype, boxes.device)
        valid = valid & ((boxes[:, :3] >= pcr[:3]) & (boxes[:, :3] <= pcr[3:])).all(1)
    k = boxes.shape[0]
    pair = valid[:, None] & valid[None, :] & _upper(k, boxes.device)
    if s.nms_type == "circle":
        c = boxes[:, :2]
        d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        keep = greedy_keep_masked((d2 <= s.min_radius[task_id]) & pair, valid, use_triton)
    else:
        rank = torch.cumsum(valid.to(torch.int64), 0) - 1
        valid = valid & (rank < s.pre_max_size)
        pair = pair & valid[:, None] & valid[None, :]
        bev = torch.stack([boxes[:, 0], boxes[:, 1], boxes[:, 3], boxes[:, 4], boxes[:, 6]], dim=1)
        radius = 0.5 * torch.sqrt(bev[:, 2] ** 2 + bev[:, 3] ** 2)
        near = ((bev[:, None, :2] - bev[None, :, :2]) ** 2).sum(-1) < (radius[:, None] + radius[None, :]) ** 2
        ii, jj = torch.triu_indices(k, k, 1, device=boxes.device)
        iou = torch.zeros(k, k, dtype=boxes.dtype, device=boxes.device)
        iou[ii, jj] = rotated_iou_pairs(bev[ii], bev[jj])
        keep = greedy_keep_masked(pair & near & (iou > s.nms_thr), valid, use_triton)
    rank = torch.cumsum(keep.to(torch.int64), 0) - 1
    keep = keep & (rank < s.post_max_size)
    return boxes, top, cls, keep


def decode_and_nms_fixed(
    per_task: Sequence[Mapping[str, torch.Tensor]], s: CenterPointSettings, use_triton: bool | None = None
) -> FixedDetections:
    """All tasks → padded detections; ``.compact()`` equals ``boxes.decode_and_nms``."""
    bs, ss, ls, ks = [], [], [], []
    offset = 0
    for t, out in enumerate(per_task):
        b, sc, c, k = decode_task_fixed(
            out["heatmap"], out["reg"], out["height"], out["dim"], out["rot"], out["vel"], s, t, use_triton
        )
        bs.append(b)
        ss.append(sc)
        ls.append(c + offset)
        ks.append(k)
        offset += s.task_num_classes[t]
    boxes = torch.cat(bs)
    boxes = torch.cat([boxes[:, :2], (boxes[:, 2] - boxes[:, 5] * 0.5)[:, None], boxes[:, 3:]], dim=1)
    return FixedDetections(boxes, torch.cat(ss), torch.cat(ls), torch.cat(ks))


def fold_pfn(encoder: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """PillarFeatureNet layers as (weight [F_in, U], bias [U]) pairs with eval BatchNorm folded in.

    None when the fused kernel does not cover the encoder (more than two PFN layers, training
    mode, a biased linear, channel counts that are not powers of two ≥ 16 for the second
    layer's matrix product); callers then run the module itself.
    """
    layers = getattr(encoder, "pfn_layers", None)
    if layers is None or not 1 <= len(layers) <= 2 or encoder.training:
        return None
    out = []
    for i, pfn in enumerate(layers):
        u = pfn.units
        if u & (u - 1) or pfn.linear.bias is not None or pfn.last_vfe != (i == len(layers) - 1):
            return None
        if len(layers) == 2 and u < 16:
            return None
        bn = pfn.norm
        scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
        weight = pfn.linear.weight.detach().float().t() * scale[None, :]
        bias = bn.bias.detach().float() - bn.running_mean.float() * scale
        out.append((weight.contiguous(), bias.contiguous()))
    return out


def encode_fixed(
    points: torch.Tensor,
    vox: FixedVoxels,
    encoder: PillarFeatureNet,
    s: CenterPointSettings,
    *,
    folded: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    out_dtype: torch.dtype = torch.float32,
    use_triton: bool | None = None,
) -> torch.Tensor:
    """Pillar features [V, U] of every voxel row (rows ≥ count are padding for the scatter to skip).

    On CUDA with foldable PFN layers (one or two, as AWML's [32, 32]) this is one Triton
    kernel (decoration + linear + BN + ReLU + max, twice); otherwise decoration then the
    encoder module, as the reference does.
    """
    if use_triton is None:
        use_triton = points.is_cuda
    flags: _DecorateFlags = {
        "with_cluster_center": s.with_cluster_center,
        "with_voxel_center": s.with_voxel_center,
        "voxel_center_dims": s.voxel_center_dims,
        "with_distance": s.with_distance,
        "legacy": s.legacy,
    }
    if folded is None:
        folded = fold_pfn(encoder)
    if use_triton and folded is not None:
        from modeldeploy.projects.centerpoint.triton_kernels import pfn_triton

        layers = [(w.to(points.device), b.to(points.device)) for w, b in folded]
        return pfn_triton(
            points,
            vox.point_index,
            vox.num_points,
            vox.coors,
            layers,
            s.voxel_size,
            s.point_cloud_range,
            out_dtype=out_dtype,
            **flags,
        )
    feats = decorate_fixed(points, vox, s.voxel_size, s.point_cloud_range, use_triton=use_triton, **flags)
    out = encoder.forward_decorated(feats)
    return out.reshape(out.shape[0], out.shape[-1]).to(out_dtype)
