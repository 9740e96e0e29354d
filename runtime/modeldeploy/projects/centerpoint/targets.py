"""CenterPoint training targets and losses in pure torch (mmdet3d CenterHead semantics).

Targets per task: a class heatmap with a Gaussian at every box centre (radius from
CornerNet's ``gaussian_radius`` on the box footprint in output cells, at least
``min_radius``), and for up to ``max_objs`` boxes the flat index of the centre cell plus
the regression target (dx, dy, z_centre, log l, log w, log h, sin yaw, cos yaw, vx, vy).
Losses: Gaussian focal loss (α=2, γ=4) on clipped sigmoid heatmaps, normalised by the
number of peaks; L1 on the gathered regression with ``code_weights``, weight 0.25.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from modeldeploy.projects.centerpoint.settings import CenterPointSettings


def gaussian_radius(height: float, width: float, min_overlap: float) -> float:
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: torch.Tensor, cx: int, cy: int, radius: int) -> None:
    """Max-merge a Gaussian (σ = diameter / 6) centred at (cx, cy) into ``heatmap`` [H, W]."""
    h, w = heatmap.shape
    sigma = (2 * radius + 1) / 6
    ys = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(ys[:, None] ** 2 + ys[None, :] ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(torch.float32).eps * g.max()] = 0
    l, r = min(cx, radius), min(w - cx, radius + 1)
    t, b = min(cy, radius), min(h - cy, radius + 1)
    region = heatmap[cy - t : cy + b, cx - l : cx + r]
    torch.maximum(region, g[radius - t : radius + b, radius - l : radius + r], out=region)


def build_targets(
    boxes: np.ndarray, labels: np.ndarray, vels: np.ndarray, s: CenterPointSettings, train_cfg: Mapping[str, float]
) -> list[dict[str, torch.Tensor]]:
    """One sample's targets per task. ``boxes`` rows: (x, y, z_centre, l, w, h, yaw)."""
    H, W = s.head_grid
    osf = s.out_size_factor
    max_objs = int(train_cfg.get("max_objs", 500))
    overlap = float(train_cfg.get("gaussian_overlap", 0.1))
    min_radius = int(train_cfg.get("min_radius", 2))
    out = []
    offset = 0
    for classes in s.task_classes:
        n = len(classes)
        hm = torch.zeros(n, H, W)
        ind = torch.zeros(max_objs, dtype=torch.int64)
        mask = torch.zeros(max_objs, dtype=torch.bool)
        anno = torch.zeros(max_objs, 10)
        k = 0
        for b, lab, v in zip(boxes, labels, vels):
            c = int(lab) - offset
            if not 0 <= c < n or k >= max_objs:
                continue
            x, y, z, l, w, h, yaw = (float(t) for t in b[:7])
            width, length = l / s.voxel_size[0] / osf, w / s.voxel_size[1] / osf
            radius = max(min_radius, int(gaussian_radius(length, width, overlap)))
            fx = (x - s.point_cloud_range[0]) / s.voxel_size[0] / osf
            fy = (y - s.point_cloud_range[1]) / s.voxel_size[1] / osf
            ix, iy = int(fx), int(fy)
            if not (0 <= ix < W and 0 <= iy < H):
                continue
            draw_gaussian(hm[c], ix, iy, radius)
            ind[k] = iy * W + ix
            mask[k] = True
            anno[k] = torch.tensor(
                [
                    fx - ix,
                    fy - iy,
                    z,
                    math.log(l),
                    math.log(w),
                    math.log(h),
                    math.sin(yaw),
                    math.cos(yaw),
                    float(v[0]),
                    float(v[1]),
                ]
            )
            k += 1
        out.append({"heatmap": hm, "ind": ind, "mask": mask, "anno_box": anno})
        offset += n
    return out


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = (1 - target).pow(4)
    loss = -(torch.log(pred) * (1 - pred).pow(2) * pos + torch.log(1 - pred) * pred.pow(2) * neg).sum()
    return loss / pos.sum().clamp(min=1)


def task_loss(
    pred: Mapping[str, torch.Tensor],
    tgt: Mapping[str, torch.Tensor],
    code_weights: Sequence[float],
    bbox_weight: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(heatmap loss, weighted regression loss) for one task over a batch."""
    hm_loss = focal_loss(pred["heatmap"], tgt["heatmap"])
    box = torch.cat([pred["reg"], pred["height"], pred["dim"], pred["rot"], pred["vel"]], dim=1)
    b, c = box.shape[:2]
    box = box.view(b, c, -1).permute(0, 2, 1)
    gathered = torch.gather(box, 1, tgt["ind"].unsqueeze(-1).expand(-1, -1, c))
    m = tgt["mask"].unsqueeze(-1).float() * torch.tensor(code_weights, dtype=box.dtype)
    reg = (torch.abs(gathered - tgt["anno_box"]) * m).sum() / (tgt["mask"].float().sum() + 1e-4)
    return hm_loss, bbox_weight * reg
