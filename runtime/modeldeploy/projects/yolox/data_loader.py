"""COCO-format detection data: an annotation json plus the images it names.

A sample is ``{"image": HxWx3 uint8 BGR, "image_id", "file_name", "ori_shape": (h, w),
"gt_boxes": [n, 4] xyxy float32, "gt_labels": [n] int64 (contiguous 0..C-1)}``. The
annotation file is validated up front (one DataError naming the file, the entry and the
fix); images are checked when read (3 channels, 8 bit, the size the json says).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.errors import DataError
from modeldeploy.projects.yolox.settings import YOLOXDataSettings
from modeldeploy.projects.yolox.synthetic import ANNOTATION_FILE, bundled_dataset

_HINT = "expected a COCO detection json: {'images': [{id, file_name, width, height}], 'annotations': [{image_id, category_id, bbox: [x, y, w, h]}], 'categories': [{id, name}]}"


def _number_list(value: Any, n: int) -> Optional[list[float]]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None


class CocoAnnotations:
    """A validated COCO annotation file (categories sorted by id → contiguous labels)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"annotation file {self.path} does not exist", hint="set runtime_io.info_file (COCO json) / data_root, or leave both unset for the bundled sample")
        try:
            doc = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"annotation file {self.path} is not valid JSON ({exc})", hint=_HINT) from None
        if not isinstance(doc, Mapping) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
            keys = sorted(doc)[:8] if isinstance(doc, Mapping) else type(doc).__name__
            raise DataError(f"annotation file {self.path} is not COCO format: needs 'images', 'annotations' and 'categories' lists (found {keys})", hint=_HINT)
        cats = doc["categories"]
        if not cats or not all(isinstance(c, Mapping) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str) for c in cats):
            raise DataError(f"annotation file {self.path}: 'categories' must be a non-empty list of {{id: int, name: str}}", hint=_HINT)
        cats = sorted(cats, key=lambda c: c["id"])
        self.category_ids = [int(c["id"]) for c in cats]
        self.class_names = tuple(str(c["name"]) for c in cats)
        self.label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images: list[dict[str, Any]] = []
        for i, im in enumerate(doc["images"]):
            if not (isinstance(im, Mapping) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str) and im["file_name"]):
                raise DataError(f"annotation file {self.path}: images[{i}] needs an int 'id' and a 'file_name'", hint=_HINT)
            self.images.append(dict(im))
        if not self.images:
            raise DataError(f"annotation file {self.path} lists no images (empty dataset)", hint="point runtime_io.info_file at a non-empty split")
        ids = {im["id"] for im in self.images}
        if len(ids) != len(self.images):
            raise DataError(f"annotation file {self.path}: image ids are not unique", hint="every images[].id must be unique")
        self.boxes: dict[int, list[tuple[list[float], int]]] = {i: [] for i in ids}
        for j, a in enumerate(doc["annotations"]):
            box = _number_list(a.get("bbox") if isinstance(a, Mapping) else None, 4)
            if box is None or box[2] < 0 or box[3] < 0:
                raise DataError(f"annotation file {self.path}: annotations[{j}].bbox must be 4 finite numbers [x, y, w, h] with w, h >= 0", hint=_HINT)
            if a.get("image_id") not in ids:
                raise DataError(f"annotation file {self.path}: annotations[{j}].image_id {a.get('image_id')!r} is not an image id", hint=_HINT)
            if a.get("category_id") not in self.label_of:
                raise DataError(f"annotation file {self.path}: annotations[{j}].category_id {a.get('category_id')!r} is not a category id", hint=_HINT)
            if a.get("iscrowd", 0):
                continue  # crowd regions are ignored by COCOeval, not detection targets
            self.boxes[a["image_id"]].append((box, self.label_of[a["category_id"]]))


class CocoDetectionDataLoader(BaseDataLoader):
    def __init__(self, ann_file: str | Path, img_root: str | Path | None = None, class_names: Optional[tuple[str, ...]] = None) -> None:
        self.coco = CocoAnnotations(ann_file)
        self.ann_file = self.coco.path.resolve()
        self.img_root = Path(img_root) if img_root is not None else self.ann_file.parent
        if class_names is not None and tuple(class_names) != self.coco.class_names:
            raise DataError(f"{self.ann_file}: categories {list(self.coco.class_names)} differ from the model config's class_names {list(class_names)}",
                            hint="use the annotation file the model was trained for, or fix yolox_data.class_names")

    @classmethod
    def from_runtime_io(cls, info_file: Optional[str], data_root: Optional[str], settings: YOLOXDataSettings) -> "CocoDetectionDataLoader":
        """``info_file`` = the COCO json, ``data_root`` = where its ``file_name``s are relative to;
        neither set → the bundled synthetic sample."""
        for key, value in (("runtime_io.info_file", info_file), ("runtime_io.data_root", data_root)):
            if value is not None and ("://" in value or value.startswith("builtin:")):
                raise DataError(f"{key} = {value!r} is a URI; this loader reads local paths", hint="the runner downloads remote datasets first; pass the local path")
        if info_file is None and data_root is None:
            b = settings.bundled_sample
            return cls(bundled_dataset(b.num_images, b.seed, b.min_size, b.max_size), class_names=settings.class_names)
        if info_file is None:
            return cls(Path(data_root) / ANNOTATION_FILE, data_root, settings.class_names)  # type: ignore[arg-type]
        path = Path(info_file)
        if not path.is_absolute() and not path.is_file() and data_root is not None and (Path(data_root) / path).is_file():
            path = Path(data_root) / path
        return cls(path, data_root, settings.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.coco.class_names

    def __len__(self) -> int:
        return len(self.coco.images)

    def read_image(self, entry: Mapping[str, Any]) -> np.ndarray:
        path = Path(entry["file_name"])
        path = path if path.is_absolute() else self.img_root / path
        if not path.is_file():
            raise DataError(f"image {path} (image id {entry['id']}) does not exist", hint="set runtime_io.data_root to the directory the file_names are relative to")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"image {path} could not be decoded", hint="expected a PNG/JPEG image")
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels != 3 or image.dtype != np.uint8:
            raise DataError(f"image {path} has {channels} channel(s) of {image.dtype}; the detector needs 3-channel 8-bit BGR",
                            hint="convert it to an 8-bit colour image (e.g. cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))")
        w, h = entry.get("width"), entry.get("height")
        if (isinstance(w, int) and w != image.shape[1]) or (isinstance(h, int) and h != image.shape[0]):
            raise DataError(f"image {path} is {image.shape[1]}x{image.shape[0]} but the annotation file says {w}x{h}",
                            hint="fix images[].width/height in the annotation file (boxes are in those pixel coordinates)")
        return image

    def load_sample(self, index: int) -> dict[str, Any]:
        entry = self.coco.images[index]
        image = self.read_image(entry)
        anns = self.coco.boxes[entry["id"]]
        boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _ in anns], dtype=np.float32).reshape(-1, 4)
        labels = np.array([lab for _, lab in anns], dtype=np.int64)
        return {"image": image, "image_id": int(entry["id"]), "file_name": entry["file_name"], "ori_shape": image.shape[:2],
                "gt_boxes": boxes, "gt_labels": labels, "index": index}
