"""Reads calibration samples (image + LiDAR + calibration) and draws their label.

A sample dict holds the *raw* sensor data plus the extrinsic to project with; the
5-channel fusion happens in the pipeline's preprocess (on the pipeline's device), so the
preprocess latency is the real cost a deployed node pays per frame. The label and the
perturbation are a pure function of (miscalibration seed, epoch, index): every backend,
process and machine sees the same inputs.

On-disk format: see README.md in this package. Both the flat format written by
``synthetic.py`` and AWML's nested T4 info entries (``image.{img_path, cam2img,
lidar2cam, distortion_coefficients}``, ``lidar_points.{lidar_path, num_pts_feats}``) are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.info_file import data_list_of, load_info
from modeldeploy.errors import DataError
from modeldeploy.projects.calibration.fusion import draw_miscalibration
from modeldeploy.projects.calibration.settings import CalibrationDataSettings
from modeldeploy.projects.calibration.synthetic import INFO_FILE_NAME, bundled_dataset

_FORMAT_HINT = "see runtime/modeldeploy/projects/calibration/README.md for the sample format"


def read_info_file(path: Path) -> list[dict[str, Any]]:
    """``{'metainfo': ..., 'data_list': [...]}`` (pickle or JSON) → the list of entries."""
    hint = "expected a pickle/JSON of {'metainfo': {...}, 'data_list': [{...}, ...]}"
    info = load_info(
        path, hint=hint, missing_hint="set runtime_io.info_file / data_root, or leave both unset for the bundled sample"
    )
    data_list = data_list_of(info, path, hint=hint)
    return [dict(e) for e in data_list]


def _matrix(value: Any, shape: tuple[int, int], key: str, source: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{source}: '{key}' is not numeric ({value!r:.80})", hint=_FORMAT_HINT) from None
    if m.shape != shape or not np.all(np.isfinite(m)):
        raise DataError(
            f"{source}: '{key}' must be a finite {shape[0]}x{shape[1]} matrix, got shape {m.shape}", hint=_FORMAT_HINT
        )
    return m


def parse_calibration(calib: Any, source: str) -> dict[str, Any]:
    """Validate K (3x3), lidar2cam (4x4 rigid), distortion (OpenCV lengths), optional image size."""
    if not isinstance(calib, Mapping):
        raise DataError(f"{source}: calibration must be a JSON object, got {type(calib).__name__}", hint=_FORMAT_HINT)
    missing = [k for k in ("cam2img", "lidar2cam") if k not in calib]
    if missing:
        raise DataError(
            f"{source}: calibration lacks {missing}",
            hint="need cam2img (3x3), lidar2cam (4x4), distortion_coefficients, height, width",
        )
    k = _matrix(calib["cam2img"], (3, 3), "cam2img", source)
    if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.allclose(k[2], [0, 0, 1]):
        raise DataError(
            f"{source}: cam2img is not a pinhole intrinsic matrix (fx, fy > 0, last row 0 0 1): {k.tolist()}",
            hint=_FORMAT_HINT,
        )
    t = _matrix(calib["lidar2cam"], (4, 4), "lidar2cam", source)
    r = t[:3, :3]
    if not np.allclose(t[3], [0, 0, 0, 1]) or not np.allclose(r @ r.T, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
        raise DataError(
            f"{source}: lidar2cam is not a rigid transform (orthonormal rotation, last row 0 0 0 1)", hint=_FORMAT_HINT
        )
    dist = np.asarray(calib.get("distortion_coefficients", [0.0] * 5), dtype=np.float64).reshape(-1)
    if dist.size not in (4, 5, 8, 12, 14) or not np.all(np.isfinite(dist)):
        raise DataError(
            f"{source}: distortion_coefficients must have 4, 5, 8, 12 or 14 finite values, got {dist.size}",
            hint=_FORMAT_HINT,
        )
    size = None
    if "height" in calib or "width" in calib:
        h, w = calib.get("height"), calib.get("width")
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise DataError(f"{source}: height/width must be positive ints, got {h!r}/{w!r}", hint=_FORMAT_HINT)
        size = (h, w)
    return {"cam2img": k, "lidar2cam": t, "distortion": dist, "size": size}


class CalibrationDataLoader(BaseDataLoader):
    """Samples of an info file; ``epoch`` re-draws labels (training), evaluation uses epoch 0."""

    def __init__(
        self,
        info_file: str | Path,
        data_root: str | Path | None = None,
        settings: CalibrationDataSettings | None = None,
        epoch: int = 0,
    ) -> None:
        self.info_file = Path(info_file)
        self.data_root = Path(data_root) if data_root is not None else self.info_file.parent
        self.settings = settings or CalibrationDataSettings()
        self.epoch = epoch
        self.entries = read_info_file(self.info_file)

    @classmethod
    def from_runtime_io(
        cls, info_file: str | None, data_root: str | None, settings: CalibrationDataSettings
    ) -> CalibrationDataLoader:
        """Deploy-config ``runtime_io`` → loader; neither set → the bundled synthetic sample."""
        for key, value in (("runtime_io.info_file", info_file), ("runtime_io.data_root", data_root)):
            if value is not None and ("://" in value or value.startswith("builtin:")):
                raise DataError(
                    f"{key} = {value!r} is a URI; this loader reads local paths",
                    hint="the runner downloads remote datasets first; pass the local directory/file",
                )
        if info_file is None:
            if data_root is None:
                b = settings.bundled_sample
                return cls(bundled_dataset(b.num_samples, b.seed, b.height, b.width), settings=settings)
            return cls(Path(data_root) / INFO_FILE_NAME, data_root, settings)
        path = Path(info_file)
        if (
            not path.is_absolute()
            and not path.is_file()
            and data_root is not None
            and (Path(data_root) / path).is_file()
        ):
            path = Path(data_root) / path
        return cls(path, data_root, settings)

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ reading
    def _path(self, rel: Any, key: str, index: int) -> Path:
        if not isinstance(rel, str) or not rel:
            raise DataError(f"{self.info_file}: data_list[{index}] has no '{key}'", hint=_FORMAT_HINT)
        p = Path(rel)
        return p if p.is_absolute() else self.data_root / p

    def _entry_fields(self, entry: Mapping[str, Any], index: int) -> tuple[Path, Path, int, dict[str, Any]]:
        if isinstance(entry.get("image"), Mapping):  # AWML T4 info entry: calibration inline
            cam, lidar = entry["image"], entry.get("lidar_points") or {}
            img = self._path(cam.get("img_path"), "image.img_path", index)
            pts = self._path(lidar.get("lidar_path"), "lidar_points.lidar_path", index)
            calib = parse_calibration(cam, f"{self.info_file} data_list[{index}].image")
            return img, pts, int(lidar.get("num_pts_feats", 5)), calib
        img = self._path(entry.get("img_path"), "img_path", index)
        pts = self._path(entry.get("lidar_path"), "lidar_path", index)
        calib_path = self._path(entry.get("calib_path"), "calib_path", index)
        if not calib_path.is_file():
            raise DataError(f"calibration file {calib_path} does not exist (sample {index})", hint=_FORMAT_HINT)
        try:
            raw = json.loads(calib_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"calibration file {calib_path} is not valid JSON ({exc})", hint=_FORMAT_HINT) from None
        return img, pts, int(entry.get("num_pts_feats", 4)), parse_calibration(raw, str(calib_path))

    @staticmethod
    def read_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
        if not path.is_file():
            raise DataError(f"image {path} does not exist", hint=_FORMAT_HINT)
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"image {path} could not be decoded", hint="expected a PNG/JPEG camera image")
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels != 3 or image.dtype != np.uint8:
            raise DataError(
                f"image {path} has {channels} channel(s) of {image.dtype}; expected 3-channel 8-bit BGR",
                hint="save the camera image as an 8-bit colour PNG",
            )
        if size is not None and image.shape[:2] != size:
            raise DataError(
                f"image {path} is {image.shape[1]}x{image.shape[0]} but its calibration says {size[1]}x{size[0]}",
                hint="the calibration's width/height must match the image",
            )
        return image

    @staticmethod
    def read_points(path: Path, num_feats: int) -> np.ndarray:
        if not path.is_file():
            raise DataError(f"LiDAR file {path} does not exist", hint=_FORMAT_HINT)
        if num_feats < 4:
            raise DataError(
                f"LiDAR file {path}: num_pts_feats={num_feats}; expected at least x, y, z, intensity (4)",
                hint=_FORMAT_HINT,
            )
        raw = np.fromfile(path, dtype=np.float32)
        if raw.size == 0 or raw.size % num_feats:
            raise DataError(
                f"LiDAR file {path} holds {raw.size} float32 values, not an N x {num_feats} array (x, y, z, intensity, ...)",
                hint="write points as float32 rows of num_pts_feats values (.bin, points.astype(np.float32).tofile())",
            )
        pts = raw.reshape(-1, num_feats)[:, :4]
        return np.ascontiguousarray(pts[np.isfinite(pts).all(1)])

    def load_sample(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.entries):
            raise IndexError(index)
        entry = self.entries[index]
        img_path, pts_path, num_feats, calib = self._entry_fields(entry, index)
        image = self.read_image(img_path, calib["size"])
        points = self.read_points(pts_path, num_feats)
        k = calib["cam2img"]
        if np.any(calib["distortion"]):  # as AWML: undistort, then project with the new pinhole matrix
            h, w = image.shape[:2]
            new_k, _ = cv2.getOptimalNewCameraMatrix(k, calib["distortion"], (w, h), 0.0, (w, h))
            image = cv2.undistort(image, k, calib["distortion"], newCameraMatrix=new_k)
            k = new_k
        mis = draw_miscalibration(index, self.settings.miscalibration, self.epoch)
        return {
            "index": index,
            "sample_idx": entry.get("sample_idx", index),
            "img_path": str(img_path),
            "image": image,
            "points": points,
            "cam2img": k,
            "lidar2cam": mis.delta @ calib["lidar2cam"],
            "lidar2cam_true": calib["lidar2cam"],
            "gt_label": mis.label,
            "miscalibration": {"rotation_deg": mis.rotation_deg, "translation_m": mis.translation_m},
        }
