"""Synthetic camera + LiDAR samples in the calibration project's on-disk format.

Why analytic ray casting: the classifier learns whether LiDAR depth/intensity edges line
up with image edges, so the image must be rendered from exactly the geometry the LiDAR
samples. Both sensors cast rays against the same scene (a ground plane with road paint,
plus yaw-rotated boxes, poles and walls), so every colour edge of an object is a depth
edge and every paint edge on the ground is an intensity edge.

Frames: the LiDAR frame is the world (x forward, y left, z up; sensor at the origin,
ground at z = -1.8 m). The camera (x right, y down, z forward) sits near the LiDAR with a
per-sample jitter of its mounting pose; ``lidar2cam`` in the calibration file is that
true pose. Sample ``i`` depends only on ``(seed, i)``.

Usage: ``python -m modeldeploy.projects.calibration.synthetic OUT --num-samples N --seed S``
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modeldeploy.core.bundled import materialize_dataset
from modeldeploy.projects.calibration.fusion import rotation_matrix

FORMAT_VERSION = "v1"
INFO_FILE_NAME = "calibration_infos.pkl"
GROUND_Z = -1.8
MAX_RANGE = 80.0
# camera axes expressed in the LiDAR frame (columns): x_cam = -y_lidar, y_cam = -z_lidar, z_cam = x_lidar
_CAM_AXES_IN_LIDAR = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
_LIGHT = np.array([0.4, 0.5, 0.75]) / np.linalg.norm([0.4, 0.5, 0.75])


@dataclass(frozen=True)
class Box:
    center: np.ndarray  # (3,) in the LiDAR frame
    half: np.ndarray  # (3,) half extents (length, width, height)
    yaw: float
    color: np.ndarray  # (3,) BGR 0..255
    intensity: float


@dataclass(frozen=True)
class Patch:
    """Road paint: an axis-aligned rectangle on the ground with its own colour and reflectivity."""

    x0: float
    x1: float
    y0: float
    y1: float
    color: np.ndarray
    intensity: float


@dataclass(frozen=True)
class Scene:
    boxes: list[Box]
    patches: list[Patch]
    ground_color: np.ndarray
    ground_intensity: float


def _random_color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(110, 256)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def random_scene(rng: np.random.Generator) -> Scene:
    boxes: list[Box] = []
    for _ in range(int(rng.integers(4, 9))):  # vehicles / crates
        half = np.array([rng.uniform(0.5, 2.3), rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.5)])
        c = np.array([rng.uniform(6, 35), rng.uniform(-12, 12), GROUND_Z + half[2]])
        boxes.append(Box(c, half, rng.uniform(-math.pi, math.pi), _random_color(rng), rng.uniform(60, 220)))
    for _ in range(int(rng.integers(2, 6))):  # poles
        half = np.array([rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.25), rng.uniform(1.5, 3.5)])
        c = np.array([rng.uniform(5, 30), rng.uniform(-10, 10), GROUND_Z + half[2]])
        boxes.append(Box(c, half, rng.uniform(-math.pi, math.pi), _random_color(rng), rng.uniform(150, 255)))
    for _ in range(int(rng.integers(1, 3))):  # walls / building fronts
        half = np.array([rng.uniform(6, 15), rng.uniform(0.2, 0.5), rng.uniform(1.5, 4.0)])
        if rng.random() < 0.5:
            c, yaw = np.array([rng.uniform(30, 50), rng.uniform(-8, 8), 0.0]), math.pi / 2 + rng.uniform(-0.3, 0.3)
        else:
            c, yaw = (
                np.array([rng.uniform(10, 30), rng.choice([-1, 1]) * rng.uniform(9, 16), 0.0]),
                rng.uniform(-0.2, 0.2),
            )
        c[2] = GROUND_Z + half[2]
        boxes.append(Box(c, half, yaw, _random_color(rng), rng.uniform(40, 160)))
    patches = []
    lane_y = rng.uniform(1.5, 2.0)
    dash, gap, x = rng.uniform(2, 4), rng.uniform(2, 5), rng.uniform(0, 3)
    while x < 60:  # dashed lane lines on both sides
        for y in (-lane_y, lane_y):
            patches.append(
                Patch(x, x + dash, y - 0.08, y + 0.08, np.array([235.0, 240.0, 240.0]), rng.uniform(180, 230))
            )
        x += dash + gap
    for _ in range(int(rng.integers(2, 6))):  # crosswalk bars / coloured markings
        x0, y0 = rng.uniform(4, 30), rng.uniform(-8, 8)
        patches.append(
            Patch(
                x0,
                x0 + rng.uniform(0.4, 2.0),
                y0,
                y0 + rng.uniform(0.5, 3.0),
                _random_color(rng),
                rng.uniform(120, 240),
            )
        )
    grey = rng.uniform(60, 110)
    return Scene(boxes, patches, np.array([grey, grey, grey * rng.uniform(0.95, 1.05)]), rng.uniform(5, 30))


def cast(scene: Scene, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of rays ``origin + t·dirs`` → (t, BGR colour (shaded), intensity, hit mask)."""
    m = dirs.shape[0]
    t_best = np.full(m, np.inf)
    color = np.zeros((m, 3))
    inten = np.zeros(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_g = (GROUND_Z - origin[2]) / dirs[:, 2]
    g = (dirs[:, 2] < 0) & (t_g > 0) & (t_g < MAX_RANGE)
    t_best[g] = t_g[g]
    gp = origin[None, :2] + t_g[g, None] * dirs[g, :2]
    gcol = np.broadcast_to(scene.ground_color, (int(g.sum()), 3)).copy()
    gint = np.full(int(g.sum()), scene.ground_intensity)
    for p in scene.patches:
        on = (gp[:, 0] >= p.x0) & (gp[:, 0] < p.x1) & (gp[:, 1] >= p.y0) & (gp[:, 1] < p.y1)
        gcol[on], gint[on] = p.color, p.intensity
    color[g], inten[g] = gcol * (0.55 + 0.45 * _LIGHT[2]), gint
    dnorm2 = np.einsum("ij,ij->i", dirs, dirs)
    for b in scene.boxes:
        # bounding-sphere cull first: the slab test then runs only on rays that can hit
        oc = b.center - origin
        proj = dirs @ oc
        radius2 = float(b.half @ b.half)
        cand = np.flatnonzero((proj > 0) & (float(oc @ oc) - proj * proj / dnorm2 <= radius2))
        if cand.size == 0:
            continue
        cy, sy = math.cos(b.yaw), math.sin(b.yaw)
        rot = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])  # box → world
        o = rot.T @ (origin - b.center)
        d = dirs[cand] @ rot  # = (rot.T @ dirs.T).T
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-b.half[None] - o[None]) / d
            t2 = (b.half[None] - o[None]) / d
        t1 = np.where(np.isnan(t1), -np.inf, t1)
        t2 = np.where(np.isnan(t2), np.inf, t2)
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        t_near = np.maximum(np.maximum(tmin[:, 0], tmin[:, 1]), tmin[:, 2])
        t_far = np.minimum(np.minimum(tmax[:, 0], tmax[:, 1]), tmax[:, 2])
        sel = (t_near <= t_far) & (t_near > 1e-6) & (t_near < t_best[cand])
        if not sel.any():
            continue
        hit = cand[sel]
        axis = tmin[sel].argmax(1)
        normal_local = np.zeros((hit.size, 3))
        normal_local[np.arange(hit.size), axis] = -np.sign(d[sel, axis])
        shade = 0.35 + 0.65 * np.clip((normal_local @ rot.T) @ _LIGHT, 0.0, 1.0)
        t_best[hit] = t_near[sel]
        color[hit] = b.color[None] * shade[:, None]
        inten[hit] = b.intensity
    return t_best, color, inten, np.isfinite(t_best)


def _sky(h_rows: np.ndarray, height: int) -> np.ndarray:
    f = (h_rows / max(height - 1, 1))[:, None]
    return np.array([235.0, 200.0, 160.0]) * (1 - f) + np.array([250.0, 225.0, 200.0]) * f  # BGR, light blue


def camera_model(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics and the true cam→lidar pose (4x4) with a per-sample mounting jitter."""
    f = 0.85 * width
    k = np.array([[f, 0.0, width / 2 + rng.uniform(-2, 2)], [0.0, f, height / 2 + rng.uniform(-2, 2)], [0.0, 0.0, 1.0]])
    pitch = math.radians(rng.uniform(2.0, 6.0))  # look slightly down at the road
    jitter = rotation_matrix(rng.normal(size=3), math.radians(rng.uniform(0.0, 2.0)))
    r = jitter @ rotation_matrix(np.array([0.0, 1.0, 0.0]), pitch) @ _CAM_AXES_IN_LIDAR
    cam2lidar = np.eye(4)
    cam2lidar[:3, :3] = r
    cam2lidar[:3, 3] = [rng.uniform(0.1, 0.6), rng.uniform(-0.3, 0.3), rng.uniform(-0.5, -0.2)]
    return k, cam2lidar


def render_image(
    scene: Scene, k: np.ndarray, cam2lidar: np.ndarray, height: int, width: int, rng: np.random.Generator, ss: int = 2
) -> np.ndarray:
    """BGR uint8 image by ray casting with ss×ss supersampling (anti-aliased edges)."""
    sub = (np.arange(ss) + 0.5) / ss
    us = (np.arange(width)[:, None] + sub[None]).reshape(-1)
    vs = (np.arange(height)[:, None] + sub[None]).reshape(-1)
    uu, vv = np.meshgrid(us, vs)
    d_cam = np.stack([(uu - k[0, 2]) / k[0, 0], (vv - k[1, 2]) / k[1, 1], np.ones_like(uu)], -1).reshape(-1, 3)
    d = d_cam @ cam2lidar[:3, :3].T
    _, color, _, hit = cast(scene, cam2lidar[:3, 3], d)
    sky = _sky(np.repeat(np.arange(height), ss).astype(np.float64), height)
    sky_full = np.repeat(sky[:, None, :], width * ss, axis=1).reshape(-1, 3)
    color = np.where(hit[:, None], color, sky_full).reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    color += rng.normal(0.0, 2.0, size=color.shape)
    return np.clip(np.rint(color), 0, 255).astype(np.uint8)


def scan_lidar(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) float32 x, y, z, intensity: a 40-beam spinning-LiDAR pattern over the front ±70°."""
    elev = np.radians(np.linspace(-24.0, 6.0, 40))
    azim = np.radians(np.arange(-70.0, 70.0, 0.35))
    el, az = np.meshgrid(elev, azim, indexing="ij")
    el = el + np.radians(rng.normal(0.0, 0.02, size=el.shape))
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    t, _, inten, hit = cast(scene, np.zeros(3), dirs)
    t = t[hit] + rng.normal(0.0, 0.01, size=int(hit.sum()))
    xyz = dirs[hit] * t[:, None]
    inten = np.clip(inten[hit] + rng.normal(0.0, 4.0, size=xyz.shape[0]), 0, 255)
    return np.concatenate([xyz, inten[:, None]], 1).astype(np.float32)


def make_sample(seed: int, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(image BGR uint8, points (N,4) float32, calibration dict) of sample ``index``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    scene = random_scene(rng)
    k, cam2lidar = camera_model(rng, height, width)
    image = render_image(scene, k, cam2lidar, height, width, rng)
    points = scan_lidar(scene, rng)
    calib = {
        "cam2img": k.tolist(),
        "distortion_coefficients": [0.0] * 5,
        "lidar2cam": np.linalg.inv(cam2lidar).tolist(),
        "height": height,
        "width": width,
        "frame_id": "CAM_FRONT",
    }
    return image, points, calib


def generate_dataset(out_dir: str | Path, num_samples: int, seed: int, height: int = 96, width: int = 160) -> Path:
    """Write ``num_samples`` samples + ``calibration_infos.pkl`` into ``out_dir``; return the info path."""
    out = Path(out_dir)
    for sub in ("images", "lidar", "calib"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    data_list = []
    for i in range(num_samples):
        image, points, calib = make_sample(seed, i, height, width)
        stem = f"{i:06d}"
        if not cv2.imwrite(str(out / "images" / f"{stem}.png"), image):
            raise OSError(f"could not write {out / 'images' / f'{stem}.png'}")
        points.tofile(out / "lidar" / f"{stem}.bin")
        (out / "calib" / f"{stem}.json").write_text(json.dumps(calib, indent=1))
        data_list.append(
            {
                "sample_idx": i,
                "frame_id": "CAM_FRONT",
                "img_path": f"images/{stem}.png",
                "lidar_path": f"lidar/{stem}.bin",
                "num_pts_feats": 4,
                "calib_path": f"calib/{stem}.json",
            }
        )
    info = {
        "metainfo": {
            "dataset": "calibration-synthetic",
            "version": FORMAT_VERSION,
            "seed": seed,
            "num_samples": num_samples,
            "height": height,
            "width": width,
            "classes": ["miscalibrated", "calibrated"],
        },
        "data_list": data_list,
    }
    info_path = out / INFO_FILE_NAME
    with open(info_path, "wb") as f:
        pickle.dump(info, f, protocol=4)
    return info_path


def bundled_dataset(num_samples: int, seed: int, height: int = 96, width: int = 160, root: Path | None = None) -> Path:
    """Generate the deterministic sample once into the cache; return its info file."""
    name = f"calibration-synthetic-{FORMAT_VERSION}-s{seed}-n{num_samples}"
    if (height, width) != (96, 160):
        name += f"-{width}x{height}"
    return materialize_dataset(
        name, INFO_FILE_NAME, lambda d: generate_dataset(d, num_samples, seed, height, width), root
    )


def example_sample(
    height: int, width: int, seed: int = 0, render_height: int = 96, render_width: int = 160
) -> dict[str, Any]:
    """One sample in the data loader's format at ``height`` x ``width``, in memory: the
    example input for an export without data. Rendered small (ray casting a full-resolution
    camera image takes tens of seconds) and scaled up, with the intrinsics scaled alike so
    the LiDAR still projects onto the scene it was scanned from."""
    image, points, calib = make_sample(seed, 0, render_height, render_width)
    k = np.asarray(calib["cam2img"], dtype=np.float64)
    if (height, width) != (render_height, render_width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        k = np.diag([width / render_width, height / render_height, 1.0]) @ k
    lidar2cam = np.asarray(calib["lidar2cam"], dtype=np.float64)
    return {
        "index": 0,
        "sample_idx": 0,
        "img_path": "<synthesised example input>",
        "image": image,
        "points": points,
        "cam2img": k,
        "lidar2cam": lidar2cam,
        "lidar2cam_true": lidar2cam,
        "gt_label": 1,
        "miscalibration": {"rotation_deg": 0.0, "translation_m": 0.0},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output directory (created)")
    ap.add_argument("--num-samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=160)
    a = ap.parse_args(argv)
    if a.num_samples < 1 or a.height < 16 or a.width < 16:
        ap.error("--num-samples must be >= 1 and --height/--width >= 16")
    info = generate_dataset(a.out, a.num_samples, a.seed, a.height, a.width)
    print(f"wrote {a.num_samples} samples; info file: {info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
