"""Reads T4/nuScenes-style (mmdet3d v1.x) info files and their ``.bin`` point clouds.

A sample is the model's input point cloud (torch float32 [N, in_channels]: the key frame
merged with its ``lidar_sweeps`` and reduced to the columns the model config's loading
pipeline selects, see ``point_loading.py``) plus ground truth in the info file's
convention: ``gt_bboxes_3d`` [M, 7] = (x, y, z_centre, l, w, h, yaw), ``gt_labels_3d``
[M] (index into the model's class_names) and ``gt_velocity`` [M, 2]. Instances of classes the model does not
predict, or flagged ``bbox_3d_isvalid=False`` / ``bbox_label_3d=-1``, are dropped, as
mmdet3d's loader does. Voxelization happens in the pipeline, on its device.

Info files are data: they are unpickled with an allow-list (plain containers, numpy
arrays), never with a plain ``pickle.load``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.info_file import data_list_of, load_info
from modeldeploy.errors import ConfigError, DataError
from modeldeploy.projects.centerpoint.point_loading import (
    PointLoading,
    SweepPoints,
    choose_sweeps,
    from_use_dims,
    merge_points,
)
from modeldeploy.projects.centerpoint.synthetic import BUNDLED_FRAMES, BUNDLED_SEED, bundled_dataset

BUNDLED = (BUNDLED_FRAMES, BUNDLED_SEED)  # the demo's bundled sample

_HINT = (
    "expected an mmdet3d v1.x info file {'metainfo': {...}, 'data_list': [{'lidar_points': "
    "{'lidar_path', 'num_pts_feats'}, 'timestamp', 'lidar_sweeps': [{'lidar_points': {'lidar_path', 'lidar2sensor'}, 'timestamp'}], "
    "'instances': [{'bbox_3d', 'bbox_label_3d', ...}]}]}"
)


def bundled_sample_of(model_cfg: Mapping[str, Any]) -> tuple[int, int] | None:
    """The synthetic sample is data only for a model trained on it, so a model config opts in
    with ``centerpoint_data = dict(bundled_sample=dict(num_frames=16, seed=2024))``."""
    spec = (
        (model_cfg.get("centerpoint_data") or {}).get("bundled_sample")
        if isinstance(model_cfg.get("centerpoint_data"), Mapping)
        else None
    )
    if spec is None:
        return None
    try:
        frames, seed = int(spec.get("num_frames", BUNDLED[0])), int(spec.get("seed", BUNDLED[1]))
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(
            f"model config: centerpoint_data.bundled_sample={spec!r} must be dict(num_frames=N, seed=S)",
            hint="e.g. dict(num_frames=16, seed=2024)",
        ) from None
    if frames < 1:
        raise ConfigError(
            f"model config: centerpoint_data.bundled_sample.num_frames={frames} must be >= 1", hint="e.g. num_frames=16"
        )
    return frames, seed


def read_info(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    info = load_info(
        path,
        hint=_HINT,
        missing_hint="set runtime_io.info_file / data_root, or leave data_root unset for the bundled sample",
    )
    if not isinstance(info, Mapping):
        raise DataError(f"info file {path} has no 'data_list' list", hint=_HINT)
    data_list = data_list_of(info, path, hint=_HINT, what="frames")
    for i, e in enumerate(data_list):
        lp = e.get("lidar_points") if isinstance(e, Mapping) else None
        if not isinstance(lp, Mapping) or not isinstance(lp.get("lidar_path"), str):
            raise DataError(f"info file {path}: data_list[{i}] has no lidar_points.lidar_path", hint=_HINT)
    meta = info.get("metainfo") or {}
    if not isinstance(meta, Mapping):
        raise DataError(f"info file {path}: 'metainfo' is a {type(meta).__name__}, not a dict", hint=_HINT)
    return dict(meta), [dict(e) for e in data_list]


def read_bin(path: Path, num_pts_feats: int) -> np.ndarray:
    """A float32 ``.bin`` → [N, num_pts_feats], with the checks a corrupt file needs."""
    if not path.is_file():
        raise DataError(
            f"point file {path} does not exist", hint="check data_root and the lidar_path entries in the info file"
        )
    if num_pts_feats < 3:
        raise DataError(
            f"{path}: {num_pts_feats} features per point; points need at least x, y, z",
            hint="fix lidar_points.num_pts_feats (T4: 5)",
        )
    size = path.stat().st_size
    if size % (4 * num_pts_feats):
        raise DataError(
            f"{path}: {size} bytes is not a whole number of float32 points with {num_pts_feats} features",
            hint="the file is truncated, or num_pts_feats / the model config's load_dim is wrong",
        )
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, num_pts_feats)
    if not np.isfinite(pts[:, :3]).all():
        raise DataError(
            f"{path}: point coordinates contain NaN/Inf", hint="filter invalid returns before writing the .bin"
        )
    return pts


class CenterPointDataLoader(BaseDataLoader):
    def __init__(
        self,
        info_path: str | Path,
        data_root: str | Path | None,
        class_names: Sequence[str],
        loading: PointLoading | Sequence[int],
    ) -> None:
        """``loading``: the model config's point loading (``settings.point_loading``); a plain
        column list means key frame only, with the info file's num_pts_feats."""
        self.info_path = Path(info_path)
        self.data_root = Path(data_root) if data_root else self.info_path.parent
        self.class_names = tuple(class_names)
        self.loading = loading if isinstance(loading, PointLoading) else from_use_dims(loading)
        meta, self.data_list = read_info(self.info_path)
        info_classes = meta.get("classes") or (
            sorted(meta["categories"], key=meta["categories"].get)
            if isinstance(meta.get("categories"), Mapping)
            else None
        )
        info_classes = list(info_classes) if info_classes else list(self.class_names)
        # info label index → model label index (or -1: a class the model does not predict)
        self._label_map = {
            i: (self.class_names.index(c) if c in self.class_names else -1) for i, c in enumerate(info_classes)
        }

    @classmethod
    def from_runtime_io(
        cls,
        info_file: str | None,
        data_root: str | None,
        class_names: Sequence[str],
        loading: PointLoading | Sequence[int],
        bundled: tuple[int, int] | None = BUNDLED,
    ) -> CenterPointDataLoader:
        """``data_root`` unset → the bundled synthetic sample ``bundled`` = (num_frames, seed),
        generated once into the cache; None → there is no dataset (DataError)."""
        if not data_root:
            if info_file:
                raise DataError(
                    f"runtime_io.info_file={info_file!r} is set but runtime_io.data_root is not",
                    hint="set data_root too, or neither for the bundled sample",
                )
            if bundled is None:
                raise DataError(
                    "no dataset is configured (runtime_io.data_root unset) and the model config has no centerpoint_data.bundled_sample",
                    hint="set runtime_io.data_root (and info_file) to a T4 dataset",
                )
            info = bundled_dataset(*bundled)
            return cls(info, info.parent, class_names, loading)
        root = Path(data_root)
        if not root.is_dir():
            raise DataError(
                f"runtime_io.data_root {root} is not a directory",
                hint="point it at the dataset root holding the info file and samples/",
            )
        info = Path(info_file) if info_file else root / "centerpoint_infos_val.pkl"
        return cls(info if info.is_absolute() else root / info, root, class_names, loading)

    def __len__(self) -> int:
        return len(self.data_list)

    def _gt(self, entry: Mapping[str, Any], where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, labels, vels = [], [], []
        instances = entry.get("instances", [])
        if not isinstance(instances, list):
            raise DataError(f"{where}: 'instances' must be a list", hint=_HINT)
        for j, inst in enumerate(instances):
            try:
                box = [float(v) for v in inst["bbox_3d"]]
                label = int(inst["bbox_label_3d"])
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    f"{where}: instances[{j}] lacks a numeric bbox_3d / bbox_label_3d", hint=_HINT
                ) from None
            if len(box) < 7 or not np.isfinite(box[:7]).all():
                raise DataError(
                    f"{where}: instances[{j}].bbox_3d must be 7 finite numbers (x, y, z, l, w, h, yaw), got {box}",
                    hint=_HINT,
                )
            if not inst.get("bbox_3d_isvalid", True) or label < 0:
                continue
            mapped = self._label_map.get(label, -1)
            if mapped < 0:
                continue
            vel = inst.get("velocity", [0.0, 0.0])
            vel = (
                [float(v) if v is not None and np.isfinite(float(v)) else 0.0 for v in list(vel)[:2]]
                if vel is not None
                else [0.0, 0.0]
            )
            boxes.append(box[:7])
            labels.append(mapped)
            vels.append(vel)
        return (
            np.asarray(boxes, dtype=np.float32).reshape(-1, 7),
            np.asarray(labels, dtype=np.int64),
            np.asarray(vels, dtype=np.float32).reshape(-1, 2),
        )

    def _path(self, lidar_path: Any, where: str) -> Path:
        if not isinstance(lidar_path, str) or not lidar_path:
            raise DataError(f"{where}: lidar_points.lidar_path is missing", hint=_HINT)
        path = Path(lidar_path)
        return path if path.is_absolute() else self.data_root / path

    def _num_feats(self, lp: Mapping[str, Any], load_dim: int | None, where: str) -> int:
        """The model config's load_dim; the info's num_pts_feats must agree with it when given."""
        given = lp.get("num_pts_feats")
        if given is not None:
            try:
                given = int(given)
            except (TypeError, ValueError):
                raise DataError(
                    f"{where}: lidar_points.num_pts_feats={given!r} is not an integer", hint=_HINT
                ) from None
        if load_dim is None:
            return given if given is not None else 5
        if given is not None and given != load_dim:
            raise DataError(
                f"{where}: lidar_points.num_pts_feats={given} but the model config loads {load_dim} features per point (load_dim)",
                hint="use the model config the data was converted for, or fix load_dim in its test pipeline",
            )
        return load_dim

    def _sweeps(self, entry: Mapping[str, Any], where: str) -> list[SweepPoints] | None:
        spec = self.loading.sweeps
        if spec is None or "lidar_sweeps" not in entry:
            return None
        sweeps = entry["lidar_sweeps"]
        if sweeps is None:
            return None
        if not isinstance(sweeps, list) or not all(isinstance(sw, Mapping) for sw in sweeps):
            raise DataError(f"{where}: 'lidar_sweeps' must be a list of dicts", hint=_HINT)
        out = []
        for j in choose_sweeps(len(sweeps), spec):
            sw_where = f"{where}.lidar_sweeps[{j}]"
            lp = sweeps[j].get("lidar_points")
            if not isinstance(lp, Mapping):
                raise DataError(f"{sw_where}: no 'lidar_points' dict", hint=_HINT)
            raw = read_bin(self._path(lp.get("lidar_path"), sw_where), self._num_feats(lp, spec.load_dim, sw_where))
            out.append(SweepPoints(raw, sweeps[j], sw_where))
        return out

    def load_sample(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise DataError(
                f"sample index {index} out of range (0..{len(self) - 1})", hint="use a smaller runtime_io.sample_idx"
            )
        entry = self.data_list[index]
        where = f"{self.info_path}: data_list[{index}]"
        lp = entry["lidar_points"]
        path = self._path(lp["lidar_path"], where)
        nfeat = self._num_feats(lp, self.loading.load_dim, where)
        if max(self.loading.use_dim) >= nfeat:
            raise DataError(
                f"{path}: the model reads point columns {list(self.loading.use_dim)} but the file has {nfeat} per point",
                hint="make the model config's use_dim name columns that exist",
            )
        ts = entry.get("timestamp")
        try:
            ts = None if ts is None else float(ts)
        except (TypeError, ValueError):
            raise DataError(
                f"{where}: timestamp={ts!r} is not a number", hint="timestamps are seconds (mmdet3d v1.x infos)"
            ) from None
        points = merge_points(read_bin(path, nfeat), self.loading, ts, self._sweeps(entry, where), where)
        boxes, labels, vels = self._gt(entry, where)
        return {
            "points": torch.from_numpy(points),
            "token": str(entry.get("token", entry.get("sample_idx", index))),
            "sample_idx": index,
            "lidar_path": str(path),
            "gt_bboxes_3d": boxes,
            "gt_labels_3d": labels,
            "gt_velocity": vels,
        }
