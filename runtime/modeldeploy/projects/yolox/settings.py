"""Settings of the yolox project: the deploy config's ``yolox`` section and the model config's
``yolox_data`` / ``test_cfg`` / ``data_preprocessor`` views.

Why split this way: how a checkpoint's input is built (letterbox size, pad value,
normalisation) and its test-time thresholds travel with the *model* config, as in AWML;
deployment choices (NMS in the graph, the ReLU6 rewrite, the pre-NMS candidate cap) are
the *deploy* config's ``yolox = dict(...)`` section, validated like every other section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

from modeldeploy.config.parse import parse_section
from modeldeploy.config.sections import Section
from modeldeploy.core.model_config import model_cfg_dict
from modeldeploy.errors import ConfigError
from modeldeploy.projects.yolox.preprocess import Normalize

# TensorRT's TopK accepts K <= 3840; the pre-NMS cap is a TopK in the NMS graph.
MAX_TOPK = 3840


class YOLOXDeploySection(Section):
    """``yolox = dict(...)`` in a deploy config (declared as ``YOLOXProject.deploy_section``)."""

    nms_in_graph: bool = False  # also export <save_file stem>_nms.onnx with ONNX NonMaxSuppression
    replace_relu6: bool = True  # AWML rewrites ReLU6 → ReLU before export
    score_thr: float | None = Field(None, ge=0.0, lt=1.0)  # None: model test_cfg.score_thr
    iou_threshold: float | None = Field(None, gt=0.0, le=1.0)  # None: model test_cfg.nms.iou_threshold
    max_per_img: int | None = Field(None, ge=1, le=MAX_TOPK)  # None: model test_cfg.max_per_img (100)
    pre_nms: int = Field(1000, ge=1, le=MAX_TOPK)  # best-scoring anchors handed to NMS (both paths)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BundledSample(_Strict):
    num_images: int = Field(48, ge=1)
    seed: int = 1000
    min_size: int = Field(200, ge=64)
    max_size: int = Field(320, ge=64)


class YOLOXDataSettings(_Strict):
    img_scale: tuple[int, int] = (960, 960)  # mmdet Resize scale (width, height), keep_ratio
    pad_val: float = 114.0
    class_names: tuple[str, ...] | None = None  # None: top-level `classes` / metainfo (see model_class_names)
    bundled_sample: BundledSample = BundledSample()


@dataclass(frozen=True)
class PostprocessSettings:
    score_thr: float
    iou_thr: float
    max_per_img: int
    pre_nms: int


def _test_pipeline(cfg: dict[str, Any]) -> list[Any]:
    for pipeline in (
        cfg.get("test_pipeline"),
        ((cfg.get("test_dataloader") or {}).get("dataset") or {}).get("pipeline"),
        ((cfg.get("val_dataloader") or {}).get("dataset") or {}).get("pipeline"),
    ):
        if isinstance(pipeline, (list, tuple)) and pipeline:
            return [step for step in pipeline if isinstance(step, dict)]
    return []


def _from_test_pipeline(cfg: dict[str, Any]) -> dict[str, Any]:
    """img_scale / pad_val from an mmdet test pipeline (AWML's: Resize keep_ratio, Pad 114):
    what the checkpoint saw at test time, so an AWML config needs no ``yolox_data``."""
    out: dict[str, Any] = {}
    for step in _test_pipeline(cfg):
        kind = str(step.get("type", "")).split(".")[-1]
        if kind == "Resize" and step.get("scale") is not None:
            if not step.get("keep_ratio", False):
                raise ConfigError(
                    "model config: the test pipeline's Resize has keep_ratio=False; the yolox project letterboxes (keep_ratio=True, as AWML)",
                    hint="use dict(type='Resize', scale=IMG_SCALE, keep_ratio=True) or set yolox_data.img_scale",
                )
            scale = step["scale"]
            out["img_scale"] = (
                (int(scale), int(scale)) if isinstance(scale, (int, float)) else tuple(int(v) for v in scale)
            )
        elif kind == "Pad":
            pad = step.get("pad_val", 0)
            values = pad.get("img", 0) if isinstance(pad, dict) else pad
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            if len(set(float(v) for v in values)) == 1:
                out["pad_val"] = float(values[0])
    return out


def data_settings(model_cfg: Any) -> YOLOXDataSettings:
    """``yolox_data``; what it leaves out comes from the test pipeline (Resize scale, Pad
    value), then a top-level ``IMG_SCALE``, then AWML's defaults."""
    cfg = model_cfg_dict(model_cfg)
    raw = dict(cfg.get("yolox_data") or {})
    for key, value in _from_test_pipeline(cfg).items():
        raw.setdefault(key, value)
    if "img_scale" not in raw and "IMG_SCALE" in cfg:
        raw["img_scale"] = tuple(cfg["IMG_SCALE"])
    s = parse_section(YOLOXDataSettings, raw, key="yolox_data", source="model config", doc="the yolox configs")
    w, h = s.img_scale
    if w % 32 or h % 32 or w < 64 or h < 64:
        raise ConfigError(
            f"model config: 'yolox_data.img_scale' = {s.img_scale}: width and height must be multiples of 32 (>= 64)",
            hint="the network downsamples by 32; use e.g. (960, 960) or (256, 256)",
        )
    if s.bundled_sample.min_size > s.bundled_sample.max_size:
        raise ConfigError("model config: 'yolox_data.bundled_sample.min_size' > max_size", hint="swap them")
    return s


def _class_tuple(value: Any, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"model config: '{key}' must be a non-empty list of class names, got {value!r:.120}",
            hint="e.g. classes = ('car', 'truck', ...)",
        )
    return tuple(value)


def model_class_names(model_cfg: Any) -> tuple[str, ...] | None:
    """The classes the checkpoint predicts, in label order, from the model config.

    Why from the model config: the head's channel ``i`` means whatever class ``i`` was at
    training time, and AWML keeps that list in the config (top-level ``classes`` from the
    dataset base, or a dataset's ``metainfo.classes``). A dataset only has to agree with
    it. ``yolox_data.class_names`` (this project's older key) wins when set. None: the
    config names no classes (then only ``bbox_head.num_classes`` is known)."""
    cfg = model_cfg_dict(model_cfg)
    candidates: list[tuple[str, Any]] = [
        ("yolox_data.class_names", (cfg.get("yolox_data") or {}).get("class_names")),
        ("classes", cfg.get("classes")),
        ("metainfo.classes", (cfg.get("metainfo") or {}).get("classes")),
    ]
    for loader in ("test_dataloader", "val_dataloader"):
        dataset = (cfg.get(loader) or {}).get("dataset") or {}
        candidates.append(
            (
                f"{loader}.dataset.metainfo.classes",
                (dataset.get("metainfo") or {}).get("classes") if isinstance(dataset, dict) else None,
            )
        )
    for key, value in candidates:
        names = _class_tuple(value, key)
        if names is None:
            continue
        num = ((cfg.get("model") or {}).get("bbox_head") or {}).get("num_classes")
        if num is not None and int(num) != len(names):
            raise ConfigError(
                f"model config: '{key}' lists {len(names)} classes {list(names)} but model.bbox_head.num_classes = {num}",
                hint="make the class list and num_classes agree (the head predicts num_classes scores)",
            )
        return names
    return None


def normalize_settings(model_cfg: Any) -> Normalize:
    """From ``model.data_preprocessor``: AWML's has no mean/std, so the network sees BGR 0–255."""
    dp = dict((model_cfg_dict(model_cfg).get("model") or {}).get("data_preprocessor") or {})
    mean, std = dp.get("mean"), dp.get("std")
    if (mean is None) != (std is None):
        raise ConfigError(
            "model config: 'model.data_preprocessor' sets only one of mean/std", hint="set both or neither"
        )
    # (mean is None) == (std is None) from here; both are tested so the type checker knows it too
    if mean is not None and std is not None and (len(mean) != 3 or len(std) != 3 or any(float(v) <= 0 for v in std)):
        raise ConfigError(
            f"model config: 'model.data_preprocessor' mean/std must be 3 values (std > 0), got {mean}/{std}",
            hint="e.g. mean=[0, 0, 0], std=[1, 1, 1]",
        )
    return Normalize(  # mean/std: 3 values each, checked above
        cast(tuple[float, float, float], tuple(map(float, mean))) if mean is not None else None,
        cast(tuple[float, float, float], tuple(map(float, std))) if std is not None else None,
        bool(dp.get("bgr_to_rgb", False)),
    )


@dataclass(frozen=True)
class YOLOXSettings:
    """What the yolox project reads from a model config, parsed once (``YOLOXProject.parse_settings``)."""

    data: YOLOXDataSettings
    class_names: tuple[str, ...] | None  # model_class_names
    normalize: Normalize
    num_classes: int  # model.bbox_head.num_classes (0: not set)
    strides: tuple[int, ...]
    test_cfg: dict[str, Any]  # model.test_cfg as written; checked with the deploy overrides (postprocess_settings)


def parse_settings(model_cfg: Any) -> YOLOXSettings:
    """Every yolox view of the model config, each checked (ConfigError names the key)."""
    model = model_cfg_dict(model_cfg).get("model") or {}
    head = model.get("bbox_head") or {}
    return YOLOXSettings(
        data=data_settings(model_cfg),
        class_names=model_class_names(model_cfg),
        normalize=normalize_settings(model_cfg),
        num_classes=int(head.get("num_classes", 0) or 0),
        strides=tuple(int(s) for s in head.get("strides", (8, 16, 32))),
        test_cfg=dict(model.get("test_cfg") or {}),
    )


def postprocess_settings(settings: YOLOXSettings, section: YOLOXDeploySection | None) -> PostprocessSettings:
    """Deploy-section overrides over the model's ``test_cfg`` (mmdet YOLOX defaults otherwise)."""
    test_cfg = settings.test_cfg
    nms = dict(test_cfg.get("nms") or {})
    if nms.get("type", "nms") != "nms":
        raise ConfigError(
            f"model config: 'model.test_cfg.nms.type' = {nms.get('type')!r} is not supported",
            hint="use nms=dict(type='nms', iou_threshold=...)",
        )
    sec = section or YOLOXDeploySection()
    score = sec.score_thr if sec.score_thr is not None else float(test_cfg.get("score_thr", 0.01))
    iou = sec.iou_threshold if sec.iou_threshold is not None else float(nms.get("iou_threshold", 0.65))
    max_det = sec.max_per_img if sec.max_per_img is not None else int(test_cfg.get("max_per_img", 100))
    if not (0.0 <= score < 1.0 and 0.0 < iou <= 1.0 and 1 <= max_det <= MAX_TOPK):
        raise ConfigError(
            f"model config: test_cfg score_thr={score}, iou_threshold={iou}, max_per_img={max_det} out of range",
            hint=f"need 0 <= score_thr < 1, 0 < iou_threshold <= 1, 1 <= max_per_img <= {MAX_TOPK}",
        )
    return PostprocessSettings(score, iou, max_det, sec.pre_nms)
