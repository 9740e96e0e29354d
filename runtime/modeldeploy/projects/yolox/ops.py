"""YOLOX decoding and class-aware NMS in torch (any device), with ONNX NonMaxSuppression semantics.

Why one implementation with ONNX's rules: the in-graph NMS variant (standard ONNX
``NonMaxSuppression``) and the Python postprocess must return the *same* detections, so
the Python path follows exactly what ONNX Runtime does (measured): a box is a candidate
iff ``score > score_thr`` (strict), a box is suppressed iff ``IoU > iou_thr`` (strict)
with an earlier kept box of the same class, ties in score keep the lower index first.
mmdet uses ``>=`` for the score threshold; the difference only matters for a score equal
to the threshold to the last bit.

torchvision is not a dependency: its NMS is a compiled op tied to one torch build, and
this greedy NMS (vectorised as a fixed-point iteration over the IoU matrix) runs on CPU
and CUDA alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def flatten_head_outputs(
    cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor], objectnesses: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Per-level maps → ``[B, anchors, 4 + 1 + C]``: raw box regression, sigmoid objectness,
    sigmoid class scores; anchors level by level, row-major (AWML/Tier4 YOLOX layout)."""
    levels = [torch.cat([r, o.sigmoid(), c.sigmoid()], 1) for c, r, o in zip(cls_scores, bbox_preds, objectnesses)]
    # reshape to constant (-1, C, H*W) rather than flatten(2): the exported Reshape then has a
    # constant shape, so ONNX shape inference keeps anchors and channels static ([B, 18900, 13])
    flat = [x.reshape(-1, int(x.shape[1]), int(x.shape[2]) * int(x.shape[3])) for x in levels]
    return torch.cat(flat, dim=2).permute(0, 2, 1)


def priors_for(
    shapes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``[anchors, 3]`` of (x, y, stride): mmdet's MlvlPointGenerator with offset 0."""
    out = []
    for (h, w), s in zip(shapes, strides):
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
        )
        out.append(
            torch.stack(
                [xs.reshape(-1) * s, ys.reshape(-1) * s, torch.full((h * w,), float(s), device=device, dtype=dtype)], 1
            )
        )
    return torch.cat(out, 0)


def level_shapes(input_hw: tuple[int, int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Feature-map sizes of a stride-s level: the network halves with k3/s2/p1 convs (ceil)."""
    out = []
    for s in strides:
        h, w = input_hw
        while s > 1:
            h, w, s = (h + 1) // 2, (w + 1) // 2, s // 2
        out.append((h, w))
    return out


def decode_cxcywh(reg: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Raw regression ``[..., 4]`` → (cx, cy, w, h) in input pixels (YOLOX / mmdet ``_bbox_decode``)."""
    xy = reg[..., :2] * priors[:, 2:3] + priors[:, :2]
    wh = reg[..., 2:4].exp() * priors[:, 2:3]
    return torch.cat([xy, wh], -1)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    half = b[..., 2:4] / 2
    return torch.cat([b[..., :2] - half, b[..., :2] + half], -1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes ``[N,4]`` × ``[M,4]`` (ONNX Runtime's formula, no +1)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms_indices(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Greedy class-aware NMS; returns kept indices ordered by score (desc), ties by index.

    Vectorised: ``keep[j] = not any(keep[i] and suppresses[i, j] for i < j)`` is iterated
    from all-True to its fixed point, which is unique and equals the greedy result (after
    t rounds the first t entries are final), usually in a handful of rounds.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b, lab = boxes[order], labels[order]
    n = b.shape[0]
    sup = (box_iou(b, b) > iou_thr) & (lab[:, None] == lab[None, :])
    sup &= torch.ones(n, n, dtype=torch.bool, device=b.device).triu(1)
    keep = torch.ones(n, dtype=torch.bool, device=b.device)
    for _ in range(min(n, FIXED_POINT_ROUNDS)):
        new = ~(sup & keep[:, None]).any(0)
        if torch.equal(new, keep):
            return order[keep]
        keep = new
    return order[_greedy_scan(sup)]


FIXED_POINT_ROUNDS = 12


def _greedy_scan(sup: torch.Tensor) -> torch.Tensor:
    """Exact sequential greedy pass over the suppression matrix (host side, O(n) row ops):
    the bounded fallback when long suppression chains make the fixed point slow to reach."""
    m = sup.cpu().numpy()
    keep = np.ones(m.shape[0], dtype=bool)
    for i in range(m.shape[0]):
        if keep[i]:
            keep &= ~m[i]
    return torch.from_numpy(keep).to(sup.device)


def topk_stable(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k along the last dim, ties → lower index first (what ONNX TopK specifies); a
    TopK node when exporting. Saturated sigmoids (exactly 1.0) make ties real."""
    if torch.onnx.is_in_onnx_export():
        return x.topk(k, dim=-1)
    s, i = torch.sort(x, dim=-1, descending=True, stable=True)
    return s[..., :k], i[..., :k]


def top_candidates(
    boxes_xyxy: torch.Tensor, obj_cls: torch.Tensor, pre_nms: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: best class per anchor (mmdet YOLOX: score = obj · max cls), then the
    ``pre_nms`` best anchors. ``obj_cls`` is ``[B, N, 1 + C]`` (sigmoid objectness, classes)."""
    scores, labels = (obj_cls[..., 1:] * obj_cls[..., :1]).max(-1)
    top_s, top_i = topk_stable(scores, min(int(pre_nms), scores.shape[1]))
    top_b = torch.gather(boxes_xyxy, 1, top_i[..., None].expand(-1, -1, 4))
    return top_b, top_s, torch.gather(labels, 1, top_i)


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    score_thr: float,
    iou_thr: float,
    max_per_img: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's candidates → (boxes, scores, labels) after threshold, NMS and top-k."""
    cand = scores > score_thr
    b, s, lab = boxes[cand], scores[cand], labels[cand]
    keep = nms_indices(b, s, lab, iou_thr)[: int(max_per_img)]
    return b[keep], s[keep], lab[keep]
