"""Synthetic generator: deterministic, in the documented format, geometrically consistent."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np

from modeldeploy.projects.calibration import synthetic
from modeldeploy.projects.calibration.synthetic import bundled_dataset, camera_model, cast, make_sample, random_scene


def test_same_seed_same_bytes_other_seed_differs(tmp_path) -> None:
    a = synthetic.generate_dataset(tmp_path / "a", 2, seed=3)
    b = synthetic.generate_dataset(tmp_path / "b", 2, seed=3)
    c = synthetic.generate_dataset(tmp_path / "c", 2, seed=4)
    for rel in ("images/000001.png", "lidar/000001.bin", "calib/000001.json", "calibration_infos.pkl"):
        assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes(), rel
    assert (a.parent / "lidar/000001.bin").read_bytes() != (c.parent / "lidar/000001.bin").read_bytes()


def test_sample_depends_only_on_seed_and_index() -> None:
    img_a, pts_a, cal_a = make_sample(5, 3, 96, 160)
    img_b, pts_b, cal_b = make_sample(5, 3, 96, 160)
    assert np.array_equal(img_a, img_b) and np.array_equal(pts_a, pts_b) and cal_a == cal_b
    assert not np.array_equal(make_sample(5, 4, 96, 160)[1][:100], pts_a[:100])


def test_cli_writes_the_documented_layout(tmp_path) -> None:
    assert (
        synthetic.main([str(tmp_path / "ds"), "--num-samples", "2", "--seed", "1", "--height", "48", "--width", "80"])
        == 0
    )
    info = pickle.loads((tmp_path / "ds" / "calibration_infos.pkl").read_bytes())
    assert info["metainfo"]["classes"] == ["miscalibrated", "calibrated"]
    e = info["data_list"][1]
    assert {"sample_idx", "img_path", "lidar_path", "calib_path", "num_pts_feats"} <= set(e)
    img = cv2.imread(str(tmp_path / "ds" / e["img_path"]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (48, 80, 3) and img.dtype == np.uint8
    pts = np.fromfile(tmp_path / "ds" / e["lidar_path"], dtype=np.float32).reshape(-1, 4)
    assert len(pts) > 1000 and np.isfinite(pts).all() and pts[:, 3].min() >= 0 and pts[:, 3].max() <= 255
    calib = json.loads((tmp_path / "ds" / e["calib_path"]).read_text())
    assert np.asarray(calib["cam2img"]).shape == (3, 3) and np.asarray(calib["lidar2cam"]).shape == (4, 4)
    assert (calib["height"], calib["width"]) == (48, 80)


def test_lidar_and_camera_see_the_same_geometry() -> None:
    """Project the LiDAR points with the stored extrinsic and compare their camera-frame
    depth with the camera's own ray-cast depth at that pixel: they agree except at the few
    occlusion boundaries the sensors' parallax creates."""
    seed, idx, h, w = 2, 0, 96, 160
    _, points, calib = make_sample(seed, idx, h, w)
    rng = np.random.default_rng(np.random.SeedSequence([seed, idx]))
    scene = random_scene(rng)
    k, cam2lidar = camera_model(rng, h, w)
    uu, vv = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(uu - k[0, 2]) / k[0, 0], (vv - k[1, 2]) / k[1, 1], np.ones_like(uu)], -1).reshape(-1, 3)
    t, _, _, hit = cast(scene, cam2lidar[:3, 3], d_cam @ cam2lidar[:3, :3].T)
    cam_depth = np.where(hit, t, np.inf).reshape(h, w)  # d_cam has z = 1, so t is the camera z

    t_l2c = np.asarray(calib["lidar2cam"])
    pc = points[:, :3] @ t_l2c[:3, :3].T + t_l2c[:3, 3]
    pc = pc[pc[:, 2] > 0.5]
    uv = pc @ np.asarray(calib["cam2img"]).T
    u, v = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z = u[inside], v[inside], pc[inside, 2]
    assert len(z) > 2000
    rel = np.abs(cam_depth[v.astype(int), u.astype(int)] - z) / z
    assert np.median(rel) < 0.01
    assert np.mean(rel < 0.05) > 0.9


def test_bundled_dataset_is_generated_once_atomically(tmp_path) -> None:
    info = bundled_dataset(3, 0, root=tmp_path)
    assert info.parent.name == "calibration-synthetic-v1-s0-n3"
    stamp = info.stat().st_mtime_ns
    assert bundled_dataset(3, 0, root=tmp_path) == info and info.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == [
        "calibration-synthetic-v1-s0-n3"
    ]  # no temp dirs left
