"""The exported graphs: AWML's ``output`` tensor, and the same network with ONNX NMS appended.

``YOLOXOutput``: ``images`` [B,3,H,W] (BGR 0–255) → ``output`` [B, anchors, 4+1+C]; boxes are
the raw regression (AWML/Tier4 layout) or, with ``decode_in_inference``, decoded
(cx, cy, w, h) in input pixels; objectness and class scores are sigmoids.

``YOLOXWithNMS``: ``images`` → ``num_dets`` [B] int64, ``det_boxes`` [B,K,4] (x1,y1,x2,y2 in
input pixels), ``det_scores`` [B,K], ``det_classes`` [B,K] int64 (-1 = padding), K =
max_per_img — the output names of TensorRT's EfficientNMS, but built from the standard
ONNX ``NonMaxSuppression`` op (ONNX Runtime runs it, TensorRT ≥ 8.5 parses it), no plugin.
Fixed-size padded outputs keep shapes equal across backends, so verification compares
final detections tensor by tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from modeldeploy.projects.yolox.model import YOLOX
from modeldeploy.projects.yolox.ops import (
    cxcywh_to_xyxy,
    decode_cxcywh,
    flatten_head_outputs,
    nms_indices,
    priors_for,
    top_candidates,
    topk_stable,
)


def _decode(model: YOLOX, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the network → (raw ``output``, decoded (cx, cy, w, h) boxes)."""
    cls_scores, bbox_preds, objectnesses = model(images)
    out = flatten_head_outputs(cls_scores, bbox_preds, objectnesses)
    shapes = [(int(r.shape[2]), int(r.shape[3])) for r in bbox_preds]
    priors = priors_for(shapes, model.strides, images.device, out.dtype)
    return out, decode_cxcywh(out[..., :4], priors)


class YOLOXOutput(nn.Module):
    def __init__(self, model: YOLOX, decode_in_inference: bool = False) -> None:
        super().__init__()
        self.model = model
        self.decode_in_inference = decode_in_inference

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out, boxes = _decode(self.model, images)
        if self.decode_in_inference:
            return torch.cat([boxes, out[..., 4:]], -1)
        return out


class _NonMaxSuppression(torch.autograd.Function):
    """Eager: the same greedy class-aware NMS as the Python postprocess. Export: ONNX
    ``NonMaxSuppression`` (center_point_box=0). Returns ``[M, 3]`` int64 (batch, class, box)."""

    @staticmethod
    def forward(
        ctx, boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou_thr: float, score_thr: float
    ) -> torch.Tensor:
        rows = []
        num_classes, k = scores.shape[1], scores.shape[2]
        for b in range(boxes.shape[0]):
            flat = scores[b].reshape(-1)  # class-major: c * k + i
            cand = torch.nonzero(flat > score_thr).reshape(-1)
            cls, idx = cand // k, cand % k
            keep = nms_indices(boxes[b, idx], flat[cand], cls, iou_thr)
            for c in range(num_classes):  # ONNX order: batch, class, score (desc)
                kc = keep[cls[keep] == c][:max_per_class]
                rows.append(torch.stack([torch.full_like(kc, b), torch.full_like(kc, c), idx[kc]], 1))
        if not rows:
            return torch.zeros(0, 3, dtype=torch.long, device=boxes.device)
        return torch.cat(rows, 0).long()

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou_thr: float, score_thr: float):
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.long)),
            g.op("Constant", value_t=torch.tensor([iou_thr], dtype=torch.float)),
            g.op("Constant", value_t=torch.tensor([score_thr], dtype=torch.float)),
        )


class YOLOXWithNMS(nn.Module):
    OUTPUT_NAMES = ("num_dets", "det_boxes", "det_scores", "det_classes")

    def __init__(self, model: YOLOX, *, score_thr: float, iou_thr: float, max_per_img: int, pre_nms: int) -> None:
        super().__init__()
        self.model = model
        self.score_thr, self.iou_thr = float(score_thr), float(iou_thr)
        self.max_per_img, self.pre_nms = int(max_per_img), int(pre_nms)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out, boxes = _decode(self.model, images)
        cand_boxes, cand_scores, cand_labels = top_candidates(cxcywh_to_xyxy(boxes), out[..., 4:], self.pre_nms)
        k = cand_scores.shape[1]
        classes = torch.arange(self.model.num_classes, device=images.device)
        per_class = torch.where(
            cand_labels[:, None, :] == classes[None, :, None],
            cand_scores[:, None, :],
            torch.zeros_like(cand_scores[:, None, :]),
        )
        sel = _NonMaxSuppression.apply(cand_boxes, per_class, self.max_per_img, self.iou_thr, self.score_thr)
        flat = sel[:, 0] * k + sel[:, 2]
        # every candidate has exactly one class, so a [B, k] map of kept scores (−1 elsewhere) suffices
        dense = (
            torch.full_like(cand_scores, -1.0)
            .reshape(-1)
            .scatter(0, flat, cand_scores.reshape(-1)[flat])
            .reshape(cand_scores.shape)
        )
        det_scores, det_idx = topk_stable(dense, min(self.max_per_img, k))
        valid = det_scores > -0.5
        det_boxes = torch.gather(cand_boxes, 1, det_idx[..., None].expand(-1, -1, 4)) * valid[..., None].to(
            cand_boxes.dtype
        )
        det_classes = torch.where(valid, torch.gather(cand_labels, 1, det_idx), torch.full_like(det_idx, -1))
        det_scores = torch.where(valid, det_scores, torch.zeros_like(det_scores))
        return valid.sum(1), det_boxes, det_scores, det_classes
