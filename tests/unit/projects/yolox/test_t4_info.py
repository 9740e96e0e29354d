"""AWML's T4 2D info files (``yolox_infos_{split}.json``) as YOLOX data, next to COCO.

The fixture is hand-written here in the layout AWML's ``tools/detection2d/create_data_t4dataset.py``
writes (metainfo.classes; data_list entries with img_path/width/height/instances, boxes
[x1, y1, x2, y2] in pixels, bbox_label into the class list, ignore_flag, mask, extra_anns),
with a few tiny generated images. Classes come from the model config; a data set with
other classes is refused with both lists in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.errors import ConfigError, DataError
from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader, T4InfoAnnotations
from modeldeploy.projects.yolox.evaluator import CocoDetectionEvaluator
from modeldeploy.projects.yolox.settings import model_class_names

AWML_CLASSES = ["unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle"]

# (image name, width, height, instances as (x1, y1, x2, y2, label, ignore_flag))
IMAGES = [
    ("cam_front_000.png", 96, 64, [(10, 12, 40, 50, 1, 0), (50, 8, 90, 30, 2, 0)]),
    ("cam_front_001.png", 80, 80, [(5, 5, 30, 70, 6, 0), (40, 40, 60, 60, 7, 1)]),
    ("cam_front_002.png", 64, 48, []),
]


def _write_t4(root: Path, classes: list[str] = AWML_CLASSES, absolute_first: bool = True) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    data_list = []
    for i, (name, w, h, insts) in enumerate(IMAGES):
        img = np.full((h, w, 3), 90, np.uint8)
        for x1, y1, x2, y2, label, _ in insts:
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (30 * label % 255, 200, 60), -1)
        assert cv2.imwrite(str(root / "images" / name), img)
        rel = f"images/{name}"
        data_list.append(
            {
                "img_id": i,
                # AWML's converter writes absolute paths; relative ones are relative to data_root
                "img_path": str((root / rel).resolve()) if (absolute_first and i == 0) else rel,
                "width": w,
                "height": h,
                "instances": [
                    {
                        "bbox": [x1, y1, x2, y2],
                        "bbox_label": label,
                        "mask": [[x1, y1], [x1 + 1, y1]],
                        "extra_anns": ["vehicle_state.parked"] if label == 1 else [],
                        "ignore_flag": ig,
                    }
                    for x1, y1, x2, y2, label, ig in insts
                ],
            }
        )
    path = root / "yolox_infos_val.json"
    path.write_text(
        json.dumps(
            {
                "metainfo": {"dataset_type": "yolox", "task_name": "detection_task", "classes": classes},
                "data_list": data_list,
            }
        )
    )
    return path


@pytest.fixture()
def t4_info(tmp_path: Path) -> Path:
    return _write_t4(tmp_path / "t4")


def test_loader_reads_t4_info_boxes_labels_and_ignores(t4_info: Path) -> None:
    loader = CocoDetectionDataLoader(t4_info, t4_info.parent)
    assert isinstance(loader.coco, T4InfoAnnotations) and loader.coco.format == "t4_info"
    assert list(loader.class_names) == AWML_CLASSES and len(loader) == 3
    for i, (_, w, h, insts) in enumerate(IMAGES):
        s = loader.load_sample(i)
        assert s["image_id"] == i and s["ori_shape"] == (h, w)
        kept = [t for t in insts if not t[5]]  # ignore_flag=1 is not a target
        np.testing.assert_allclose(s["gt_boxes"], np.array([t[:4] for t in kept], np.float32).reshape(-1, 4), atol=1e-4)
        assert s["gt_labels"].tolist() == [t[4] for t in kept]


def test_t4_ground_truth_scores_perfect_predictions_and_is_written_as_coco(t4_info: Path, tmp_path: Path) -> None:
    loader = CocoDetectionDataLoader(t4_info, t4_info.parent)
    ev = CocoDetectionEvaluator(
        loader.ann_file, loader.class_names, loader.coco.category_ids, gt_doc=loader.coco.gt_doc
    )
    for i in range(len(loader)):
        s = loader.load_sample(i)
        boxes, labels = s["gt_boxes"], s["gt_labels"]
        if i == 1:  # a detection on the ignored instance must neither help nor hurt
            boxes = np.vstack([boxes, [[40, 40, 60, 60]]]).astype(np.float32)
            labels = np.append(labels, 7)
        ev.add({"boxes": boxes, "scores": np.full(len(labels), 0.9, np.float32), "labels": labels}, s)
    m = ev.compute()
    assert m["mAP"] == pytest.approx(1.0) and m["num_images"] == 3
    assert {k for k, v in m["per_class"].items() if v > 0.99} == {"car", "truck", "pedestrian"}
    ev.write_predictions(tmp_path / "pred" / "onnxruntime_cpu.json")
    gt = json.loads((tmp_path / "pred" / "ground_truth.json").read_text())
    assert [c["name"] for c in gt["categories"]] == AWML_CLASSES
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 1 and len(gt["images"]) == 3


def test_a_wrong_prediction_lowers_the_t4_map(t4_info: Path) -> None:
    loader = CocoDetectionDataLoader(t4_info, t4_info.parent)
    ev = CocoDetectionEvaluator(
        loader.ann_file, loader.class_names, loader.coco.category_ids, gt_doc=loader.coco.gt_doc
    )
    for i in range(len(loader)):
        s = loader.load_sample(i)
        labels = (s["gt_labels"] + 1) % len(AWML_CLASSES)  # every class wrong
        ev.add({"boxes": s["gt_boxes"], "scores": np.full(len(labels), 0.9, np.float32), "labels": labels}, s)
    assert ev.compute()["mAP"] == pytest.approx(0.0)


def test_awml_size_config_predicts_awml_classes(awml_cfg) -> None:  # type: ignore[no-untyped-def]
    assert list(model_class_names(awml_cfg)) == AWML_CLASSES


def test_classes_from_an_awml_style_dataloader_metainfo() -> None:
    cfg = {
        "model": {"bbox_head": {"num_classes": 2}},
        "test_dataloader": {"dataset": {"type": "T4Dataset", "metainfo": {"classes": ("car", "bus")}}},
    }
    assert model_class_names(cfg) == ("car", "bus")
    with pytest.raises(ConfigError, match=r"lists 2 classes .* but model.bbox_head.num_classes = 3"):
        model_class_names({"model": {"bbox_head": {"num_classes": 3}}, "classes": ("car", "bus")})


def _cfg(info: Path) -> BaseDeploymentConfig:
    return BaseDeploymentConfig.from_dict(
        {"project": "yolox", "runtime_io": {"info_file": str(info), "data_root": str(info.parent)}}
    )


def test_project_reads_t4_info_with_the_model_classes(awml_cfg, t4_info: Path) -> None:  # type: ignore[no-untyped-def]
    from modeldeploy.projects.yolox.project import YOLOXProject

    proj = YOLOXProject()
    loader = proj.build_data_loader(_cfg(t4_info), awml_cfg)
    assert list(loader.class_names) == AWML_CLASSES
    assert proj.build_evaluator(_cfg(t4_info), awml_cfg).gt_doc is not None


def test_data_with_other_classes_is_one_line_naming_both_lists(awml_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modeldeploy.projects.yolox.project import YOLOXProject

    other = [
        "unknown",
        "car",
        "truck",
        "bus",
        "trailer",
        "bicycle",
        "pedestrian",
        "motorcycle",
    ]  # same size, other order
    info = _write_t4(tmp_path / "other", classes=other)
    with pytest.raises(DataError) as exc:
        YOLOXProject().build_data_loader(_cfg(info), awml_cfg)
    line = exc.value.one_line()
    assert str(other) in line and str(AWML_CLASSES) in line and "\n" not in line


def test_t4_info_without_metainfo_takes_the_model_classes(tmp_path: Path) -> None:
    info = _write_t4(tmp_path / "nometa")
    doc = json.loads(info.read_text())
    del doc["metainfo"]
    info.write_text(json.dumps(doc))
    assert list(CocoDetectionDataLoader(info, info.parent, tuple(AWML_CLASSES)).class_names) == AWML_CLASSES
    with pytest.raises(DataError, match="no metainfo.classes and the model config names no classes"):
        CocoDetectionDataLoader(info, info.parent)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (
            lambda d: d["data_list"][0]["instances"][0].__setitem__("bbox_label", 8),
            r"bbox_label 8 is not a class index 0\.\.7",
        ),
        (lambda d: d["data_list"][0]["instances"][0].__setitem__("bbox", [40, 12, 10, 50]), r"x2 >= x1"),
        (lambda d: d["data_list"][1].pop("img_path"), r"data_list\[1\] needs an 'img_path'"),
        (lambda d: d["data_list"][1].__setitem__("width", "80"), r"data_list\[1\]\.width must be a positive int"),
        (lambda d: d.__setitem__("data_list", []), r"lists no images"),
    ],
)
def test_bad_t4_entries_are_data_errors(t4_info: Path, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(t4_info.read_text())
    mutate(doc)
    t4_info.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=needle):
        CocoDetectionDataLoader(t4_info, t4_info.parent)


def test_t4_image_of_the_wrong_size_is_a_data_error(t4_info: Path) -> None:
    doc = json.loads(t4_info.read_text())
    doc["data_list"][2]["width"] = 65
    t4_info.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="is 64x48 but the annotation file says 65x48"):
        CocoDetectionDataLoader(t4_info, t4_info.parent).load_sample(2)


def test_letterbox_size_and_pad_come_from_the_awml_test_pipeline() -> None:
    from modeldeploy.projects.yolox.settings import data_settings

    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=(640, 480), keep_ratio=True),
        dict(type="Pad", pad_to_square=True, pad_val=dict(img=(100.0, 100.0, 100.0))),
    ]
    s = data_settings({"IMG_SCALE": (960, 960), "test_dataloader": {"dataset": {"pipeline": pipeline}}})
    assert s.img_scale == (640, 480) and s.pad_val == 100.0  # the pipeline wins over the IMG_SCALE variable
    assert data_settings({"test_pipeline": pipeline, "yolox_data": {"img_scale": (320, 320)}}).img_scale == (320, 320)
    with pytest.raises(ConfigError, match="keep_ratio=False"):
        data_settings({"test_pipeline": [dict(type="Resize", scale=(640, 640), keep_ratio=False)]})


def test_which_runs_have_data(awml_cfg, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    from modeldeploy.projects.yolox.project import YOLOXProject

    proj = YOLOXProject()

    def cfg(**rio: object) -> BaseDeploymentConfig:
        return BaseDeploymentConfig.from_dict({"project": "yolox", "runtime_io": rio})

    assert not proj.has_data(cfg(), awml_cfg)  # AWML-size: no bundled sample, nothing configured
    assert not proj.has_data(cfg(info_file=""), awml_cfg)  # '' means unset, as in AWML's deploy configs
    assert proj.has_data(cfg(info_file="data/t4dataset/yolox_infos_val.json"), awml_cfg)
    assert proj.has_data(cfg(), tiny_cfg)  # the demo model opts into the bundled set it was trained on
    sample = proj.example_sample(cfg(), awml_cfg)
    assert sample["image"].shape == (960, 960, 3) and sample["image"].dtype == np.uint8 and sample["image"].std() > 1
