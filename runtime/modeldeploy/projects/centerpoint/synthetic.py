"""Synthetic LiDAR scenes in the T4/nuScenes (mmdet3d v1.x) info format, with sweeps.

Why this shape of data: a CenterPoint learns from the BEV footprint and height profile of
point clusters, so a scene is a ground plane plus points on the sensor-facing surfaces of
non-overlapping boxes of five T4 classes with realistic sizes, and unlabeled clutter
(poles, bushes) that the detector must learn to ignore. Point density falls with range
like a spinning LiDAR's. Each frame also has ``NUM_SWEEPS`` earlier sweeps (0.1 s apart,
a little timing jitter) taken while the ego vehicle drove and turned and the objects
moved with their velocity, so the multi-sweep path (sweep transform, time-lag column)
runs in CI exactly as on T4 data.

On disk (what AWML/mmdet3d read)::

    <root>/centerpoint_infos_val.pkl   {'metainfo': {...}, 'data_list': [frame, ...]}
    <root>/samples/LIDAR_TOP/<token>.bin  float32 [N, 5]: x, y, z, intensity (0..255), ring
    <root>/sweeps/LIDAR_TOP/<token>_<k>.bin  the same, in that sweep's own sensor frame

A frame: ``sample_idx``, ``token``, ``timestamp`` (seconds), ``ego2global``,
``lidar_points = {lidar_path (relative to root), num_pts_feats, lidar2ego}``,
``lidar_sweeps = [{lidar_points: {lidar_path, num_pts_feats, lidar2ego, lidar2sensor},
timestamp, sample_data_token, ego2global}, ...]`` (nearest first; ``lidar2sensor`` is
the key-LiDAR → sweep-LiDAR transform, the inverse of sweep → key, as AWML's T4 converter
writes it), ``instances = [{bbox_3d, bbox_label_3d, velocity, num_lidar_pts,
bbox_3d_isvalid}]``. ``bbox_3d`` is (x, y, z, l, w, h, yaw) in the LiDAR frame — x
forward, y left, z up; (x, y, z) the box's *geometric centre* (nuScenes/T4 infos;
mmdet3d loads them with origin (0.5, 0.5, 0.5)); l along the heading; yaw
counter-clockwise from +x. The LiDAR is the ego frame here (``lidar2ego`` = identity).
Frame ``i`` depends only on ``(seed, i)``; its key-frame points do not depend on the
sweeps.

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
from modeldeploy.projects.centerpoint.point_loading import PointLoading, SweepPoints, choose_sweeps, merge_points

FORMAT_VERSION = "v2"  # v2: lidar_sweeps (bumping it regenerates the bundled sample)
INFO_FILE_NAME = "centerpoint_infos_val.pkl"
CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")
GROUND_Z = -1.8
NUM_PTS_FEATS = 5
BUNDLED_FRAMES = 16
BUNDLED_SEED = 2024
NUM_SWEEPS = 2  # written per frame; AWML's T4 configs read the nearest one (sweeps_num=1)
SWEEP_PERIOD_S = 0.1
FRAME_TIMESTAMP_S = 1.7e9


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


def _face_points(
    rng: np.random.Generator, l: float, w: float, h: float, center: np.ndarray, yaw: float, n_scale: float
) -> np.ndarray:
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


def generate_frame(
    seed: int,
    index: int,
    *,
    object_range: float = 24.0,
    ground_range: float = 40.0,
    min_objects: int = 8,
    max_objects: int = 16,
    n_scale: float = 4000.0,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
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
        instances.append(
            {
                "bbox_3d": [float(x), float(y), float(z), float(l), float(w), float(h), yaw],
                "bbox_label_3d": CLASSES.index(name),
                "velocity": [speed * math.cos(yaw), speed * math.sin(yaw)],
                "num_lidar_pts": int(len(pts)),
                "bbox_3d_isvalid": True,
            }
        )
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


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _pose(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, trans
    return m


def _inside(points: np.ndarray, box: list[float], margin: float = 0.1) -> np.ndarray:
    x, y, z, l, w, h, yaw = box
    d = points[:, :2] - np.array([x, y])
    u = d[:, 0] * math.cos(yaw) + d[:, 1] * math.sin(yaw)
    v = -d[:, 0] * math.sin(yaw) + d[:, 1] * math.cos(yaw)
    return (np.abs(u) < l / 2 + margin) & (np.abs(v) < w / 2 + margin) & (np.abs(points[:, 2] - z) < h / 2 + margin)


def generate_sweeps(
    seed: int, index: int, points: np.ndarray, instances: list[dict[str, Any]], num_sweeps: int = NUM_SWEEPS
) -> list[dict[str, Any]]:
    """Earlier sweeps of a frame: ``points`` (float32 [M, 5], in the sweep's sensor frame),
    ``sensor2lidar`` (4x4, sweep → key LiDAR) and ``time_lag`` (seconds, > 0).

    Moving objects are where they were ``time_lag`` earlier (centre − velocity·lag), static
    points stay put in the world, the ego drove forward (0–12 m/s) and turned (±0.3 rad/s),
    and each sweep samples 85 % of the surfaces with fresh noise."""
    rng = np.random.default_rng([seed, index, 1])
    speed, yaw_rate = float(rng.uniform(0.0, 12.0)), float(rng.uniform(-0.3, 0.3))
    owner = np.full(len(points), -1)
    for j, inst in enumerate(instances):
        owner[_inside(points, inst["bbox_3d"]) & (owner < 0)] = j
    vel = np.array([inst["velocity"] for inst in instances], dtype=np.float64).reshape(-1, 2)
    out = []
    for k in range(1, num_sweeps + 1):
        lag = k * SWEEP_PERIOD_S + float(rng.uniform(-0.002, 0.002))
        key_xyz = points[:, :3].astype(np.float64).copy()
        moving = owner >= 0
        key_xyz[moving, :2] -= vel[owner[moving]] * lag
        keep = rng.random(len(points)) < 0.85
        key_xyz = key_xyz[keep] + rng.normal(0.0, 0.01, (int(keep.sum()), 3))
        yaw = -yaw_rate * lag  # the sweep sensor's heading in the key frame
        trans = np.array(
            [-speed * lag * math.cos(yaw / 2), -speed * lag * math.sin(yaw / 2), float(rng.normal(0.0, 0.01))]
        )
        rot = _rot_z(yaw)
        sensor_xyz = (key_xyz - trans) @ rot  # p_sweep = Rᵀ (p_key − t), row-vector form
        pts = np.column_stack([sensor_xyz, points[keep, 3:]]).astype(np.float32)
        out.append({"points": pts, "sensor2lidar": _pose(rot, trans), "time_lag": lag})
    return out


def frame_with_sweeps(seed: int, index: int, num_sweeps: int = NUM_SWEEPS, **frame_kwargs: Any) -> dict[str, Any]:
    """One frame as an info entry plus its point arrays: ``entry`` (the data_list dict,
    paths filled in by ``generate_dataset``), ``points`` (key frame) and ``sweeps``."""
    points, instances = generate_frame(seed, index, **frame_kwargs)
    sweeps = generate_sweeps(seed, index, points, instances, num_sweeps)
    timestamp = FRAME_TIMESTAMP_S + 0.1 * index
    ego2global = _pose(_rot_z(0.01 * index), np.array([100.0 + index, 50.0, 0.0]))
    token = f"synthetic-s{seed}-{index:05d}"
    entry = {
        "sample_idx": index,
        "token": token,
        "timestamp": timestamp,
        "ego2global": ego2global.tolist(),
        "lidar_points": {
            "lidar_path": f"samples/LIDAR_TOP/{token}.bin",
            "num_pts_feats": NUM_PTS_FEATS,
            "lidar2ego": np.eye(4).tolist(),
        },
        "lidar_sweeps": [
            {
                "lidar_points": {
                    "lidar_path": f"sweeps/LIDAR_TOP/{token}_{k}.bin",
                    "num_pts_feats": NUM_PTS_FEATS,
                    "lidar2ego": np.eye(4).tolist(),
                    "lidar2sensor": np.linalg.inv(sw["sensor2lidar"]).astype(np.float32).tolist(),
                },
                "timestamp": timestamp - sw["time_lag"],
                "sample_data_token": f"{token}-sweep{k}",
                "ego2global": (ego2global @ sw["sensor2lidar"]).tolist(),
            }
            for k, sw in enumerate(sweeps, start=1)
        ],
        "instances": instances,
    }
    return {"entry": entry, "points": points, "sweeps": [sw["points"] for sw in sweeps]}


def frame_points(frame: dict[str, Any], loading: PointLoading) -> np.ndarray:
    """The model's input points for a ``frame_with_sweeps`` frame, built in memory exactly
    as the data loader builds them from the files (for training and export examples)."""
    width = max(loading.max_load_dim, NUM_PTS_FEATS)

    def padded(a: np.ndarray) -> np.ndarray:  # a model config loading more than our 5 columns gets zeros
        return a if a.shape[1] >= width else np.pad(a, ((0, 0), (0, width - a.shape[1])))

    entry = frame["entry"]
    sweeps = None
    if loading.sweeps is not None:
        sweeps = [
            SweepPoints(
                padded(frame["sweeps"][j])[:, : loading.sweeps.load_dim],
                entry["lidar_sweeps"][j],
                f"{entry['token']} sweep {j}",
            )
            for j in choose_sweeps(len(frame["sweeps"]), loading.sweeps)
        ]
    key = padded(frame["points"])[:, : loading.load_dim or NUM_PTS_FEATS]
    return merge_points(key, loading, entry["timestamp"], sweeps, entry["token"])


def generate_dataset(root: str | Path, num_frames: int, seed: int, **frame_kwargs: Any) -> Path:
    """Write ``num_frames`` frames (+ sweeps) and the info file under ``root``; return the info file path."""
    root = Path(root)
    for sub in ("samples", "sweeps"):
        (root / sub / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    data_list = []
    for i in range(num_frames):
        frame = frame_with_sweeps(seed, i, **frame_kwargs)
        entry = frame["entry"]
        frame["points"].tofile(root / entry["lidar_points"]["lidar_path"])
        for sw, pts in zip(entry["lidar_sweeps"], frame["sweeps"]):
            pts.tofile(root / sw["lidar_points"]["lidar_path"])
        data_list.append(entry)
    info = {
        "metainfo": {
            "classes": list(CLASSES),
            "categories": {c: i for i, c in enumerate(CLASSES)},
            "dataset": "modeldeploy-synthetic-t4",
            "version": FORMAT_VERSION,
            "info_version": "1.1",
        },
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
