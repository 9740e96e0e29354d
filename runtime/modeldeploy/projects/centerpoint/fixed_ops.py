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
from typing import NamedTuple

import torch

from modeldeploy.projects.centerpoint.boxes import Detections, rotated_iou_pairs
from modeldeploy.projects.centerpoint.ops import decorate, grid_size
from modeldeploy.projects.centerpoint.settings import CenterPointSettings


class FixedVoxels(NamedTuple):
    point_index: torch.Tensor  # [V, P] int32: index into the points of each slot, -1 = empty
    coors: torch.Tensor  # [V, 3] int64 (z, y, x); rows ≥ count are 0
    num_points: torch.Tensor  # [V] int64; rows ≥ count are 0
    count: torch.Tensor  # [] int64 on the device: voxels in use, ≤ V

    def voxels(self, points: torch.Tensor) -> torch.Tensor:
        """[V, P, C] zero-padded point features, as ``ops.voxelize`` returns (for checks)."""
        idx = self.point_index.long()
        out = points[idx.clamp(min=0)]
        return torch.where((idx >= 0).unsqueeze(-1), out, torch.zeros_like(out))


def voxel_keys(points: torch.Tensor, voxel_size: Sequence[float], pc_range: Sequence[float]) -> tuple[torch.Tensor, int, tuple[int, int, int]]:
    """Flat cell id per point ((z·ny + y)·nx + x, as the reference), ``G`` for out-of-range points."""
    dev = points.device
    gx, gy, gz = grid_size(voxel_size, pc_range)
    lo = torch.tensor(pc_range[:3], dtype=points.dtype, device=dev)
    vs = torch.tensor(voxel_size, dtype=points.dtype, device=dev)
    c = torch.floor((points[:, :3] - lo) / vs).to(torch.int64)
    g = torch.tensor([gx, gy, gz], dtype=torch.int64, device=dev)
    valid = ((c >= 0) & (c < g)).all(dim=1)
    big = gx * gy * gz
    key = torch.where(valid, (c[:, 2] * gy + c[:, 1]) * gx + c[:, 0], torch.full_like(c[:, 0], big))
    return key, big, (gx, gy, gz)


def voxelize_fixed(points: torch.Tensor, voxel_size: Sequence[float], pc_range: Sequence[float], max_points: int, max_voxels: int) -> FixedVoxels:
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
    key, big, (gx, gy, _) = voxel_keys(points, voxel_size, pc_range)
    sk, perm = torch.sort(key, stable=True)
    ar = torch.arange(n, device=dev)
    start = torch.ones(n, dtype=torch.bool, device=dev)
    if n > 1:
        start[1:] = sk[1:] != sk[:-1]
    seg = torch.cummax(torch.where(start, ar, torch.zeros_like(ar)), 0).values if n else ar
    pos = ar - seg  # slot of each (sorted) point inside its voxel
    valid = sk < big
    is_first = torch.zeros(n, dtype=torch.int64, device=dev)
    is_first[perm] = (start & valid).to(torch.int64)
    created = torch.cumsum(is_first, 0)  # voxels created up to and including point i
    vid = created[perm[seg]] - 1 if n else ar
    keep = valid & (vid < V) & (pos < P)
    row = torch.where(keep, vid, torch.full_like(vid, V))  # V = a scratch row, sliced off
    col = torch.where(keep, pos, torch.zeros_like(pos))
    table = torch.full((V + 1, P), -1, dtype=torch.int32, device=dev)
    table[row, col] = perm.to(torch.int32)
    table = table[:V]
    num = torch.zeros(V + 1, dtype=torch.int64, device=dev).index_add_(0, row, keep.to(torch.int64))[:V]
    first_row = torch.where(start & keep, vid, torch.full_like(vid, V))
    vkey = torch.zeros(V + 1, dtype=torch.int64, device=dev).index_put_((first_row,), sk, accumulate=False)[:V]
    used = torch.arange(V, device=dev) < (created[-1] if n else torch.zeros((), dtype=torch.int64, device=dev))
    vkey = torch.where(used, vkey, torch.zeros_like(vkey))
    coors = torch.stack([vkey // (gx * gy), (vkey // gx) % gy, vkey % gx], dim=1)
    count = torch.clamp(created[-1], max=V) if n else torch.zeros((), dtype=torch.int64, device=dev)
    return FixedVoxels(table, coors, num, count)


def decorate_fixed(
    points: torch.Tensor, vox: FixedVoxels, voxel_size: Sequence[float], pc_range: Sequence[float], *,
    with_cluster_center: bool = True, with_voxel_center: bool = True, voxel_center_dims: int = 3,
    with_distance: bool = False, legacy: bool = False, out_dtype: torch.dtype = torch.float32, use_triton: bool | None = None,
) -> torch.Tensor:
    """PillarFeatureNet decoration of every row (padding rows come out all zero): [V, P, F]."""
    flags = dict(with_cluster_center=with_cluster_center, with_voxel_center=with_voxel_center,
                 voxel_center_dims=voxel_center_dims, with_distance=with_distance, legacy=legacy)
    if use_triton is None:
        use_triton = points.is_cuda
    if use_triton:
        from modeldeploy.projects.centerpoint.triton_kernels import decorate_triton

        return decorate_triton(points, vox.point_index, vox.num_points, vox.coors, voxel_size, pc_range, out_dtype=out_dtype, **flags)
    return decorate(vox.voxels(points), vox.num_points, vox.coors, voxel_size, pc_range, **flags).to(out_dtype)


def scatter_fixed(pillar_features: torch.Tensor, coors: torch.Tensor, count: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    """PointPillarsScatter of the first ``count`` rows → [1, C, ny, nx] in channels_last memory.

    The canvas is written as [ny·nx + 1, C] (one scratch row for padding voxels), so the
    result is already the NHWC layout a channels_last backbone reads, with no transpose.
    """
    feats = pillar_features.reshape(pillar_features.shape[0], pillar_features.shape[-1])
    v, c = feats.shape
    canvas = feats.new_zeros((ny * nx + 1, c))
    used = torch.arange(v, device=feats.device) < count
    idx = torch.where(used, coors[:, -2] * nx + coors[:, -1], torch.full_like(coors[:, -1], ny * nx))
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


def top_candidates_fixed(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` scores (descending, ties → lower index first, as a stable sort) and their indices.

    Scores are sigmoids in [0, 1], so their float32 bit patterns order like the values; the
    index goes into the low bits so every key is distinct and ``topk`` needs no stable mode.
    NaN sorts last (the reference's threshold drops it too).
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
    heatmap: torch.Tensor, reg: torch.Tensor, height: torch.Tensor, dim: torch.Tensor, rot: torch.Tensor, vel: torch.Tensor,
    s: CenterPointSettings, task_id: int, use_triton: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One task, fixed size: (boxes [K, 9] gravity-centre z, scores [K], class [K], keep [K])."""
    _, ncls, h, w = heatmap.shape
    scores = torch.sigmoid(heatmap.reshape(-1).float())
    top, inds = top_candidates_fixed(scores, s.max_num)
    valid = top > s.score_threshold if s.score_threshold > 0 else torch.ones_like(top, dtype=torch.bool)
    cls = inds // (h * w)
    pix = inds % (h * w)
    ys = (pix // w).to(torch.float32)
    xs = (pix % w).to(torch.float32)

    def gather(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[1], -1)[:, pix].t().float()

    r = gather(reg)
    x = (xs + r[:, 0]) * s.out_size_factor * s.voxel_size[0] + s.point_cloud_range[0]
    y = (ys + r[:, 1]) * s.out_size_factor * s.voxel_size[1] + s.point_cloud_range[1]
    z = gather(height)[:, 0]
    d = gather(dim)
    d = torch.exp(d) if s.norm_bbox else d
    ro = gather(rot)
    yaw = torch.atan2(ro[:, 0], ro[:, 1])
    v = gather(vel)
    boxes = torch.cat([x[:, None], y[:, None], z[:, None], d, yaw[:, None], v], dim=1)
    if s.post_center_range is not None:
        pcr = torch.tensor(s.post_center_range, device=boxes.device, dtype=boxes.dtype)
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
        bev = boxes[:, [0, 1, 3, 4, 6]]
        radius = 0.5 * torch.sqrt(bev[:, 2] ** 2 + bev[:, 3] ** 2)
        near = ((bev[:, None, :2] - bev[None, :, :2]) ** 2).sum(-1) < (radius[:, None] + radius[None, :]) ** 2
        ii, jj = torch.triu_indices(k, k, 1, device=boxes.device)
        iou = torch.zeros(k, k, dtype=boxes.dtype, device=boxes.device)
        iou[ii, jj] = rotated_iou_pairs(bev[ii], bev[jj])
        keep = greedy_keep_masked(pair & near & (iou > s.nms_thr), valid, use_triton)
    rank = torch.cumsum(keep.to(torch.int64), 0) - 1
    keep = keep & (rank < s.post_max_size)
    return boxes, top, cls, keep


def decode_and_nms_fixed(per_task: Sequence[Mapping[str, torch.Tensor]], s: CenterPointSettings, use_triton: bool | None = None) -> FixedDetections:
    """All tasks → padded detections; ``.compact()`` equals ``boxes.decode_and_nms``."""
    bs, ss, ls, ks = [], [], [], []
    offset = 0
    for t, out in enumerate(per_task):
        b, sc, c, k = decode_task_fixed(out["heatmap"], out["reg"], out["height"], out["dim"], out["rot"], out["vel"], s, t, use_triton)
        bs.append(b)
        ss.append(sc)
        ls.append(c + offset)
        ks.append(k)
        offset += s.task_num_classes[t]
    boxes = torch.cat(bs)
    boxes = torch.cat([boxes[:, :2], (boxes[:, 2] - boxes[:, 5] * 0.5)[:, None], boxes[:, 3:]], dim=1)
    return FixedDetections(boxes, torch.cat(ss), torch.cat(ls), torch.cat(ks))


def fold_pfn(encoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A single-layer PillarFeatureNet as (weight [F, U], bias [U]) with eval BatchNorm folded in.

    None when the encoder has more than one PFN layer, is training, or has a channel count
    the fused kernel cannot tile (not a power of two); callers then run the module itself.
    """
    layers = getattr(encoder, "pfn_layers", None)
    if layers is None or len(layers) != 1 or encoder.training:
        return None
    pfn = layers[0]
    u = pfn.units
    if u & (u - 1) or not pfn.last_vfe or pfn.linear.bias is not None:
        return None
    bn = pfn.norm
    scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
    weight = pfn.linear.weight.detach().float().t() * scale[None, :]
    bias = bn.bias.detach().float() - bn.running_mean.float() * scale
    return weight.contiguous(), bias.contiguous()


def encode_fixed(
    points: torch.Tensor, vox: FixedVoxels, encoder: torch.nn.Module, s: CenterPointSettings, *,
    folded: tuple[torch.Tensor, torch.Tensor] | None = None, out_dtype: torch.dtype = torch.float32, use_triton: bool | None = None,
) -> torch.Tensor:
    """Pillar features [V, U] of every voxel row (rows ≥ count are padding for the scatter to skip).

    On CUDA with a foldable single PFN layer this is one Triton kernel (decoration + linear +
    BN + ReLU + max); otherwise decoration then the encoder module, as the reference does.
    """
    if use_triton is None:
        use_triton = points.is_cuda
    flags = dict(with_cluster_center=s.with_cluster_center, with_voxel_center=s.with_voxel_center,
                 voxel_center_dims=s.voxel_center_dims, with_distance=s.with_distance, legacy=s.legacy)
    if folded is None:
        folded = fold_pfn(encoder)
    if use_triton and folded is not None:
        from modeldeploy.projects.centerpoint.triton_kernels import pfn_triton

        return pfn_triton(points, vox.point_index, vox.num_points, vox.coors, folded[0].to(points.device), folded[1].to(points.device),
                          s.voxel_size, s.point_cloud_range, out_dtype=out_dtype, **flags)
    feats = decorate_fixed(points, vox, s.voxel_size, s.point_cloud_range, use_triton=use_triton, **flags)
    out = encoder.forward_decorated(feats)
    return out.reshape(out.shape[0], out.shape[-1]).to(out_dtype)
