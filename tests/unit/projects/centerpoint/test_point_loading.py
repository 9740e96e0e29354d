"""CenterPoint point features as the model config's loading pipeline builds them (AWML / mmdet3d v1.x).

The multi-sweep fixture is a hand-made T4-layout info file with two sweeps whose
transforms, timestamps and points are chosen so every expected value below can be
checked by hand (see the comments next to them).
"""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modeldeploy.core.model_config import to_plain
from modeldeploy.errors import ConfigError, DataError
from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
from modeldeploy.projects.centerpoint.point_loading import PointLoading, parse_point_loading
from modeldeploy.projects.centerpoint.settings import parse_settings

CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")
PCR = [-50.0, -50.0, -5.0, 50.0, 50.0, 5.0]
KEY_TS = 1700000000.5  # seconds; the lags below (0.25 s, 0.5 s) are exact in float64 and float32

# key frame: x, y, z, intensity, ring
KEY = [
    [10.0, 0.0, -1.0, 50.0, 7.0],
    [0.5, 0.5, 0.0, 20.0, 3.0],  # close to the sensor: remove_close applies to sweeps only, so it stays
    [-5.0, 4.0, 1.0, 80.0, 12.0],
    [60.0, 0.0, 0.0, 1.0, 1.0],
]  # outside point_cloud_range: PointsRangeFilter drops it
# sweep A (nearest, 0.25 s earlier): sweep→key rotation Rz(+90°), translation t = (2, 0, 0).
# lidar2sensor as AWML's converter writes it = [Rᵀ | -Rᵀt] = [[0,1,0,0], [-1,0,0,2], [0,0,1,0]].
SWEEP_A = [
    [1.0, 0.0, 0.0, 30.0, 5.0],
    [3.0, 4.0, -1.0, 40.0, 6.0],
    [0.2, -0.9, 0.3, 10.0, 1.0],
]  # |x| < 1 and |y| < 1: removed (remove_close)
L_A = [[0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
# sweep B (0.5 s earlier): no rotation, translation t = (-1.5, 0.5, 0.25) → lidar2sensor [I | -t].
SWEEP_B = [
    [6.0, -2.0, 0.5, 60.0, 9.0],
    [0.9, 0.95, 0.0, 5.0, 2.0],  # removed (close)
    [1.0, 0.5, 0.0, 7.0, 2.0],
]  # |x| = 1 is not < 1: kept
L_B = [[1.0, 0.0, 0.0, 1.5], [0.0, 1.0, 0.0, -0.5], [0.0, 0.0, 1.0, -0.25], [0.0, 0.0, 0.0, 1.0]]

# mmdet3d v1.x: xyz_key = xyz @ L[:3, :3] - L[:3, 3]
#   A: (1, 0, 0) @ Rᵀ = (0, 1, 0); - (0, 2, 0) → (0, -1, 0)      (3, 4, -1) @ Rᵀ = (-4, 3, -1) → (-4, 1, -1)
#   B: p - (1.5, -0.5, -0.25) = p + t: (6, -2, 0.5) → (4.5, -1.5, 0.75); (1, 0.5, 0) → (-0.5, 1.0, 0.25)
EXPECTED_XYZ_LAG = [
    [10.0, 0.0, -1.0, 0.0],
    [0.5, 0.5, 0.0, 0.0],
    [-5.0, 4.0, 1.0, 0.0],  # key frame: lag 0
    [0.0, -1.0, 0.0, 0.25],
    [-4.0, 1.0, -1.0, 0.25],  # sweep A
    [4.5, -1.5, 0.75, 0.5],
    [-0.5, 1.0, 0.25, 0.5],  # sweep B
]
EXPECTED_INTENSITY = [50.0, 20.0, 80.0, 30.0, 40.0, 60.0, 7.0]


def awml_pipeline(sweeps_num: int = 2, sweep_use_dim: Any = (0, 1, 2, 4), **sweep_kw: Any) -> list[dict[str, Any]]:
    return [
        dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=5, backend_args=None),
        dict(
            type="LoadPointsFromMultiSweeps",
            sweeps_num=sweeps_num,
            load_dim=5,
            use_dim=list(sweep_use_dim),
            pad_empty_sweeps=True,
            remove_close=True,
            backend_args=None,
            test_mode=True,
            **sweep_kw,
        ),
        dict(type="PointsRangeFilter", point_cloud_range=PCR),
        dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
    ]


def write_info(
    root: Path, *, sweeps: bool | None = True, sweep_a: dict[str, Any] | None = None, key_ts: float = KEY_TS
) -> Path:
    """A T4-layout info file: key frame + sweeps A and B (``sweeps=None``: no lidar_sweeps key)."""
    for sub in ("samples", "sweeps"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    np.asarray(KEY, dtype=np.float32).tofile(root / "samples" / "key.bin")
    np.asarray(SWEEP_A, dtype=np.float32).tofile(root / "sweeps" / "a.bin")
    np.asarray(SWEEP_B, dtype=np.float32).tofile(root / "sweeps" / "b.bin")
    entry: dict[str, Any] = {
        "sample_idx": 0,
        "token": "hand",
        "timestamp": key_ts,
        "lidar_points": {"lidar_path": "samples/key.bin", "num_pts_feats": 5, "lidar2ego": np.eye(4).tolist()},
        "instances": [
            {
                "bbox_3d": [10.0, 0.0, -1.0, 4.5, 1.9, 1.6, 0.0],
                "bbox_label_3d": 0,
                "velocity": [1.0, 0.0],
                "bbox_3d_isvalid": True,
            }
        ],
    }
    if sweeps is not None:
        entry["lidar_sweeps"] = (
            [
                sweep_a
                or {
                    "lidar_points": {"lidar_path": "sweeps/a.bin", "num_pts_feats": 5, "lidar2sensor": L_A},
                    "timestamp": KEY_TS - 0.25,
                    "sample_data_token": "a",
                },
                {
                    "lidar_points": {"lidar_path": "sweeps/b.bin", "num_pts_feats": 5, "lidar2sensor": L_B},
                    "timestamp": KEY_TS - 0.5,
                    "sample_data_token": "b",
                },
            ]
            if sweeps
            else []
        )
    info = root / "infos.pkl"
    with open(info, "wb") as f:
        pickle.dump({"metainfo": {"classes": list(CLASSES)}, "data_list": [entry]}, f)
    return info


def load(root: Path, pipeline: list[dict[str, Any]], **info_kw: Any) -> torch.Tensor:
    info = write_info(root, **info_kw)
    return CenterPointDataLoader(info, root, CLASSES, parse_point_loading({"test_pipeline": pipeline})).load_sample(0)[
        "points"
    ]


def test_multi_sweep_sample_has_hand_computed_time_lag_and_sweep_transform(tmp_path: Path) -> None:
    pts = load(tmp_path, awml_pipeline())
    assert pts.dtype == torch.float32
    torch.testing.assert_close(pts, torch.tensor(EXPECTED_XYZ_LAG), rtol=0, atol=1e-6)
    # the mmdet3d v1.x arithmetic (R·p + Rᵀt) differs from the exact R·p + t when R ≠ I, e.g.
    # sweep A's (1, 0, 0) lands at (0, -1, 0), not (2, 1, 0): the runtime reproduces training.
    assert not torch.allclose(pts[3, :3], torch.tensor([2.0, 1.0, 0.0]))


def test_model_config_use_dim_is_honoured(tmp_path: Path) -> None:
    lag = load(tmp_path / "lag", awml_pipeline(sweep_use_dim=(0, 1, 2, 4)))
    intensity = load(tmp_path / "int", awml_pipeline(sweep_use_dim=(0, 1, 2, 3)))
    torch.testing.assert_close(lag[:, 3], torch.tensor([row[3] for row in EXPECTED_XYZ_LAG]), rtol=0, atol=1e-6)
    torch.testing.assert_close(intensity[:, 3], torch.tensor(EXPECTED_INTENSITY))
    torch.testing.assert_close(intensity[:, :3], lag[:, :3])
    five = load(tmp_path / "five", awml_pipeline(sweep_use_dim=(0, 1, 2, 3, 4)))  # AWML j6gen2: intensity + time lag
    assert five.shape == (7, 5)
    torch.testing.assert_close(five[:, 3:], torch.stack([intensity[:, 3], lag[:, 3]], 1))
    key_only = load(
        tmp_path / "key", [dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=[0, 1, 2, 3])]
    )
    torch.testing.assert_close(key_only, torch.tensor(KEY)[:, :4])  # no sweep transform, no range filter asked for
    normed = load(
        tmp_path / "norm",
        [dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=4, norm_intensity=True)],
    )
    torch.testing.assert_close(normed[:, 3], torch.tanh(torch.tensor(KEY)[:, 3]))


def test_sweeps_num_takes_the_nearest_sweeps_first(tmp_path: Path) -> None:
    pts = load(tmp_path, awml_pipeline(sweeps_num=1))
    torch.testing.assert_close(pts, torch.tensor(EXPECTED_XYZ_LAG[:5]), rtol=0, atol=1e-6)


def test_missing_lidar_sweeps_pads_with_key_frame_copies_and_empty_list_adds_none(tmp_path: Path) -> None:
    padded = load(tmp_path / "pad", awml_pipeline(sweeps_num=2), sweeps=None)
    key = torch.tensor(EXPECTED_XYZ_LAG[:3])
    far = key[[0, 2]]  # the copies go through remove_close: (0.5, 0.5) is dropped from them
    torch.testing.assert_close(padded, torch.cat([key, far, far]))
    torch.testing.assert_close(load(tmp_path / "none", awml_pipeline(), sweeps=False), key)


def test_v0_sensor2lidar_keys_use_the_exact_transform(tmp_path: Path) -> None:
    rot = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # Rz(+90°)
    sweep_a = {
        "lidar_points": {"lidar_path": "sweeps/a.bin"},
        "sensor2lidar_rotation": rot,
        "sensor2lidar_translation": [2.0, 0.0, 0.0],
        "timestamp": KEY_TS - 0.25,
    }
    pts = load(tmp_path, awml_pipeline(), sweep_a=sweep_a)
    # p @ Rᵀ + t: (1, 0, 0) → (0, 1, 0) + (2, 0, 0); (3, 4, -1) → (-4, 3, -1) + (2, 0, 0)
    torch.testing.assert_close(
        pts[3:5], torch.tensor([[2.0, 1.0, 0.0, 0.25], [-2.0, 3.0, -1.0, 0.25]]), rtol=0, atol=1e-6
    )


def test_pipeline_in_test_dataloader_wins_and_wrappers_are_unwrapped() -> None:
    cfg = {
        "test_pipeline": [dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=[0, 1, 2, 3])],
        "test_dataloader": dict(
            batch_size=2, dataset=dict(type="CBGSDataset", dataset=dict(type="T4Dataset", pipeline=awml_pipeline()))
        ),
    }
    spec = parse_point_loading(cfg)
    assert (
        spec.source == "test_dataloader.dataset.dataset.pipeline"
        and spec.out_dims == (0, 1, 2, 4)
        and spec.sweeps.sweeps_num == 2
    )
    assert parse_point_loading({"test_pipeline": cfg["test_pipeline"]}).sweeps is None


def test_multiscaleflipaug_without_augmentation_is_unwrapped() -> None:
    inner = awml_pipeline()[1:3] + [
        dict(type="GlobalRotScaleTrans", rot_range=[0, 0], scale_ratio_range=[1.0, 1.0], translation_std=[0, 0, 0]),
        dict(type="RandomFlip3D"),
    ]
    cfg = {
        "test_pipeline": [
            awml_pipeline()[0],
            dict(type="MultiScaleFlipAug3D", img_scale=(1333, 800), pts_scale_ratio=1, flip=False, transforms=inner),
        ]
    }
    spec = parse_point_loading(cfg)
    assert spec.sweeps is not None and spec.range_filter == tuple(PCR)


@pytest.mark.parametrize(
    "pipeline,match",
    [
        ([dict(type="LoadPointsFromFile", coord_type="DEPTH", load_dim=5, use_dim=5)], "coord_type"),
        (
            [dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=5, shift_height=True)],
            "shift_height",
        ),
        ([dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=[0, 1, 2, 4])], "use_dim"),
        (
            [dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=[0, 1, 2, 3]), awml_pipeline()[1]],
            "must agree",
        ),
        ([awml_pipeline()[1]], "before LoadPointsFromFile"),
        (
            [*awml_pipeline(), dict(type="GlobalRotScaleTrans", rot_range=[-0.3, 0.3])],
            "'GlobalRotScaleTrans' is not reproduced",
        ),
        ([awml_pipeline()[0], dict(type="MultiScaleFlipAug3D", flip=True, transforms=[])], "flip"),
        ([dict(type="PointsRangeFilter", point_cloud_range=PCR)], "before LoadPointsFromFile"),
        ([dict(type="Pack3DDetInputs", keys=["points"])], "no LoadPointsFromFile"),
        (["LoadPointsFromFile"], "not a dict"),
    ],
)
def test_unsupported_pipeline_settings_are_one_config_error(pipeline: list[Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        parse_point_loading({"test_pipeline": pipeline})
    assert "\n" not in str(err.value)


def test_feature_count_must_match_in_channels(awml_cfg) -> None:
    cfg = copy.deepcopy(to_plain(awml_cfg.to_dict()))
    cfg["test_pipeline"][1]["use_dim"] = [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match=r"gives 5 point features .*in_channels=4"):
        parse_settings(cfg)
    cfg["test_pipeline"][1]["use_dim"] = [0, 1, 2, 3]
    assert parse_settings(cfg).point_loading.out_dims == (0, 1, 2, 3)


def test_builtin_configs_use_awml_feature_layout(tiny_cfg, awml_cfg) -> None:
    for cfg in (tiny_cfg, awml_cfg):
        spec = parse_settings(cfg).point_loading
        assert spec.source == "test_pipeline" and spec.use_dim == (0, 1, 2, 3, 4) and spec.out_dims == (0, 1, 2, 4)
        assert (
            spec.sweeps.sweeps_num,
            spec.sweeps.load_dim,
            spec.sweeps.remove_close,
            spec.sweeps.pad_empty_sweeps,
        ) == (1, 5, True, True)


def test_config_without_pipeline_falls_back_to_awml_defaults_with_a_log_line(
    awml_cfg, caplog: pytest.LogCaptureFixture
) -> None:
    from modeldeploy.projects.centerpoint.project import log_point_loading

    cfg = copy.deepcopy(to_plain(awml_cfg.to_dict()))
    del cfg["test_pipeline"]
    s = parse_settings(cfg)
    assert s.point_loading.source.startswith("AWML") and s.point_loading.out_dims == (0, 1, 2, 4)
    assert s.point_loading.range_filter == tuple(cfg["point_cloud_range"])
    with caplog.at_level(logging.INFO, logger="modeldeploy.projects.centerpoint.project"):
        log_point_loading(s)
    assert any(r.levelno == logging.WARNING and "AWML's T4 defaults" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "sweep_a,key_ts,match",
    [
        (
            {"lidar_points": {"lidar_path": "sweeps/a.bin"}, "timestamp": KEY_TS - 0.25},
            KEY_TS,
            "no lidar_points.lidar2sensor",
        ),
        (
            {
                "lidar_points": {"lidar_path": "sweeps/a.bin", "lidar2sensor": [[1, 0], [0, 1]]},
                "timestamp": KEY_TS - 0.25,
            },
            KEY_TS,
            "expected 4x4",
        ),
        ({"lidar_points": {"lidar_path": "sweeps/a.bin", "lidar2sensor": L_A}}, KEY_TS, "no numeric 'timestamp'"),
        (
            {"lidar_points": {"lidar_path": "sweeps/a.bin", "lidar2sensor": L_A}, "timestamp": (KEY_TS - 0.25) * 1e6},
            KEY_TS * 1e6,
            "seconds",
        ),
        (
            {"lidar_points": {"lidar_path": "sweeps/missing.bin", "lidar2sensor": L_A}, "timestamp": KEY_TS - 0.25},
            KEY_TS,
            "does not exist",
        ),
        (
            {
                "lidar_points": {"lidar_path": "sweeps/a.bin", "lidar2sensor": L_A, "num_pts_feats": 4},
                "timestamp": KEY_TS - 0.25,
            },
            KEY_TS,
            "num_pts_feats=4",
        ),
    ],
)
def test_bad_sweep_entries_are_data_errors(tmp_path: Path, sweep_a: dict[str, Any], key_ts: float, match: str) -> None:
    info = write_info(tmp_path, sweep_a=sweep_a, key_ts=key_ts)
    dl = CenterPointDataLoader(info, tmp_path, CLASSES, parse_point_loading({"test_pipeline": awml_pipeline()}))
    with pytest.raises(DataError, match=match):
        dl.load_sample(0)


def test_synthetic_frames_carry_sweeps_that_line_up_with_the_key_frame(synthetic_root: Path, awml_cfg) -> None:
    """The bundled sample's format (what CI runs): static surfaces of the merged sweep land
    on the key frame's within a few cm, and sweep points carry the ~0.1 s lag."""
    from scipy.spatial import cKDTree

    from modeldeploy.projects.centerpoint.synthetic import INFO_FILE_NAME, NUM_SWEEPS

    spec: PointLoading = parse_settings(awml_cfg).point_loading
    dl = CenterPointDataLoader(synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, spec)
    assert len(dl.data_list[0]["lidar_sweeps"]) == NUM_SWEEPS
    pts = dl.load_sample(0)["points"].numpy()
    key, sweep = pts[pts[:, 3] == 0], pts[pts[:, 3] > 0]
    assert len(sweep) > 0.5 * len(key)
    assert np.all(np.abs(sweep[:, 3] - 0.1) < 0.003)
    ground = np.abs(sweep[:, 2] + 1.8) < 0.1
    dist, _ = cKDTree(key[:, :3]).query(sweep[ground, :3])
    assert np.median(dist) < 0.1  # a ~1 m ego move with a wrong transform would put it metres off


def test_classes_come_from_the_model_config(awml_cfg) -> None:
    cfg = copy.deepcopy(to_plain(awml_cfg.to_dict()))
    assert parse_settings(cfg).class_names == ("car", "truck", "bus", "bicycle", "pedestrian")  # AWML's T4 list
    cfg["class_names"] = ["car", "truck", "bus", "pedestrian", "bicycle"]
    with pytest.raises(ConfigError, match="differ from the head's task classes"):
        parse_settings(cfg)
    del cfg["model"]["pts_bbox_head"]["tasks"][0]["class_names"]  # num_class only: names from class_names
    assert parse_settings(cfg).class_names == ("car", "truck", "bus", "pedestrian", "bicycle")
