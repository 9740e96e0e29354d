"""Synthetic LiDAR scenes in the T4/nuScenes (mmdet3d v1.x) info format.

Why this shape of data: a CenterPoint learns from the BEV footprint and height profile of
point clusters, so a scene is a ground plane plus points on the sensor-facing surfaces of
non-overlapping boxes of five T4 classes with realistic sizes, and unlabeled clutter
(poles, bushes) that the detector must learn to ignore. Point density falls with range
like a spinning LiDAR's.

On disk (what AWML/mmdet3d read)::

    <root>/centerpoint_infos_val.pkl   {'metainfo': {...}, 'data_list': [frame, ...]}
    <root>/samples/LIDAR_TOP/<token>.bin  float32 [N, 5]: x, y, z, intensity (0..255), ring

A frame: ``sample_idx``, ``token``, ``timestamp``, ``lidar_points = {lidar_path (relative
to root), num_pts_feats}``, ``instances = [{bbox_3d, bbox_label_3d, velocity,
num_lidar_pts, bbox_3d_isvalid}]``. ``bbox_3d`` is (x, y, z, l, w, h, yaw) in the LiDAR
frame — x forward, y left, z up; (x, y, z) the box's *geometric centre* (nuScenes/T4
infos; mmdet3d loads them with origin (0.5, 0.5, 0.5)); l along the heading; yaw
counter-clockwise from +x. Frame ``i`` depends only on ``(seed, i)``.

Usage: ``python -m modeldeploy.projects.centerpoint.synthetic OUT --num-frames N --seed S``
"""

from __future__ import annotations

import argparse
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from modeldeploy.core.bundled import materialize_dataset

FORMAT_VERSION = "v1"
INFO_FILE_NAME = "centerpoint_infos_val.pkl"
CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")
GROUND_Z = -1.8
NUM_PTS_FEATS = 5
BUNDLED_FRAMES = 16
BUNDLED_SEED = 2024


@dataclass(frozen=True)
class ClassSpec:
    size: tuple[float, float, float]  # mean (l, w, h)
    jitter: tuple[float, float, float]
    intensity: tuple[float, float]  # mean, std on 0..255
    max_speed: float
    weight: float


SPECS = {
    "car": ClassSpec((4.5, 1.85, 1.6), (0.35, 0.1, 0.12), (60, 20), 12.0, 0.36),
    "truck": ClassSpec((7.5, 2.5, 3.0), (1.2, 0.15, 0.3), (90, 25), 10.0, 0.14),
    "bus": ClassSpec((11.0, 2.9, 3.2), (0.8, 0.08, 0.15), (110, 20), 10.0, 0.1),
    "bicycle": ClassSpec((1.75, 0.6, 1.25), (0.1, 0.05, 0.08), (40, 15), 5.0, 0.15),
    "pedestrian": ClassSpec((0.65, 0.65, 1.72), (0.08, 0.08, 0.1), (30, 10), 1.6, 0.25),
}


def _face_points(rng: np.random.Generator, l: float, w: float, h: float, center: np.ndarray, yaw: float, n_scale: float) -> np.ndarray:
    """Points on the faces of a box that face the sensor at the origin, in the LiDAR frame."""
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    faces = [  # (normal in box frame, face centre offset, two half-extent axes)
        (np.array([1.0, 0, 0]), np.array([l / 2, 0, 0]), (1, w / 2), (2, h / 2)),
        (np.array([-1.0, 0, 0]), np.array([-l / 2, 0, 0]), (1, w / 2), (2, h / 2)),
        (np.array([0, 1.0, 0]), np.array([0, w / 2, 0]), (0, l / 2), (2, h / 2)),
        (np.array([0, -1.0, 0]), np.array([0, -w / 2, 0]), (0, l / 2), (2, h / 2)),
        (np.array([0, 0, 1.0]), np.array([0, 0, h / 2]), (0, l / 2), (1, w / 2)),
    ]
    out = []
    rng_dist = float(np.linalg.norm(center[:2]))
    for normal, off, (a1, e1), (a2, e2) in faces:
        wn = rot @ normal
        fc = center + rot @ off
        if float(wn @ fc) >= 0:  # faces away from the sensor
            continue
        cos_inc = abs(float(wn @ fc)) / max(float(np.linalg.norm(fc)), 1e-6)
        area = 4 * e1 * e2
        n = int(np.clip(area * cos_inc * n_scale / max(rng_dist, 2.0) ** 2, 2, 800))
        local = np.tile(off, (n, 1))
        local[:, a1] += rng.uniform(-e1, e1, n)
        local[:, a2] += rng.uniform(-e2, e2, n)
        local += rng.normal(0, 0.015, (n, 3))
        out.append(local @ rot.T + center)
    return np.concatenate(out) if out else np.zeros((0, 3))


def _ring(xyz: np.ndarray) -> np.ndarray:
    elev = np.degrees(np.arctan2(xyz[:, 2], np.linalg.norm(xyz[:, :2], axis=1) + 1e-6))
    return np.clip(np.floor((elev + 25.0) / 40.0 * 32), 0, 31)


def generate_frame(seed: int, index: int, *, object_range: float = 24.0, ground_range: float = 40.0,
                   min_objects: int = 8, max_objects: int = 16, n_scale: float = 4000.0) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One scene: points [N, 5] float32 and its instances (info-file dicts)."""
    rng = np.random.default_rng([seed, index])
    names = list(SPECS)
    probs = np.array([SPECS[n].weight for n in names])
    probs = probs / probs.sum()
    placed: list[tuple[float, float, float]] = []  # (x, y, bev radius)
    instances: list[dict[str, Any]] = []
    clouds: list[np.ndarray] = []
    target = int(rng.integers(min_objects, max_objects + 1))
    for _ in range(target * 20):
        if len(instances) >= target:
            break
        name = names[int(rng.choice(len(names), p=probs))]
        spec = SPECS[name]
        l, w, h = (max(0.3, m + rng.normal(0, j)) for m, j in zip(spec.size, spec.jitter))
        x, y = rng.uniform(-object_range, object_range, 2)
        rad = 0.5 * math.hypot(l, w)
        if math.hypot(x, y) < rad + 2.5 or abs(x) + rad > object_range + 1 or abs(y) + rad > object_range + 1:
            continue
        if any(math.hypot(x - px, y - py) < rad + pr + 0.4 for px, py, pr in placed):
            continue  # boxes never overlap (and keep a gap): no occlusion bookkeeping needed
        yaw = float(rng.uniform(-math.pi, math.pi))
        z = GROUND_Z + h / 2
        center = np.array([x, y, z])
        pts = _face_points(rng, l, w, h, center, yaw, n_scale)
        pts = pts[pts[:, 2] > GROUND_Z + 0.05]
        if len(pts) < 5:
            continue
        speed = float(rng.uniform(0, spec.max_speed)) if rng.random() < 0.6 else 0.0
        inten = np.clip(rng.normal(*spec.intensity, len(pts)), 0, 255)
        clouds.append(np.column_stack([pts, inten, _ring(pts)]))
        placed.append((x, y, rad))
        instances.append({
            "bbox_3d": [float(x), float(y), float(z), float(l), float(w), float(h), yaw],
            "bbox_label_3d": CLASSES.index(name),
            "velocity": [speed * math.cos(yaw), speed * math.sin(yaw)],
            "num_lidar_pts": int(len(pts)),
            "bbox_3d_isvalid": True,
        })
    for _ in range(int(rng.integers(3, 8))):  # unlabeled clutter: poles and bushes
        x, y = rng.uniform(-object_range, object_range, 2)
        if math.hypot(x, y) < 3 or any(math.hypot(x - px, y - py) < pr + 1.0 for px, py, pr in placed):
            continue
        placed.append((x, y, 0.8))
        if rng.random() < 0.5:
            hgt = rng.uniform(2.5, 5.0)
            n = int(np.clip(4000 / max(math.hypot(x, y), 2) ** 2 * hgt, 4, 200))
            a = rng.uniform(0, 2 * math.pi, n)
            p = np.column_stack([x + 0.12 * np.cos(a), y + 0.12 * np.sin(a), GROUND_Z + rng.uniform(0, hgt, n)])
        else:
            n = int(np.clip(8000 / max(math.hypot(x, y), 2) ** 2, 4, 300))
            p = rng.normal(0, 0.45, (n, 3)) + np.array([x, y, GROUND_Z + 0.6])
            p = p[p[:, 2] > GROUND_Z]
        inten = np.clip(rng.normal(25, 10, len(p)), 0, 255)
        clouds.append(np.column_stack([p, inten, _ring(p)]))
    n_ground = 9000
    r = 2.0 + (ground_range - 2.0) * rng.random(n_ground) ** 1.6
    th = rng.uniform(-math.pi, math.pi, n_ground)
    g = np.column_stack([r * np.cos(th), r * np.sin(th), GROUND_Z + rng.normal(0, 0.03, n_ground)])
    for inst in instances:  # no ground returns under an object
        x, y, _, l, w, _, yaw = inst["bbox_3d"]
        d = g[:, :2] - np.array([x, y])
        u = d[:, 0] * math.cos(yaw) + d[:, 1] * math.sin(yaw)
        v = -d[:, 0] * math.sin(yaw) + d[:, 1] * math.cos(yaw)
        g = g[~((np.abs(u) < l / 2) & (np.abs(v) < w / 2))]
    clouds.append(np.column_stack([g, np.clip(rng.normal(12, 5, len(g)), 0, 255), _ring(g)]))
    points = np.concatenate(clouds).astype(np.float32)
    points = points[rng.permutation(len(points))]  # a sensor does not emit points object by object
    return points, instances


def generate_dataset(root: str | Path, num_frames: int, seed: int, **frame_kwargs: Any) -> Path:
    """Write ``num_frames`` frames + the info file under ``root``; return the info file path."""
    root = Path(root)
    lidar_dir = root / "samples" / "LIDAR_TOP"
    lidar_dir.mkdir(parents=True, exist_ok=True)
    data_list = []
    for i in range(num_frames):
        points, instances = generate_frame(seed, i, **frame_kwargs)
        token = f"synthetic-s{seed}-{i:05d}"
        rel = f"samples/LIDAR_TOP/{token}.bin"
        points.tofile(root / rel)
        data_list.append({
            "sample_idx": i,
            "token": token,
            "timestamp": 1.7e9 + 0.1 * i,
            "lidar_points": {"lidar_path": rel, "num_pts_feats": NUM_PTS_FEATS},
            "instances": instances,
        })
    info = {
        "metainfo": {"classes": list(CLASSES), "categories": {c: i for i, c in enumerate(CLASSES)},
                     "dataset": "modeldeploy-synthetic-t4", "version": FORMAT_VERSION, "info_version": "1.1"},
        "data_list": data_list,
    }
    info_path = root / INFO_FILE_NAME
    with open(info_path, "wb") as f:
        pickle.dump(info, f, protocol=4)
    return info_path




def bundled_dataset(num_frames: int = BUNDLED_FRAMES, seed: int = BUNDLED_SEED, root: Path | None = None) -> Path:
    """Generate the deterministic sample once into the cache; return its info file."""
    name = f"centerpoint-synthetic-{FORMAT_VERSION}-s{seed}-n{num_frames}"
    return materialize_dataset(name, INFO_FILE_NAME, lambda d: generate_dataset(d, num_frames, seed), root)

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output directory (created)")
    ap.add_argument("--num-frames", type=int, default=BUNDLED_FRAMES)
    ap.add_argument("--seed", type=int, default=BUNDLED_SEED)
    a = ap.parse_args(argv)
    if a.num_frames < 1:
        ap.error("--num-frames must be >= 1")
    print(f"wrote {a.num_frames} frames; info file: {generate_dataset(a.out, a.num_frames, a.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
