"""Miscalibration draw and the 5-channel camera+LiDAR input (AWML's fused image).

Two jobs, both deterministic so every backend (and every device) sees bit-identical input:

* ``draw_miscalibration``: the label and extrinsic perturbation of sample ``index``
  come from ``SeedSequence([seed, epoch, index])`` — no global RNG state.
* ``fuse``: project the points with the (possibly perturbed) extrinsic and splat depth
  and intensity into (2d+1)² patches, nearest point winning, as AWML's transform does.
  Projection runs in float64 with element-wise ops only (no BLAS reductions), and the
  nearest-wins choice is an exact integer ``scatter_reduce('amin')`` over depth ranks, so
  CPU and CUDA produce the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from modeldeploy.projects.calibration.settings import CalibrationDataSettings, MiscalibrationSettings

LABEL_MISCALIBRATED = 0
LABEL_CALIBRATED = 1


@dataclass(frozen=True)
class Miscalibration:
    label: int
    delta: np.ndarray  # 4x4, applied in the camera frame: lidar2cam' = delta @ lidar2cam
    rotation_deg: float
    translation_m: float


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues' formula for a unit ``axis``."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + math.sin(angle_rad) * k + (1.0 - math.cos(angle_rad)) * (k @ k)


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def draw_miscalibration(index: int, settings: MiscalibrationSettings, epoch: int = 0) -> Miscalibration:
    """Label and perturbation of sample ``index``: a pure function of (seed, epoch, index)."""
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, epoch, index]))
    u, angle_u, trans_u = rng.random(3)
    axis, direction = _unit_vector(rng), _unit_vector(rng)
    if u >= settings.probability:
        return Miscalibration(LABEL_CALIBRATED, np.eye(4), 0.0, 0.0)
    angle = settings.min_rotation_deg + angle_u * (settings.max_rotation_deg - settings.min_rotation_deg)
    dist = settings.min_translation_m + trans_u * (settings.max_translation_m - settings.min_translation_m)
    delta = np.eye(4)
    delta[:3, :3] = rotation_matrix(axis, math.radians(angle))
    delta[:3, 3] = direction * dist
    return Miscalibration(LABEL_MISCALIBRATED, delta, float(angle), float(dist))


def fuse(
    image: np.ndarray,
    points: np.ndarray,
    cam2img: np.ndarray,
    lidar2cam: np.ndarray,
    settings: CalibrationDataSettings,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(H,W,3) uint8 BGR + (N,≥4) points → normalised (1, 5, H, W) float32 on ``device``.

    Channels: B, G, R, depth (255·z/max_depth), intensity — then (x − mean) / std.
    """
    device = torch.device(device)
    h, w = image.shape[:2]
    img = torch.as_tensor(np.ascontiguousarray(image)).to(device)
    pts = torch.as_tensor(np.ascontiguousarray(points[:, :4]), dtype=torch.float64).to(device)
    t = [float(v) for v in np.asarray(lidar2cam, dtype=np.float64).reshape(-1)]
    k = [float(v) for v in np.asarray(cam2img, dtype=np.float64).reshape(-1)]
    x, y, z, inten = pts.unbind(1)
    xc = t[0] * x + t[1] * y + t[2] * z + t[3]
    yc = t[4] * x + t[5] * y + t[6] * z + t[7]
    zc = t[8] * x + t[9] * y + t[10] * z + t[11]
    u = (k[0] * xc + k[1] * yc + k[2] * zc) / zc
    v = (k[3] * xc + k[4] * yc + k[5] * zc) / zc
    valid = (zc > 0.0) & (zc < settings.max_depth) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    # No boolean indexing (slow, data-dependent shapes): invalid points sort last and write
    # into a dummy bin (index h*w) that is dropped at the end.
    n = int(zc.numel())
    key = torch.where(valid, zc, torch.full_like(zc, math.inf))
    order = torch.sort(key, stable=True).indices  # rank 0 = nearest valid point
    zs, its, ok_s = zc[order], inten[order], valid[order]
    cols = torch.where(ok_s, u[order], 0.0).floor().long()
    rows = torch.where(ok_s, v[order], 0.0).floor().long()
    d = settings.dilation_size
    offs = torch.arange(-d, d + 1, device=device)
    dr, dc = torch.meshgrid(offs, offs, indexing="ij")
    pr = rows[:, None] + dr.reshape(1, -1)
    pc = cols[:, None] + dc.reshape(1, -1)
    inb = (pr >= 0) & (pr < h) & (pc >= 0) & (pc < w) & ok_s[:, None]
    flat = torch.where(inb, pr * w + pc, h * w).reshape(-1)
    rank = torch.arange(n, device=device)[:, None].expand_as(pr).reshape(-1)
    winner = torch.full((h * w + 1,), n, dtype=torch.long, device=device)
    winner.scatter_reduce_(0, flat, rank, reduce="amin")
    winner = winner[: h * w]
    hit = winner < n
    pick = winner.clamp(max=max(n - 1, 0))
    if n:
        depth = torch.where(hit, 255.0 * zs[pick] / settings.max_depth, 0.0)
        intensity = torch.where(hit, its[pick], 0.0)
    else:
        depth = intensity = torch.zeros(h * w, dtype=torch.float64, device=device)

    fused = torch.cat(
        [
            img.to(torch.float32).permute(2, 0, 1),
            depth.view(1, h, w).to(torch.float32),
            intensity.view(1, h, w).to(torch.float32),
        ],
        0,
    )
    mean = torch.tensor(settings.normalize.mean, dtype=torch.float32, device=device).view(5, 1, 1)
    std = torch.tensor(settings.normalize.std, dtype=torch.float32, device=device).view(5, 1, 1)
    return ((fused - mean) / std).unsqueeze(0)
