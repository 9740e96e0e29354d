"""2D detection data: a COCO annotation json, or AWML's T4 2D info file, plus the images.

Both formats are read; which one a file is comes from its content, not its name:
``{'images', 'annotations', 'categories'}`` is COCO; ``{'metainfo': {'classes': [...]},
'data_list': [{'img_path', 'width', 'height', 'instances': [{'bbox': [x1, y1, x2, y2],
'bbox_label', 'ignore_flag'}]}]}`` is the mmengine/mmdet "middle format" that AWML's
``tools/detection2d/create_data_t4dataset.py`` writes (``yolox_infos_{split}.json``).

A sample is ``{"image": HxWx3 uint8 BGR, "image_id", "file_name", "ori_shape": (h, w),
"gt_boxes": [n, 4] xyxy float32, "gt_labels": [n] int64 (contiguous 0..C-1)}``. The
annotation file is validated up front (one DataError naming the file, the entry and the
fix); images are checked when read (3 channels, 8 bit, the size the file says).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.errors import DataError
from modeldeploy.projects.yolox.settings import YOLOXDataSettings
from modeldeploy.projects.yolox.synthetic import ANNOTATION_FILE, bundled_dataset

_HINT = "expected a COCO detection json: {'images': [{id, file_name, width, height}], 'annotations': [{image_id, category_id, bbox: [x, y, w, h]}], 'categories': [{id, name}]}"
_T4_HINT = (
    "expected an AWML T4 2D info file: {'metainfo': {'classes': [...]}, 'data_list': [{img_path, width, height, "
    "instances: [{bbox: [x1, y1, x2, y2], bbox_label, ignore_flag}]}]} (tools/detection2d/create_data_t4dataset.py)"
)
_EITHER_HINT = (
    "use a COCO detection json (images/annotations/categories) or an AWML T4 2D info file (metainfo/data_list)"
)


def _number_list(value: Any, n: int) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(
            f"annotation file {path} does not exist",
            hint="set runtime_io.info_file (COCO json or AWML T4 2D info file) / data_root, or unset both to export without data",
        )
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"annotation file {path} is not valid JSON ({exc})", hint=_EITHER_HINT) from None


class CocoAnnotations:
    """A validated COCO annotation file (categories sorted by id → contiguous labels)."""

    format = "coco"

    def __init__(self, path: str | Path, doc: Any = None) -> None:
        self.path = Path(path)
        doc = _read_json(self.path) if doc is None else doc
        #: a COCO-format ground truth to evaluate against; None: the file itself is one
        self.gt_doc: dict[str, Any] | None = None
        if not isinstance(doc, Mapping) or not all(
            isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
        ):
            keys = sorted(doc)[:8] if isinstance(doc, Mapping) else type(doc).__name__
            raise DataError(
                f"annotation file {self.path} is not COCO format: needs 'images', 'annotations' and 'categories' lists (found {keys})",
                hint=_HINT,
            )
        cats = doc["categories"]
        if not cats or not all(
            isinstance(c, Mapping) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str) for c in cats
        ):
            raise DataError(
                f"annotation file {self.path}: 'categories' must be a non-empty list of {{id: int, name: str}}",
                hint=_HINT,
            )
        cats = sorted(cats, key=lambda c: c["id"])
        self.category_ids = [int(c["id"]) for c in cats]
        self.class_names = tuple(str(c["name"]) for c in cats)
        self.label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images: list[dict[str, Any]] = []
        for i, im in enumerate(doc["images"]):
            if not (
                isinstance(im, Mapping)
                and isinstance(im.get("id"), int)
                and isinstance(im.get("file_name"), str)
                and im["file_name"]
            ):
                raise DataError(
                    f"annotation file {self.path}: images[{i}] needs an int 'id' and a 'file_name'", hint=_HINT
                )
            self.images.append(dict(im))
        if not self.images:
            raise DataError(
                f"annotation file {self.path} lists no images (empty dataset)",
                hint="point runtime_io.info_file at a non-empty split",
            )
        ids = {im["id"] for im in self.images}
        if len(ids) != len(self.images):
            raise DataError(
                f"annotation file {self.path}: image ids are not unique", hint="every images[].id must be unique"
            )
        self.boxes: dict[int, list[tuple[list[float], int]]] = {i: [] for i in ids}
        for j, a in enumerate(doc["annotations"]):
            box = _number_list(a.get("bbox") if isinstance(a, Mapping) else None, 4)
            if box is None or box[2] < 0 or box[3] < 0:
                raise DataError(
                    f"annotation file {self.path}: annotations[{j}].bbox must be 4 finite numbers [x, y, w, h] with w, h >= 0",
                    hint=_HINT,
                )
            if a.get("image_id") not in ids:
                raise DataError(
                    f"annotation file {self.path}: annotations[{j}].image_id {a.get('image_id')!r} is not an image id",
                    hint=_HINT,
                )
            if a.get("category_id") not in self.label_of:
                raise DataError(
                    f"annotation file {self.path}: annotations[{j}].category_id {a.get('category_id')!r} is not a category id",
                    hint=_HINT,
                )
            if a.get("iscrowd", 0):
                continue  # crowd regions are ignored by COCOeval, not detection targets
            self.boxes[a["image_id"]].append((box, self.label_of[a["category_id"]]))


class T4InfoAnnotations:
    """AWML's T4 2D info file, validated, with the same attributes as ``CocoAnnotations``.

    Image ids are the list positions (AWML's T4Dataset numbers them so in test mode);
    ``ignore_flag`` instances are not targets and become crowd regions of the COCO view
    (``gt_doc``), so COCOeval neither rewards nor penalises detections on them, as mmdet
    ignores them. Relative ``img_path``s are relative to ``data_root`` (else the info file's
    folder); AWML's converter writes absolute ones."""

    format = "t4_info"

    def __init__(self, path: str | Path, doc: Any = None, class_names: tuple[str, ...] | None = None) -> None:
        self.path = Path(path)
        doc = _read_json(self.path) if doc is None else doc
        if not isinstance(doc, Mapping) or not isinstance(doc.get("data_list"), list):
            raise DataError(f"annotation file {self.path} has no 'data_list' list", hint=_T4_HINT)
        meta = doc.get("metainfo") or {}
        classes = meta.get("classes") if isinstance(meta, Mapping) else None
        if classes is None:
            if class_names is None:
                raise DataError(
                    f"info file {self.path} has no metainfo.classes and the model config names no classes",
                    hint="add metainfo.classes to the info file or classes = (...) to the model config",
                )
            classes = class_names
        if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) for c in classes):
            raise DataError(
                f"info file {self.path}: metainfo.classes must be a non-empty list of names, got {classes!r:.120}",
                hint=_T4_HINT,
            )
        self.class_names = tuple(classes)
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self.label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images: list[dict[str, Any]] = []
        self.boxes: dict[int, list[tuple[list[float], int]]] = {}
        annotations: list[dict[str, Any]] = []
        for i, entry in enumerate(doc["data_list"]):
            where = f"info file {self.path}: data_list[{i}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("img_path"), str) or not entry["img_path"]:
                raise DataError(f"{where} needs an 'img_path'", hint=_T4_HINT)
            image = {"id": i, "file_name": entry["img_path"]}
            for key in ("width", "height"):
                value = entry.get(key)
                if value is not None and not (isinstance(value, int) and value > 0):
                    raise DataError(f"{where}.{key} must be a positive int, got {value!r}", hint=_T4_HINT)
                if value is not None:
                    image[key] = value
            self.images.append(image)
            self.boxes[i] = []
            instances = entry.get("instances") or []
            if not isinstance(instances, list):
                raise DataError(f"{where}.instances must be a list", hint=_T4_HINT)
            for j, inst in enumerate(instances):
                box = _number_list(inst.get("bbox") if isinstance(inst, Mapping) else None, 4)
                if box is None or box[2] < box[0] or box[3] < box[1]:
                    raise DataError(
                        f"{where}.instances[{j}].bbox must be 4 finite numbers [x1, y1, x2, y2] with x2 >= x1, y2 >= y1",
                        hint=_T4_HINT,
                    )
                label = inst.get("bbox_label")
                if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(self.class_names):
                    raise DataError(
                        f"{where}.instances[{j}].bbox_label {label!r} is not a class index 0..{len(self.class_names) - 1}",
                        hint=_T4_HINT,
                    )
                xywh = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
                ignored = bool(inst.get("ignore_flag", 0))
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i,
                        "category_id": label + 1,
                        "bbox": xywh,
                        "area": xywh[2] * xywh[3],
                        "iscrowd": int(ignored),
                    }
                )
                if not ignored:
                    self.boxes[i].append((xywh, label))
        if not self.images:
            raise DataError(
                f"info file {self.path} lists no images (empty data_list)",
                hint="point runtime_io.info_file at a non-empty split",
            )
        self.gt_doc = {
            "images": self.images,
            "annotations": annotations,
            "categories": [{"id": cid, "name": n} for cid, n in zip(self.category_ids, self.class_names)],
        }


def read_annotations(
    path: str | Path, class_names: tuple[str, ...] | None = None
) -> CocoAnnotations | T4InfoAnnotations:
    """COCO or T4 2D info, told apart by content (a file's name says nothing reliable)."""
    path = Path(path)
    doc = _read_json(path)
    if isinstance(doc, Mapping) and "data_list" in doc:
        return T4InfoAnnotations(path, doc, class_names)
    if isinstance(doc, Mapping) and not any(k in doc for k in ("images", "annotations", "categories")):
        raise DataError(
            f"annotation file {path} is neither COCO nor an AWML T4 2D info file (found keys {sorted(doc)[:8]})",
            hint=_EITHER_HINT,
        )
    return CocoAnnotations(path, doc)


class CocoDetectionDataLoader(BaseDataLoader):
    def __init__(
        self, ann_file: str | Path, img_root: str | Path | None = None, class_names: tuple[str, ...] | None = None
    ) -> None:
        self.coco = read_annotations(ann_file, class_names)
        self.ann_file = self.coco.path.resolve()
        self.img_root = Path(img_root) if img_root is not None else self.ann_file.parent
        if class_names is not None and tuple(class_names) != self.coco.class_names:
            raise DataError(
                f"{self.ann_file}: the data set's classes {list(self.coco.class_names)} differ from the model config's classes {list(class_names)}",
                hint="use data labelled with the model's classes in the model's order, or the model config the checkpoint was trained with",
            )

    @classmethod
    def from_runtime_io(
        cls, info_file: str | None, data_root: str | None, settings: YOLOXDataSettings
    ) -> CocoDetectionDataLoader:
        """``info_file`` = the COCO json or T4 2D info file, ``data_root`` = where its image paths
        are relative to; neither set → the bundled synthetic sample."""
        for key, value in (("runtime_io.info_file", info_file), ("runtime_io.data_root", data_root)):
            if value is not None and ("://" in value or value.startswith("builtin:")):
                raise DataError(
                    f"{key} = {value!r} is a URI; this loader reads local paths",
                    hint="the runner downloads remote datasets first; pass the local path",
                )
        if info_file is None and data_root is None:
            b = settings.bundled_sample
            return cls(bundled_dataset(b.num_images, b.seed, b.min_size, b.max_size), class_names=settings.class_names)
        if info_file is None:
            return cls(Path(data_root) / ANNOTATION_FILE, data_root, settings.class_names)  # type: ignore[arg-type]
        path = Path(info_file)
        if (
            not path.is_absolute()
            and not path.is_file()
            and data_root is not None
            and (Path(data_root) / path).is_file()
        ):
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
            raise DataError(
                f"image {path} (image id {entry['id']}) does not exist",
                hint="set runtime_io.data_root to the directory the file_names are relative to",
            )
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"image {path} could not be decoded", hint="expected a PNG/JPEG image")
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels != 3 or image.dtype != np.uint8:
            raise DataError(
                f"image {path} has {channels} channel(s) of {image.dtype}; the detector needs 3-channel 8-bit BGR",
                hint="convert it to an 8-bit colour image (e.g. cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))",
            )
        w, h = entry.get("width"), entry.get("height")
        if (isinstance(w, int) and w != image.shape[1]) or (isinstance(h, int) and h != image.shape[0]):
            raise DataError(
                f"image {path} is {image.shape[1]}x{image.shape[0]} but the annotation file says {w}x{h}",
                hint="fix images[].width/height in the annotation file (boxes are in those pixel coordinates)",
            )
        return image

    def load_sample(self, index: int) -> dict[str, Any]:
        entry = self.coco.images[index]
        image = self.read_image(entry)
        anns = self.coco.boxes[entry["id"]]
        boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _ in anns], dtype=np.float32).reshape(-1, 4)
        labels = np.array([lab for _, lab in anns], dtype=np.int64)
        return {
            "image": image,
            "image_id": int(entry["id"]),
            "file_name": entry["file_name"],
            "ori_shape": image.shape[:2],
            "gt_boxes": boxes,
            "gt_labels": labels,
            "index": index,
        }
