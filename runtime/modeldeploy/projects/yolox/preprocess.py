"""Letterbox on the device, as AWML's test pipeline: Resize(keep_ratio) → Pad(114) → BGR 0–255.

Scale ``s = min(W_in / w, H_in / h)`` (for AWML's square 960x960 this is exactly mmcv's
keep-ratio rule ``min(long_max / long_edge, short_max / short_edge)``; for a non-square
size it guarantees the image fits the fixed graph input) and ``new = int(size * s + 0.5)``; the image is resized with bilinear interpolation
(half-pixel centres, like cv2.INTER_LINEAR) and rounded back to 8-bit values, then padded
at the bottom/right to the network size. AWML's ``DetDataPreprocessor`` has no mean/std,
so nothing is normalised unless the model config says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalize:
    """From the model's ``data_preprocessor`` (see settings.normalize_settings)."""

    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    bgr_to_rgb: bool


@dataclass(frozen=True)
class Letterbox:
    scale_w: float  # resized width / original width
    scale_h: float
    ori_shape: tuple[int, int]  # (h, w)


def resized_shape(h: int, w: int, img_scale: tuple[int, int]) -> tuple[int, int]:
    out_w, out_h = img_scale
    s = min(out_w / w, out_h / h)
    return min(int(h * s + 0.5), out_h), min(int(w * s + 0.5), out_w)


def letterbox(
    image: np.ndarray, img_scale: tuple[int, int], pad_val: float, norm: Normalize, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, Letterbox]:
    """HxWx3 uint8 BGR → ``[1, 3, H_in, W_in]`` float32 on ``device`` (img_scale is (w, h))."""
    h, w = image.shape[:2]
    nh, nw = resized_shape(h, w, img_scale)
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True).permute(2, 0, 1)[None].float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False).round_().clamp_(0, 255)
    out_w, out_h = img_scale
    x = F.pad(x, (0, out_w - nw, 0, out_h - nh), value=float(pad_val))
    if norm.bgr_to_rgb:
        x = x.flip(1)
    if norm.mean is not None and norm.std is not None:
        mean = torch.tensor(norm.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(norm.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous(), Letterbox(nw / w, nh / h, (h, w))


def letterbox_geometry(hw: tuple[int, int], img_scale: tuple[int, int]) -> Letterbox:
    """The scale factors ``letterbox`` applies to an image of size ``hw`` (no pixels touched)."""
    h, w = int(hw[0]), int(hw[1])
    nh, nw = resized_shape(h, w, img_scale)
    return Letterbox(nw / w, nh / h, (h, w))


def to_original(boxes: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """xyxy boxes in network pixels → original image pixels, clipped to the image."""
    scale = torch.tensor([lb.scale_w, lb.scale_h, lb.scale_w, lb.scale_h], device=boxes.device, dtype=boxes.dtype)
    out = boxes / scale
    h, w = lb.ori_shape
    return torch.stack([out[:, 0].clamp(0, w), out[:, 1].clamp(0, h), out[:, 2].clamp(0, w), out[:, 3].clamp(0, h)], 1)
