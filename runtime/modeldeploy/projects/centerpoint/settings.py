"""Typed view of a CenterPoint model config (mmdet3d vocabulary).

The model config is an mmengine config written exactly like an mmdet3d/AWML one
(``model = dict(type='CenterPoint', pts_voxel_encoder=dict(...), ...)``). Everything the
runtime needs besides the network modules — voxelization limits, grid, decoding and NMS
settings — is read here once, validated, and handed around as a frozen dataclass, so a
typo in the config fails early with a ``ConfigError`` instead of deep inside decoding.

The point features come from the config's test pipeline (``LoadPointsFromFile`` /
``LoadPointsFromMultiSweeps`` / ``PointsRangeFilter``, read by ``point_loading.py``); their
count must equal ``pts_voxel_encoder.in_channels``.

Accepted locations for the voxelization settings: mmdet3d v1.x
``model.data_preprocessor.voxel_layer`` or v0.x ``model.pts_voxel_layer``.
``max_voxels`` may be an int or a (train, test) pair; the runtime uses the test value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeldeploy.core.model_config import model_cfg_dict
from modeldeploy.errors import ConfigError
from modeldeploy.projects.centerpoint.point_loading import PointLoading, parse_point_loading

VOXEL_ENCODERS = ("PillarFeatureNet", "BackwardPillarFeatureNet")


@dataclass(frozen=True)
class CenterPointSettings:
    voxel_size: tuple[float, float, float]
    point_cloud_range: tuple[float, float, float, float, float, float]
    max_num_points: int
    max_voxels: int
    grid_size: tuple[int, int, int]  # (nx, ny, nz)
    point_loading: PointLoading  # how the info file's points become the model's features (point_loading.py)
    voxel_encoder_type: str
    in_channels: int  # raw point features fed to the encoder (len(point_loading.out_dims))
    with_cluster_center: bool
    with_voxel_center: bool
    voxel_center_dims: int  # 3 (PillarFeatureNet) or 2 (BackwardPillarFeatureNet)
    with_distance: bool
    legacy: bool
    decorated_channels: int
    pillar_channels: int
    output_shape: tuple[int, int]  # (ny, nx) of the BEV canvas
    class_names: tuple[str, ...]
    task_classes: tuple[tuple[str, ...], ...]
    out_size_factor: int
    norm_bbox: bool
    max_num: int
    score_threshold: float
    post_center_range: tuple[float, ...] | None
    nms_type: str  # circle | rotate
    min_radius: tuple[float, ...]
    post_max_size: int
    pre_max_size: int
    nms_thr: float

    @property
    def num_tasks(self) -> int:
        return len(self.task_classes)

    @property
    def task_num_classes(self) -> tuple[int, ...]:
        return tuple(len(t) for t in self.task_classes)

    @property
    def head_grid(self) -> tuple[int, int]:
        """(H, W) of the head outputs."""
        ny, nx = self.output_shape
        return ny // self.out_size_factor, nx // self.out_size_factor


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise ConfigError(
            f"model config: missing '{where}.{key}'", hint=f"add {key}=... to {where} (mmdet3d CenterPoint vocabulary)"
        )
    return d[key]


def _floats(v: Any, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != n:
        raise ConfigError(
            f"model config: '{where}' must be a list of {n} numbers, got {v!r}",
            hint=f"write {where}=[...] with {n} values",
        )
    try:
        return tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"model config: '{where}' must hold numbers, got {v!r}", hint="use plain floats") from None


def _model_dict(model_cfg: Any) -> Mapping[str, Any]:
    model = model_cfg.get("model") if isinstance(model_cfg, Mapping) or hasattr(model_cfg, "get") else None
    if model is None:
        raise ConfigError("model config has no 'model' dict", hint="write model = dict(type='CenterPoint', ...)")
    if model.get("type", "CenterPoint") not in ("CenterPoint", "CenterPointONNX"):
        raise ConfigError(
            f"model config: model.type={model.get('type')!r} is not CenterPoint",
            hint="use the centerpoint project only with CenterPoint configs",
        )
    return model


def _task_classes(tasks: Any, top_level: Any) -> tuple[tuple[str, ...], ...]:
    """Per-task class names. The head's labels index the tasks' names in order; AWML writes
    them from the top-level ``class_names``, which the evaluation and info-file label mapping
    use too, so the two must agree (a task without names takes its ``num_class`` from them)."""
    top = (
        tuple(str(c) for c in top_level) if isinstance(top_level, Sequence) and not isinstance(top_level, str) else None
    )
    out, used = [], 0
    for i, t in enumerate(tasks if isinstance(tasks, Sequence) else []):
        names = t.get("class_names") if isinstance(t, Mapping) else None
        if names is None and top is not None and isinstance(t, Mapping) and isinstance(t.get("num_class"), int):
            names = top[used : used + t["num_class"]]
        if not names:
            raise ConfigError(
                f"model config: pts_bbox_head.tasks[{i}] has no class_names",
                hint="tasks=[dict(num_class=5, class_names=[...])]",
            )
        out.append(tuple(str(c) for c in names))
        used += len(names)
    if not out:
        raise ConfigError(
            "model config: pts_bbox_head.tasks must list class_names",
            hint="tasks=[dict(num_class=5, class_names=[...])]",
        )
    flat = tuple(c for t in out for c in t)
    if top is not None and top != flat:
        raise ConfigError(
            f"model config: class_names {list(top)} differ from the head's task classes {list(flat)}",
            hint="write tasks=[dict(num_class=len(class_names), class_names=class_names)] as AWML does",
        )
    return tuple(out)


def parse_settings(model_cfg: Any) -> CenterPointSettings:
    """Read and cross-check the parts of the model config the runtime depends on."""
    model = _model_dict(model_cfg)
    dp = model.get("data_preprocessor") or {}
    voxel_layer = dp.get("voxel_layer") if isinstance(dp, Mapping) else None
    voxel_layer = voxel_layer or model.get("pts_voxel_layer")
    if not voxel_layer:
        raise ConfigError(
            "model config: no voxel layer settings",
            hint="add model.data_preprocessor.voxel_layer (or model.pts_voxel_layer)",
        )
    enc = _get(model, "pts_voxel_encoder", "model")
    voxel_size = _floats(voxel_layer.get("voxel_size", enc.get("voxel_size")), 3, "voxel_layer.voxel_size")
    pcr = voxel_layer.get("point_cloud_range", enc.get("point_cloud_range"))
    pcr = _floats(pcr, 6, "voxel_layer.point_cloud_range")
    max_points = int(_get(voxel_layer, "max_num_points", "voxel_layer"))
    mv = _get(voxel_layer, "max_voxels", "voxel_layer")
    max_voxels = int(mv[-1] if isinstance(mv, Sequence) else mv)
    if max_points < 1 or max_voxels < 1:
        raise ConfigError(
            f"model config: max_num_points={max_points}, max_voxels={mv!r} must be positive", hint="use positive limits"
        )
    grid = tuple(int(round((pcr[i + 3] - pcr[i]) / voxel_size[i])) for i in range(3))
    if min(grid) < 1:
        raise ConfigError(
            f"model config: point_cloud_range {pcr} with voxel_size {voxel_size} gives an empty grid {grid}",
            hint="range max must exceed min",
        )
    for i, nm in ((0, "x"), (1, "y")):
        if abs((pcr[i + 3] - pcr[i]) / voxel_size[i] - grid[i]) > 1e-3:
            raise ConfigError(
                f"model config: {nm} range {pcr[i]}..{pcr[i + 3]} is not a whole number of {voxel_size[i]} m voxels",
                hint="make (max - min) / voxel_size an integer",
            )

    etype = enc.get("type", "PillarFeatureNet")
    if etype not in VOXEL_ENCODERS:
        raise ConfigError(
            f"model config: pts_voxel_encoder.type={etype!r} is not supported", hint=f"use one of {VOXEL_ENCODERS}"
        )
    in_channels = int(enc.get("in_channels", 4))
    loading = parse_point_loading(model_cfg_dict(model_cfg), pcr)
    if len(loading.out_dims) != in_channels:
        raise ConfigError(
            f"model config: the loading pipeline ({loading.source}) gives {len(loading.out_dims)} point features (use_dim={list(loading.out_dims)}) "
            f"but pts_voxel_encoder.in_channels={in_channels}",
            hint="make the test pipeline's use_dim and in_channels agree",
        )
    wcc = bool(enc.get("with_cluster_center", True))
    wvc = bool(enc.get("with_voxel_center", True))
    wd = bool(enc.get("with_distance", False))
    vc_dims = 3 if etype == "PillarFeatureNet" else 2
    decorated = in_channels + (3 if wcc else 0) + (vc_dims if wvc else 0) + (1 if wd else 0)
    feat = enc.get("feat_channels", (64,))
    if not feat:
        raise ConfigError("model config: pts_voxel_encoder.feat_channels is empty", hint="e.g. feat_channels=[32, 32]")

    mid = _get(model, "pts_middle_encoder", "model")
    if mid.get("type", "PointPillarsScatter") != "PointPillarsScatter":
        raise ConfigError(
            f"model config: pts_middle_encoder.type={mid.get('type')!r} unsupported", hint="use PointPillarsScatter"
        )
    out_shape = tuple(int(x) for x in _get(mid, "output_shape", "pts_middle_encoder"))
    if out_shape != (grid[1], grid[0]):
        raise ConfigError(
            f"model config: pts_middle_encoder.output_shape={out_shape} but the voxel grid is (ny, nx)=({grid[1]}, {grid[0]})",
            hint="set output_shape to the grid from point_cloud_range / voxel_size",
        )
    if int(mid.get("in_channels", feat[-1])) != int(feat[-1]):
        raise ConfigError(
            f"model config: pts_middle_encoder.in_channels={mid.get('in_channels')} != last feat_channels {feat[-1]}",
            hint="make them agree",
        )

    head = _get(model, "pts_bbox_head", "model")
    tasks = _get(head, "tasks", "pts_bbox_head")
    task_classes = _task_classes(tasks, model_cfg.get("class_names") if hasattr(model_cfg, "get") else None)
    coder = head.get("bbox_coder") or {}
    test_cfg = ((model.get("test_cfg") or {}).get("pts")) or {}
    osf = int(coder.get("out_size_factor", test_cfg.get("out_size_factor", 1)))
    nms_type = str(test_cfg.get("nms_type", "circle"))
    if nms_type not in ("circle", "rotate"):
        raise ConfigError(f"model config: test_cfg.pts.nms_type={nms_type!r}", hint="use 'circle' or 'rotate'")
    mr = test_cfg.get("min_radius", [1.0] * len(task_classes))
    mr = tuple(float(x) for x in (mr if isinstance(mr, Sequence) else [mr] * len(task_classes)))
    if len(mr) < len(task_classes):
        raise ConfigError(
            f"model config: test_cfg.pts.min_radius has {len(mr)} entries for {len(task_classes)} tasks",
            hint="give one radius per task",
        )
    pcr_post = coder.get("post_center_range", test_cfg.get("post_center_limit_range"))
    score_thr = coder.get("score_threshold", test_cfg.get("score_threshold", 0.1))
    return CenterPointSettings(
        voxel_size=voxel_size,  # type: ignore[arg-type]
        point_cloud_range=pcr,  # type: ignore[arg-type]
        max_num_points=max_points,
        max_voxels=max_voxels,
        grid_size=grid,  # type: ignore[arg-type]
        point_loading=loading,
        voxel_encoder_type=etype,
        in_channels=in_channels,
        with_cluster_center=wcc,
        with_voxel_center=wvc,
        voxel_center_dims=vc_dims,
        with_distance=wd,
        legacy=bool(enc.get("legacy", True)),
        decorated_channels=decorated,
        pillar_channels=int(feat[-1]),
        output_shape=out_shape,
        class_names=tuple(c for t in task_classes for c in t),
        task_classes=task_classes,
        out_size_factor=osf,
        norm_bbox=bool(head.get("norm_bbox", True)),
        max_num=int(coder.get("max_num", 500)),
        score_threshold=float(score_thr) if score_thr is not None else 0.0,
        post_center_range=tuple(float(x) for x in pcr_post) if pcr_post is not None else None,
        nms_type=nms_type,
        min_radius=mr,
        post_max_size=int(test_cfg.get("post_max_size", 83)),
        pre_max_size=int(test_cfg.get("pre_max_size", 1000)),
        nms_thr=float(test_cfg.get("nms_thr", 0.2)),
    )
