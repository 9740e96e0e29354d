"""Loader validation (DataError naming the file), label determinism, and the fused input."""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from modeldeploy.errors import DataError
from modeldeploy.projects.calibration.data_loader import CalibrationDataLoader
from modeldeploy.projects.calibration.fusion import draw_miscalibration, fuse
from modeldeploy.projects.calibration.settings import CalibrationDataSettings, MiscalibrationSettings


@pytest.fixture()
def dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A private, corruptible copy of the 4-sample dataset; returns its info file."""
    dst = tmp_path / "ds"
    shutil.copytree(tiny_dataset.parent, dst)
    return dst / tiny_dataset.name


def _load(info: Path, index: int = 0) -> dict:
    return CalibrationDataLoader(info).load_sample(index)


def test_sample_contents(dataset: Path) -> None:
    loader = CalibrationDataLoader(dataset)
    assert len(loader) == 4
    s = loader.load_sample(2)
    assert s["image"].shape == (96, 160, 3) and s["image"].dtype == np.uint8
    assert s["points"].ndim == 2 and s["points"].shape[1] == 4 and s["points"].dtype == np.float32
    assert s["cam2img"].shape == (3, 3) and s["lidar2cam"].shape == (4, 4)
    assert s["gt_label"] in (0, 1) and s["sample_idx"] == 2
    assert np.allclose(s["lidar2cam"], s["lidar2cam_true"]) == (s["gt_label"] == 1)


def test_missing_image_names_the_file(dataset: Path) -> None:
    (dataset.parent / "images" / "000000.png").unlink()
    with pytest.raises(DataError, match=r"image .*000000\.png does not exist"):
        _load(dataset)


@pytest.mark.parametrize("bad", ["gray", "bgra"])
def test_wrong_channel_count_is_a_data_error(dataset: Path, bad: str) -> None:
    path = dataset.parent / "images" / "000001.png"
    img = cv2.imread(str(path))
    cv2.imwrite(
        str(path), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if bad == "gray" else cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    )
    with pytest.raises(DataError, match=r"000001\.png has (1|4) channel\(s\).*expected 3-channel"):
        _load(dataset, 1)


def test_image_size_must_match_calibration(dataset: Path) -> None:
    path = dataset.parent / "images" / "000000.png"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (80, 48)))
    with pytest.raises(DataError, match="is 80x48 but its calibration says 160x96"):
        _load(dataset)


def test_points_not_n_by_4_is_a_data_error(dataset: Path) -> None:
    np.arange(7, dtype=np.float32).tofile(dataset.parent / "lidar" / "000000.bin")
    with pytest.raises(DataError, match=r"000000\.bin holds 7 float32 values, not an N x 4"):
        _load(dataset)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: "{not json", "is not valid JSON"),
        (lambda c: json.dumps({k: v for k, v in c.items() if k != "lidar2cam"}), "lacks \\['lidar2cam'\\]"),
        (lambda c: json.dumps(dict(c, cam2img=[[1, 0], [0, 1]])), "'cam2img' must be a finite 3x3"),
        (lambda c: json.dumps(dict(c, lidar2cam=(2 * np.eye(4)).tolist())), "not a rigid transform"),
        (lambda c: json.dumps(dict(c, distortion_coefficients=[0.1, 0.2, 0.3])), "distortion_coefficients must have"),
        (lambda c: json.dumps(dict(c, height="96")), "height/width must be positive ints"),
    ],
)
def test_malformed_calibration_is_a_data_error(dataset: Path, mutate, needle: str) -> None:
    path = dataset.parent / "calib" / "000000.json"
    path.write_text(mutate(json.loads(path.read_text())))
    with pytest.raises(DataError, match=needle) as ei:
        _load(dataset)
    assert "000000.json" in str(ei.value)


def test_info_file_problems(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        CalibrationDataLoader(tmp_path / "nope.pkl")
    (tmp_path / "empty.pkl").write_bytes(pickle.dumps({"metainfo": {}, "data_list": []}))
    with pytest.raises(DataError, match="lists no samples"):
        CalibrationDataLoader(tmp_path / "empty.pkl")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"data_list": [{"x": Path("/etc")}]}))  # a non-data global
    with pytest.raises(DataError, match="not allowed in an info file"):
        CalibrationDataLoader(tmp_path / "evil.pkl")


def test_awml_nested_info_entries_are_read(dataset: Path, tmp_path: Path) -> None:
    root = dataset.parent
    flat = pickle.loads(dataset.read_bytes())["data_list"][0]
    calib = json.loads((root / flat["calib_path"]).read_text())
    entry = {
        "sample_idx": 0,
        "image": {
            "img_path": flat["img_path"],
            "cam2img": np.asarray(calib["cam2img"]),
            "lidar2cam": np.asarray(calib["lidar2cam"]),
            "distortion_coefficients": np.zeros(5),
        },
        "lidar_points": {"lidar_path": flat["lidar_path"], "num_pts_feats": 4},
    }
    info = tmp_path / "t4dataset_infos_test.pkl"
    info.write_bytes(pickle.dumps({"metainfo": {"version": "t4"}, "data_list": [entry]}))
    nested = CalibrationDataLoader(info, data_root=root).load_sample(0)
    ref = _load(dataset)
    assert np.array_equal(nested["points"], ref["points"]) and np.allclose(nested["lidar2cam"], ref["lidar2cam"])


def test_labels_and_perturbations_are_deterministic_per_index(dataset: Path) -> None:
    a = [CalibrationDataLoader(dataset).load_sample(i) for i in range(4)]
    b = [CalibrationDataLoader(dataset).load_sample(i) for i in reversed(range(4))][::-1]  # other order, other instance
    for x, y in zip(a, b):
        assert x["gt_label"] == y["gt_label"] and np.array_equal(x["lidar2cam"], y["lidar2cam"])
    labels = [draw_miscalibration(i, MiscalibrationSettings()).label for i in range(400)]
    assert 0.4 < np.mean(labels) < 0.6  # probability 0.5
    assert labels != [draw_miscalibration(i, MiscalibrationSettings(), epoch=1).label for i in range(400)]
    assert labels != [draw_miscalibration(i, MiscalibrationSettings(seed=1)).label for i in range(400)]


def test_perturbation_magnitudes_respect_the_settings() -> None:
    s = MiscalibrationSettings(
        probability=1.0, min_rotation_deg=2.0, max_rotation_deg=4.0, min_translation_m=0.1, max_translation_m=0.3
    )
    for i in range(50):
        m = draw_miscalibration(i, s)
        assert m.label == 0
        r = m.delta[:3, :3]
        angle = math.degrees(math.acos(np.clip((np.trace(r) - 1) / 2, -1, 1)))
        assert 2.0 - 1e-6 <= angle <= 4.0 + 1e-6 and abs(angle - m.rotation_deg) < 1e-6
        assert 0.1 - 1e-9 <= np.linalg.norm(m.delta[:3, 3]) <= 0.3 + 1e-9
    assert draw_miscalibration(0, MiscalibrationSettings(probability=0.0)).label == 1


def test_fuse_projects_splats_and_keeps_the_nearest_point() -> None:
    settings = CalibrationDataSettings()
    image = np.full((10, 12, 3), 51, np.uint8)
    k = np.array([[10.0, 0, 6.0], [0, 10.0, 5.0], [0, 0, 1]])
    # camera frame == lidar frame; a far (z=20) and a near (z=10) point on the same ray, one far point elsewhere
    pts = np.array([[0, 0, 20, 200], [0, 0, 10, 100], [3.0, 2.0, 10, 50], [0, 0, -5, 9]], np.float32)
    x = fuse(image, pts, k, np.eye(4), settings)[0]
    assert x.shape == (5, 10, 12)
    assert torch.allclose(x[:3], torch.full((3, 10, 12), 0.2))
    depth, inten = x[3] * 255, x[4] * 255
    assert torch.allclose(depth[4:7, 5:8], torch.full((3, 3), 255 * 10 / 128))  # 3x3 patch around (u=6, v=5)
    assert torch.allclose(inten[4:7, 5:8], torch.full((3, 3), 100.0))  # nearest point wins
    assert torch.isclose(inten[7, 9], torch.tensor(50.0))  # (u=9, v=7)
    assert int((inten > 0).sum()) == 18  # two full patches; behind-camera point dropped


def test_fuse_is_identical_across_calls_and_orderings(dataset: Path) -> None:
    s = _load(dataset, 3)
    a = fuse(s["image"], s["points"], s["cam2img"], s["lidar2cam"], CalibrationDataSettings())
    perm = np.random.default_rng(0).permutation(len(s["points"]))
    b = fuse(s["image"], s["points"][perm], s["cam2img"], s["lidar2cam"], CalibrationDataSettings())
    nz_depth = (a[0, 3] > 0).float().mean()
    assert 0.2 < nz_depth < 0.95
    # same depth everywhere; intensity may differ only where two points tie on depth exactly (none here)
    assert torch.equal(a, b)


def test_bundled_sample_is_used_when_no_dataset_is_configured(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    settings = CalibrationDataSettings.model_validate({"bundled_sample": {"num_samples": 2, "seed": 0}})
    loader = CalibrationDataLoader.from_runtime_io(None, None, settings)
    assert len(loader) == 2
    assert loader.info_file == tmp_path / "datasets" / "calibration-synthetic-v1-s0-n2" / "calibration_infos.pkl"
    with pytest.raises(DataError, match="is a URI"):
        CalibrationDataLoader.from_runtime_io("s3://bucket/infos.pkl", None, settings)
