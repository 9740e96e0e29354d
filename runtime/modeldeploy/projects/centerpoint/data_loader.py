"""Reads T4/nuScenes-style (mmdet3d v1.x) info files and their ``.bin`` point clouds.

A sample is the raw point cloud (torch float32 [N, in_channels], the columns the model
uses) plus ground truth in the info file's convention: ``gt_bboxes_3d`` [M, 7] =
(x, y, z_centre, l, w, h, yaw), ``gt_labels_3d`` [M] (index into the model's
class_names) and ``gt_velocity`` [M, 2]. Instances of classes the model does not
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
from modeldeploy.errors import DataError

_HINT = ("expected an mmdet3d v1.x info file {'metainfo': {...}, 'data_list': [{'lidar_points': "
         "{'lidar_path', 'num_pts_feats'}, 'instances': [{'bbox_3d', 'bbox_label_3d', ...}]}]}")


def read_info(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    info = load_info(path, hint=_HINT, missing_hint="set runtime_io.info_file / data_root, or leave data_root unset for the bundled sample")
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


def load_points(path: Path, num_pts_feats: int, use_dims: Sequence[int]) -> np.ndarray:
    """A float32 ``.bin`` → [N, len(use_dims)], with the checks a corrupt file needs."""
    if not path.is_file():
        raise DataError(f"point file {path} does not exist", hint="check data_root and lidar_points.lidar_path in the info file")
    if num_pts_feats < 3:
        raise DataError(f"{path}: num_pts_feats={num_pts_feats}; points need at least x, y, z", hint="fix lidar_points.num_pts_feats (T4: 5)")
    if max(use_dims) >= num_pts_feats:
        raise DataError(f"{path}: the model reads point columns {list(use_dims)} but the file has {num_pts_feats} per point",
                        hint="set point_use_dims in the model config to columns that exist")
    size = path.stat().st_size
    if size % (4 * num_pts_feats):
        raise DataError(f"{path}: {size} bytes is not a whole number of float32 points with {num_pts_feats} features",
                        hint="the file is truncated, or num_pts_feats in the info file is wrong")
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, num_pts_feats)
    if not np.isfinite(pts[:, :3]).all():
        raise DataError(f"{path}: point coordinates contain NaN/Inf", hint="filter invalid returns before writing the .bin")
    return np.ascontiguousarray(pts[:, list(use_dims)])


class CenterPointDataLoader(BaseDataLoader):
    def __init__(self, info_path: str | Path, data_root: str | Path | None, class_names: Sequence[str], use_dims: Sequence[int]) -> None:
        self.info_path = Path(info_path)
        self.data_root = Path(data_root) if data_root else self.info_path.parent
        self.class_names = tuple(class_names)
        self.use_dims = tuple(use_dims)
        meta, self.data_list = read_info(self.info_path)
        info_classes = meta.get("classes") or (sorted(meta["categories"], key=meta["categories"].get) if isinstance(meta.get("categories"), Mapping) else None)
        info_classes = list(info_classes) if info_classes else list(self.class_names)
        # info label index → model label index (or -1: a class the model does not predict)
        self._label_map = {i: (self.class_names.index(c) if c in self.class_names else -1) for i, c in enumerate(info_classes)}

    @classmethod
    def from_runtime_io(cls, info_file: str | None, data_root: str | None, class_names: Sequence[str], use_dims: Sequence[int]) -> "CenterPointDataLoader":
        """``data_root`` unset → the bundled synthetic sample (generated once into the cache)."""
        if not data_root:
            from modeldeploy.projects.centerpoint.synthetic import bundled_dataset

            if info_file:
                raise DataError(f"runtime_io.info_file={info_file!r} is set but runtime_io.data_root is not", hint="set data_root too, or neither for the bundled sample")
            info = bundled_dataset()
            return cls(info, info.parent, class_names, use_dims)
        root = Path(data_root)
        if not root.is_dir():
            raise DataError(f"runtime_io.data_root {root} is not a directory", hint="point it at the dataset root holding the info file and samples/")
        info = Path(info_file) if info_file else root / "centerpoint_infos_val.pkl"
        return cls(info if info.is_absolute() else root / info, root, class_names, use_dims)

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
                raise DataError(f"{where}: instances[{j}] lacks a numeric bbox_3d / bbox_label_3d", hint=_HINT) from None
            if len(box) < 7 or not np.isfinite(box[:7]).all():
                raise DataError(f"{where}: instances[{j}].bbox_3d must be 7 finite numbers (x, y, z, l, w, h, yaw), got {box}", hint=_HINT)
            if not inst.get("bbox_3d_isvalid", True) or label < 0:
                continue
            mapped = self._label_map.get(label, -1)
            if mapped < 0:
                continue
            vel = inst.get("velocity", [0.0, 0.0])
            vel = [float(v) if v is not None and np.isfinite(float(v)) else 0.0 for v in list(vel)[:2]] if vel is not None else [0.0, 0.0]
            boxes.append(box[:7])
            labels.append(mapped)
            vels.append(vel)
        return (np.asarray(boxes, dtype=np.float32).reshape(-1, 7), np.asarray(labels, dtype=np.int64), np.asarray(vels, dtype=np.float32).reshape(-1, 2))

    def load_sample(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise DataError(f"sample index {index} out of range (0..{len(self) - 1})", hint="use a smaller runtime_io.sample_idx")
        entry = self.data_list[index]
        where = f"{self.info_path}: data_list[{index}]"
        lp = entry["lidar_points"]
        try:
            nfeat = int(lp.get("num_pts_feats", 5))
        except (TypeError, ValueError):
            raise DataError(f"{where}: lidar_points.num_pts_feats={lp.get('num_pts_feats')!r} is not an integer", hint=_HINT) from None
        path = Path(lp["lidar_path"])
        path = path if path.is_absolute() else self.data_root / path
        points = load_points(path, nfeat, self.use_dims)
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
