"""Info-file / point-file reading and bad-input handling (DataError with a clear line)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeploy.errors import DataError
from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
from modeldeploy.projects.centerpoint.pipeline import check_points
from modeldeploy.projects.centerpoint.synthetic import CLASSES, INFO_FILE_NAME, bundled_dataset, generate_dataset

USE = (0, 1, 2, 3)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_info(root: Path, mutate) -> Path:
    info_path = root / INFO_FILE_NAME
    with open(info_path, "rb") as f:
        info = pickle.load(f)
    info = mutate(info)
    with open(info_path, "wb") as f:
        pickle.dump(info, f)
    return info_path


def test_loader_reads_mmdet3d_v1_info_and_points(synthetic_root: Path) -> None:
    dl = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, USE)
    assert len(dl) == 3
    s = dl.load_sample(0)
    assert s["points"].dtype == torch.float32 and s["points"].shape[1] == 4 and s["points"].shape[0] > 1000
    assert s["gt_bboxes_3d"].shape[1] == 7 and len(s["gt_labels_3d"]) == len(s["gt_bboxes_3d"]) > 0
    with open(synthetic_root / INFO_FILE_NAME, "rb") as f:
        info = pickle.load(f)
    inst = info["data_list"][0]["instances"][0]
    assert set(inst) >= {"bbox_3d", "bbox_label_3d", "velocity"} and len(inst["bbox_3d"]) == 7
    assert info["data_list"][0]["lidar_points"]["num_pts_feats"] == 5


def test_loader_maps_labels_by_class_name(synthetic_root: Path) -> None:
    dl_full = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, USE)
    dl_two = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, ("pedestrian", "car"), USE)
    full, two = dl_full.load_sample(1), dl_two.load_sample(1)
    names_full = sorted(CLASSES[i] for i in full["gt_labels_3d"] if CLASSES[i] in ("pedestrian", "car"))
    assert sorted(("pedestrian", "car")[i] for i in two["gt_labels_3d"]) == names_full


def test_synthetic_generation_is_deterministic(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", 2, seed=5)
    b = generate_dataset(tmp_path / "b", 2, seed=5)
    assert a.read_bytes() == b.read_bytes()
    for f in (tmp_path / "a" / "samples" / "LIDAR_TOP").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / "samples" / "LIDAR_TOP" / f.name).read_bytes()


def test_boxes_do_not_overlap_and_have_points(synthetic_root: Path) -> None:
    dl = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, USE)
    for i in range(len(dl)):
        b = dl.load_sample(i)["gt_bboxes_3d"]
        r = 0.5 * np.hypot(b[:, 3], b[:, 4])
        d = np.hypot(b[:, None, 0] - b[None, :, 0], b[:, None, 1] - b[None, :, 1])
        np.fill_diagonal(d, np.inf)
        assert (d > r[:, None] + r[None, :]).all()


def test_bundled_dataset_is_generated_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    first = bundled_dataset(num_frames=1, seed=9)
    mtime = first.stat().st_mtime_ns
    assert bundled_dataset(num_frames=1, seed=9) == first and first.stat().st_mtime_ns == mtime
    assert first.is_relative_to(tmp_path / "datasets")
    dl = CenterPointDataLoader.from_runtime_io(None, None, CLASSES, USE)
    assert dl.info_path.is_relative_to(tmp_path / "datasets")


@pytest.mark.parametrize("shape", [(100, 3), (100, 5), (400,), (2, 100, 4)])
def test_points_not_n_by_in_channels_are_a_data_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=r"N×4"):
        check_points(torch.zeros(shape), 4)


def test_integer_points_are_a_data_error() -> None:
    with pytest.raises(DataError, match="dtype"):
        check_points(torch.zeros((10, 4), dtype=torch.int32), 4)


def test_missing_bin_is_a_data_error(synthetic_root: Path, tmp_path: Path) -> None:
    root = _copy(synthetic_root, tmp_path / "d")
    bins = sorted((root / "samples" / "LIDAR_TOP").iterdir())
    bins[0].unlink()
    dl = CenterPointDataLoader(root / INFO_FILE_NAME, root, CLASSES, USE)
    with pytest.raises(DataError, match="does not exist"):
        dl.load_sample(0)


def test_truncated_bin_and_wrong_feature_count_are_data_errors(synthetic_root: Path, tmp_path: Path) -> None:
    root = _copy(synthetic_root, tmp_path / "d")
    first = sorted((root / "samples" / "LIDAR_TOP").iterdir())[0]
    first.write_bytes(first.read_bytes()[:-6])
    dl = CenterPointDataLoader(root / INFO_FILE_NAME, root, CLASSES, USE)
    with pytest.raises(DataError, match="not a whole number of float32 points"):
        dl.load_sample(0)

    def three_feats(info):
        for e in info["data_list"]:
            e["lidar_points"]["num_pts_feats"] = 3
        return info

    _rewrite_info(root, three_feats)
    with pytest.raises(DataError, match="point columns"):
        CenterPointDataLoader(root / INFO_FILE_NAME, root, CLASSES, USE).load_sample(1)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda info: info["data_list"], "no 'data_list'"),
        (lambda info: {**info, "data_list": []}, "lists no frames"),
        (lambda info: {**info, "data_list": [{"token": "x"}]}, "lidar_points.lidar_path"),
        (lambda info: {**info, "metainfo": ["car"]}, "'metainfo'"),
    ],
)
def test_malformed_info_is_a_data_error(synthetic_root: Path, tmp_path: Path, mutate, match: str) -> None:
    root = _copy(synthetic_root, tmp_path / "d")
    info = _rewrite_info(root, mutate)
    with pytest.raises(DataError, match=match):
        CenterPointDataLoader(info, root, CLASSES, USE)


def test_bad_instance_box_is_a_data_error(synthetic_root: Path, tmp_path: Path) -> None:
    root = _copy(synthetic_root, tmp_path / "d")

    def short_box(info):
        info["data_list"][0]["instances"][0]["bbox_3d"] = [1.0, 2.0, 3.0]
        return info

    dl = CenterPointDataLoader(_rewrite_info(root, short_box), root, CLASSES, USE)
    with pytest.raises(DataError, match="7 finite numbers"):
        dl.load_sample(0)


def test_info_pickle_with_code_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"data_list": [], "x": shutil.rmtree}))
    with pytest.raises(DataError, match="not allowed"):
        CenterPointDataLoader(bad, tmp_path, CLASSES, USE)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="could not be read"):
        CenterPointDataLoader(garbage, tmp_path, CLASSES, USE)
