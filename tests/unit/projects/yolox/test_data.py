"""COCO data: the synthetic generator's determinism and format, and every bad input the
loader must reject with one clear DataError."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from modeldeploy.errors import DataError
from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader
from modeldeploy.projects.yolox.synthetic import CLASSES, render_image


def test_synthetic_images_are_deterministic_and_labelled() -> None:
    a, objs_a = render_image(3, 5)
    b, objs_b = render_image(3, 5)
    c, _ = render_image(4, 5)
    assert hashlib.sha256(a.tobytes()).hexdigest() == hashlib.sha256(b.tobytes()).hexdigest()
    assert objs_a == objs_b
    assert a.shape != c.shape or not np.array_equal(a, c)  # another seed, another image
    for cls, (x, y, w, h) in objs_a:
        assert 0 <= cls < len(CLASSES) and w >= 7 and h >= 7
        assert x >= 0 and y >= 0 and x + w <= a.shape[1] and y + h <= a.shape[0]
        # the object is drawn: its box differs from a flat patch of the background
        assert a[int(y) : int(y + h), int(x) : int(x + w)].std() > 0


def test_loader_reads_the_generated_coco_dataset(coco_dir: Path) -> None:
    loader = CocoDetectionDataLoader(coco_dir / "annotations.json")
    assert len(loader) == 6 and loader.class_names == CLASSES
    s = loader.load_sample(0)
    assert s["image"].dtype == np.uint8 and s["image"].shape[2] == 3
    assert s["gt_boxes"].shape == (len(s["gt_labels"]), 4) and (s["gt_boxes"][:, 2:] > s["gt_boxes"][:, :2]).all()
    doc = json.loads((coco_dir / "annotations.json").read_text())
    n = sum(a["image_id"] == s["image_id"] for a in doc["annotations"])
    assert len(s["gt_labels"]) == n


def _copy(coco_dir: Path, tmp: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    doc = json.loads((coco_dir / "annotations.json").read_text())
    mutate(doc)
    path = tmp / "ann.json"
    path.write_text(json.dumps(doc))
    return path


def test_annotation_file_in_neither_format_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"samples": [{"img_path": "x.png"}]}))
    with pytest.raises(DataError, match="neither COCO nor an AWML T4 2D info file"):
        CocoDetectionDataLoader(p)
    p.write_text(json.dumps({"images": [], "annotations": []}))  # COCO-like but incomplete
    with pytest.raises(DataError, match="not COCO format"):
        CocoDetectionDataLoader(p)
    p.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        CocoDetectionDataLoader(p)


def test_empty_dataset_is_a_data_error(coco_dir: Path, tmp_path: Path) -> None:
    def empty(doc: dict) -> None:
        doc["images"], doc["annotations"] = [], []

    with pytest.raises(DataError, match="lists no images"):
        CocoDetectionDataLoader(_copy(coco_dir, tmp_path, empty), coco_dir)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, 3]), "bbox must be 4 finite numbers"),
        (lambda d: d["annotations"][0].__setitem__("category_id", 99), "category_id 99"),
        (lambda d: d["annotations"][0].__setitem__("image_id", 12345), "image_id 12345"),
        (lambda d: d["images"][0].pop("file_name"), "images\\[0\\] needs"),
    ],
)
def test_bad_annotation_entries_are_data_errors(coco_dir: Path, tmp_path: Path, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=needle):
        CocoDetectionDataLoader(_copy(coco_dir, tmp_path, mutate), coco_dir)


def test_image_with_wrong_channel_count_is_a_data_error(coco_dir: Path, tmp_path: Path) -> None:
    gray = cv2.cvtColor(cv2.imread(str(coco_dir / "images/000000.png")), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)

    def point_at_gray(doc: dict) -> None:
        doc["images"][0]["file_name"] = str(tmp_path / "gray.png")

    loader = CocoDetectionDataLoader(_copy(coco_dir, tmp_path, point_at_gray), coco_dir)
    with pytest.raises(DataError, match="1 channel"):
        loader.load_sample(0)


def test_image_of_the_wrong_size_is_a_data_error(coco_dir: Path, tmp_path: Path) -> None:
    def wrong_size(doc: dict) -> None:
        doc["images"][0]["width"] += 10

    loader = CocoDetectionDataLoader(_copy(coco_dir, tmp_path, wrong_size), coco_dir)
    with pytest.raises(DataError, match="but the annotation file says"):
        loader.load_sample(0)


def test_missing_image_is_a_data_error(coco_dir: Path, tmp_path: Path) -> None:
    loader = CocoDetectionDataLoader(coco_dir / "annotations.json", tmp_path)  # wrong image root
    with pytest.raises(DataError, match="does not exist"):
        loader.load_sample(0)
