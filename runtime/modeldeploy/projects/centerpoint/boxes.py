"""CenterPoint box decoding and NMS (circle and rotated-BEV), vectorised in torch.

Semantics follow mmdet3d's ``CenterPointBBoxCoder.decode`` + ``CenterHead.predict_by_feat``
for one sample:

* top-K (``max_num``) over sigmoid heatmap scores of all classes × positions of a task,
  then ``score_threshold`` and ``post_center_range`` filters. We threshold first and
  stable-sort the survivors — the same set, but ties break by flat index on every device.
* x = (col + reg_x) · out_size_factor · voxel_x + range_x0 (same for y); dims = exp(dim)
  when ``norm_bbox``; yaw = atan2(rot_sin, rot_cos); velocity as predicted.
* NMS per task: ``circle`` suppresses a lower-scored centre within *squared* distance
  ``min_radius[task]`` (mmdet3d's circle_nms compares squared distance to min_radius),
  ``rotate`` suppresses at rotated BEV IoU > ``nms_thr`` after ``pre_max_size``. Both
  keep at most ``post_max_size``.
* Tasks are merged with label offsets; z becomes the bottom centre (z - h/2), i.e. the
  output rows are mmdet3d ``LiDARInstance3DBoxes`` tensors: (x, y, z_bottom, l, w, h, yaw,
  vx, vy), yaw counter-clockwise from +x, l along the heading.

Greedy NMS is computed as the fixed point of "keep i unless a kept, higher-scored box
suppresses it", iterated with boolean matrix products: exact greedy result, no Python
loop over boxes, and identical on CPU and CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from modeldeploy.projects.centerpoint.settings import CenterPointSettings


@dataclass
class Detections:
    bboxes: torch.Tensor  # [K, 9] (x, y, z_bottom, l, w, h, yaw, vx, vy)
    scores: torch.Tensor  # [K]
    labels: torch.Tensor  # [K] int64, index into settings.class_names

    def to(self, device: torch.device | str) -> Detections:
        return Detections(self.bboxes.to(device), self.scores.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return int(self.scores.numel())


def greedy_keep(suppress: torch.Tensor) -> torch.Tensor:
    """Exact greedy NMS from a [K, K] bool matrix (row i suppresses col j, only i < j)."""
    k = suppress.shape[0]
    keep = torch.ones(k, dtype=torch.bool, device=suppress.device)
    if k == 0:
        return keep
    s = suppress.to(torch.float32)
    for _ in range(k):  # converges long before k in practice; k bounds it exactly
        new = (keep.to(torch.float32) @ s) == 0
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def circle_nms(centers: torch.Tensor, thresh: float, post_max_size: int) -> torch.Tensor:
    """Indices kept, for centres already sorted by descending score."""
    d2 = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    k = centers.shape[0]
    upper = torch.ones(k, k, dtype=torch.bool, device=centers.device).triu(1)
    keep = greedy_keep((d2 <= thresh) & upper)
    return keep.nonzero().squeeze(1)[:post_max_size]


def box_corners_bev(boxes: torch.Tensor) -> torch.Tensor:
    """[N, 5] (x, y, l, w, yaw) → [N, 4, 2] corners, counter-clockwise."""
    x, y, l, w, yaw = boxes.unbind(-1)
    c, s = torch.cos(yaw), torch.sin(yaw)
    sx = torch.tensor([0.5, -0.5, -0.5, 0.5], device=boxes.device, dtype=boxes.dtype)
    sy = torch.tensor([0.5, 0.5, -0.5, -0.5], device=boxes.device, dtype=boxes.dtype)
    dx = l[:, None] * sx
    dy = w[:, None] * sy
    return torch.stack(
        [x[:, None] + dx * c[:, None] - dy * s[:, None], y[:, None] + dx * s[:, None] + dy * c[:, None]], dim=-1
    )


def _inside(pts: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """pts [P, n, 2] inside boxes [P, 5]?"""
    d = pts - boxes[:, None, :2]
    c, s = torch.cos(boxes[:, 4])[:, None], torch.sin(boxes[:, 4])[:, None]
    u = d[..., 0] * c + d[..., 1] * s
    v = -d[..., 0] * s + d[..., 1] * c
    return (u.abs() <= boxes[:, None, 2] / 2 + eps) & (v.abs() <= boxes[:, None, 3] / 2 + eps)


def rotated_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """BEV IoU of box pairs a[i], b[i] ([P, 5] each: x, y, l, w, yaw).

    Intersection polygon = corners of each box inside the other + edge intersections,
    ordered by angle around their centroid, area by the shoelace formula.
    """
    p = a.shape[0]
    if p == 0:
        return a.new_zeros((0,))
    ca, cb = box_corners_bev(a), box_corners_bev(b)
    in_a = _inside(ca, b)
    in_b = _inside(cb, a)
    # edges: start points and directions, all 4x4 combinations
    ea0, eb0 = ca, cb
    ea = torch.roll(ca, -1, dims=1) - ca
    eb = torch.roll(cb, -1, dims=1) - cb
    p0 = ea0[:, :, None, :]
    r = ea[:, :, None, :]
    q0 = eb0[:, None, :, :]
    sv = eb[:, None, :, :]
    denom = r[..., 0] * sv[..., 1] - r[..., 1] * sv[..., 0]
    qp = q0 - p0
    t = (qp[..., 0] * sv[..., 1] - qp[..., 1] * sv[..., 0]) / torch.where(
        denom.abs() < 1e-12, torch.ones_like(denom), denom
    )
    u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / torch.where(
        denom.abs() < 1e-12, torch.ones_like(denom), denom
    )
    ok = (denom.abs() >= 1e-12) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    inter_pts = (p0 + t[..., None] * r).reshape(p, 16, 2)
    pts = torch.cat([ca, cb, inter_pts], dim=1)  # [P, 24, 2]
    valid = torch.cat([in_a, in_b, ok.reshape(p, 16)], dim=1)
    cnt = valid.sum(1)
    vf = valid.to(pts.dtype)[..., None]
    centroid = (pts * vf).sum(1) / cnt.clamp(min=1)[:, None].to(pts.dtype)
    ang = torch.atan2(pts[..., 1] - centroid[:, None, 1], pts[..., 0] - centroid[:, None, 0])
    ang = torch.where(valid, ang, torch.full_like(ang, 10.0))
    order = torch.sort(ang, dim=1, stable=True)[1]
    sp = torch.gather(pts, 1, order[..., None].expand(-1, -1, 2))
    sv_ = torch.gather(valid, 1, order)
    sp = torch.where(sv_[..., None], sp, sp[:, :1, :].expand_as(sp))  # pad with the first vertex
    nxt = torch.roll(sp, -1, dims=1)
    area = 0.5 * (sp[..., 0] * nxt[..., 1] - nxt[..., 0] * sp[..., 1]).sum(1).abs()
    inter = torch.where(cnt >= 3, area, torch.zeros_like(area))
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return inter / union.clamp(min=1e-9)


def rotate_nms(bev: torch.Tensor, thresh: float, pre_max_size: int, post_max_size: int) -> torch.Tensor:
    """Indices kept, for BEV boxes [K, 5] already sorted by descending score."""
    bev = bev[:pre_max_size]
    k = bev.shape[0]
    radius = 0.5 * torch.sqrt(bev[:, 2] ** 2 + bev[:, 3] ** 2)
    near = ((bev[:, None, :2] - bev[None, :, :2]) ** 2).sum(-1) < (radius[:, None] + radius[None, :]) ** 2
    near &= torch.ones(k, k, dtype=torch.bool, device=bev.device).triu(1)
    ii, jj = near.nonzero(as_tuple=True)
    suppress = torch.zeros(k, k, dtype=torch.bool, device=bev.device)
    if ii.numel():
        suppress[ii, jj] = rotated_iou_pairs(bev[ii], bev[jj]) > thresh
    return greedy_keep(suppress).nonzero().squeeze(1)[:post_max_size]


def boxes_at(
    inds: torch.Tensor,
    h: int,
    w: int,
    reg: torch.Tensor,
    height: torch.Tensor,
    dim: torch.Tensor,
    rot: torch.Tensor,
    vel: torch.Tensor,
    s: CenterPointSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [K, 9] (gravity-centre z) and classes [K] at flat heatmap indices ``inds``
    (class * H * W + pixel). Shared by the reference decode and the fixed-shape fast path so
    the two cannot drift apart; one gather per map (concatenating the maps first copies them
    whole, measured slower on the GPU)."""
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
    return torch.cat([x[:, None], y[:, None], z[:, None], d, yaw[:, None], v], dim=1), cls


def decode_task(
    heatmap: torch.Tensor,
    reg: torch.Tensor,
    height: torch.Tensor,
    dim: torch.Tensor,
    rot: torch.Tensor,
    vel: torch.Tensor,
    s: CenterPointSettings,
    task_id: int,
) -> Detections:
    """One task of one sample (tensors [1, C, H, W]) → NMS'ed boxes with gravity-centre z."""
    _, ncls, h, w = heatmap.shape
    scores = torch.sigmoid(heatmap.reshape(-1).float())
    if s.score_threshold > 0:
        cand = (scores > s.score_threshold).nonzero().squeeze(1)
    else:
        cand = torch.arange(scores.numel(), device=scores.device)
    top, order = torch.sort(scores[cand], descending=True, stable=True)
    inds = cand[order[: s.max_num]]
    top = top[: s.max_num]
    boxes, cls = boxes_at(inds, h, w, reg, height, dim, rot, vel, s)
    if s.post_center_range is not None:
        pcr = torch.tensor(s.post_center_range, device=boxes.device, dtype=boxes.dtype)
        m = ((boxes[:, :3] >= pcr[:3]) & (boxes[:, :3] <= pcr[3:])).all(1)
        boxes, top, cls = boxes[m], top[m], cls[m]
    if s.nms_type == "circle":
        keep = circle_nms(boxes[:, :2], s.min_radius[task_id], s.post_max_size)
    else:
        keep = rotate_nms(boxes[:, [0, 1, 3, 4, 6]], s.nms_thr, s.pre_max_size, s.post_max_size)
    return Detections(boxes[keep], top[keep], cls[keep])


def decode_and_nms(per_task: Sequence[Mapping[str, torch.Tensor]], s: CenterPointSettings) -> Detections:
    """All tasks of one sample → merged ``Detections`` in mmdet3d's LiDAR box convention."""
    outs = []
    offset = 0
    for t, out in enumerate(per_task):
        det = decode_task(out["heatmap"], out["reg"], out["height"], out["dim"], out["rot"], out["vel"], s, t)
        outs.append(Detections(det.bboxes, det.scores, det.labels + offset))
        offset += s.task_num_classes[t]
    boxes = torch.cat([o.bboxes for o in outs])
    boxes[:, 2] = boxes[:, 2] - boxes[:, 5] * 0.5
    return Detections(boxes, torch.cat([o.scores for o in outs]), torch.cat([o.labels for o in outs]))


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi
