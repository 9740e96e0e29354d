"""How CenterPoint's input points are built: the model config's loading pipeline, read once.

Why this module exists: a CenterPoint checkpoint only means something with the point
features it was trained on. AWML's T4 configs load 5 columns per point (x, y, z,
intensity, ring), merge the previous sweep(s) from the info file's ``lidar_sweeps`` and
keep ``lidar_sweep_dims=[0, 1, 2, 4]`` — column 4 then holds the time lag of the sweep
(0 for the key frame), not the ring. Reading ``(0, 1, 2, 3)`` instead silently feeds
intensity where the network expects time. So the runtime reads the same pipeline dicts
the model config's test dataloader uses and reproduces what they do:

``LoadPointsFromFile(coord_type='LIDAR', load_dim, use_dim, norm_intensity)``
    the key frame's ``.bin`` reshaped to ``load_dim`` columns, ``use_dim`` (an int n means
    ``range(n)``) selected.
``LoadPointsFromMultiSweeps(sweeps_num, load_dim, use_dim, pad_empty_sweeps, remove_close, test_mode)``
    (mmdet3d v1.x semantics) the key frame's column 4 is set to 0; the first
    ``sweeps_num`` entries of ``lidar_sweeps`` are loaded with ``load_dim`` columns, points
    with |x| < 1 m and |y| < 1 m dropped when ``remove_close``, moved into the key frame
    with the sweep's ``lidar_points.lidar2sensor`` exactly as mmdet3d v1.x does
    (``xyz @ L[:3, :3] - L[:3, 3]``), and column 4 set to ``key timestamp - sweep
    timestamp`` (seconds); an info entry without a ``lidar_sweeps`` key gets
    ``sweeps_num`` copies of the key frame when ``pad_empty_sweeps``; finally ``use_dim``
    is selected from the concatenation.
``PointsRangeFilter(point_cloud_range)``
    points strictly inside the range are kept.

Two facts about the sweep transform, read in mmdet3d v1.x and AWML (commit 7a6ec07c):
AWML's T4 converter writes ``lidar2sensor`` as the exact inverse of the sweep→key
transform ``[R | t]`` (``[Rᵀ | -Rᵀt]``), and mmdet3d v1.x's loader then computes
``R·p + Rᵀt`` — the exact ``R·p + t`` only when R = I or t = 0 (mmdet3d issue #3054,
fix PR #3007 still open). Training and AWML's own evaluation used that arithmetic, so
the runtime reproduces it: a deployment must feed what the model learned on. Infos in
the older layout (``sensor2lidar_rotation`` / ``sensor2lidar_translation`` on the sweep)
use mmdet3d v0.x's exact ``p @ Rᵀ + t``.

Test-time transforms that do not change the points (``Pack3DDetInputs``,
``LoadAnnotations3D``, the object filters…) are ignored; anything else is refused with a
ConfigError, because silently skipping a transform is exactly the failure this module
exists to prevent. Without any pipeline in the model config the AWML T4 defaults apply
and the project logs that it used them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modeldeploy.errors import ConfigError, DataError

# Test-time transforms that leave the points alone (annotations, packing, GT-only filters).
_POINT_NEUTRAL = frozenset(
    {
        "Pack3DDetInputs",
        "LoadAnnotations3D",
        "ObjectRangeFilter",
        "ObjectNameFilter",
        "ObjectMinPointsFilter",
        "ObjectRangeMinPointsFilter",
        "DefaultFormatBundle3D",
        "Collect3D",
        "PointShuffle",
    }
)
_SUPPORTED = (
    "LoadPointsFromFile",
    "LoadPointsFromMultiSweeps",
    "PointsRangeFilter",
    "MultiScaleFlipAug3D",
    *sorted(_POINT_NEUTRAL),
)
REMOVE_CLOSE_RADIUS = 1.0  # mmdet3d's default radius for remove_close
MAX_TIME_LAG_S = 10.0  # sweeps are tenths of a second apart; more means timestamps are not in seconds


@dataclass(frozen=True)
class SweepLoading:
    sweeps_num: int
    load_dim: int
    use_dim: tuple[int, ...]
    pad_empty_sweeps: bool
    remove_close: bool
    test_mode: bool


@dataclass(frozen=True)
class PointLoading:
    """What the model config's loading pipeline does to one info entry's points."""

    load_dim: int | None  # None: the info file's lidar_points.num_pts_feats (configs with only point_use_dims)
    use_dim: tuple[int, ...]
    norm_intensity: bool = False
    sweeps: SweepLoading | None = None
    range_filter: tuple[float, ...] | None = None
    source: str = "model config"

    @property
    def out_dims(self) -> tuple[int, ...]:
        """The feature columns the model receives, as indices of the merged array."""
        return self.sweeps.use_dim if self.sweeps else self.use_dim

    @property
    def max_load_dim(self) -> int:
        return max(self.load_dim or 0, self.sweeps.load_dim if self.sweeps else 0)

    def describe(self) -> str:
        sw = (
            (
                f", {self.sweeps.sweeps_num} sweep(s) (load_dim={self.sweeps.load_dim}, use_dim={list(self.sweeps.use_dim)}, "
                f"remove_close={self.sweeps.remove_close}, pad_empty_sweeps={self.sweeps.pad_empty_sweeps})"
            )
            if self.sweeps
            else ", no sweeps"
        )
        return f"points from {self.source}: load_dim={self.load_dim}, use_dim={list(self.use_dim)}{sw}"


def awml_default(point_cloud_range: Sequence[float] | None = None) -> PointLoading:
    """AWML's T4 CenterPoint test pipeline (base/1.x and 2.x configs, commit 7a6ec07c)."""
    return PointLoading(
        load_dim=5,
        use_dim=(0, 1, 2, 3, 4),
        sweeps=SweepLoading(
            sweeps_num=1, load_dim=5, use_dim=(0, 1, 2, 4), pad_empty_sweeps=True, remove_close=True, test_mode=True
        ),
        range_filter=tuple(float(v) for v in point_cloud_range) if point_cloud_range is not None else None,
        source="AWML's T4 defaults (the model config has no test pipeline)",
    )


def from_use_dims(use_dims: Sequence[int], load_dim: int | None = None, source: str = "point_use_dims") -> PointLoading:
    """Key frame only, columns ``use_dims`` (load_dim None: the info file's num_pts_feats)."""
    return PointLoading(load_dim=load_dim, use_dim=tuple(int(d) for d in use_dims), source=source)


def _err(where: str, msg: str, hint: str) -> ConfigError:
    return ConfigError(f"model config: {where}: {msg}", hint=hint)


def _dims(value: Any, where: str, key: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise _err(
            where,
            f"{key}={value!r} is not a column list",
            hint=f"write {key}=[0, 1, 2, ...] or an int n for the first n columns",
        )
    if isinstance(value, int) and value > 0:
        return tuple(range(value))
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return tuple(value)
    raise _err(
        where,
        f"{key}={value!r} is not a column list",
        hint=f"write {key}=[0, 1, 2, ...] or an int n for the first n columns",
    )


def _int(t: Mapping[str, Any], key: str, default: int, where: str, minimum: int) -> int:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _err(where, f"{key}={v!r} must be an integer >= {minimum}", hint=f"fix {key}")
    return v


def find_test_pipeline(cfg: Mapping[str, Any]) -> tuple[list[Any] | None, str]:
    """The pipeline the model was evaluated with: test dataloader first (what mmengine's
    test loop runs), then the top-level ``test_pipeline``, then the val equivalents."""
    for loader_key, top_key in (("test_dataloader", "test_pipeline"), ("val_dataloader", "val_pipeline")):
        ds = (cfg.get(loader_key) or {}).get("dataset") if isinstance(cfg.get(loader_key), Mapping) else None
        path = f"{loader_key}.dataset"
        while isinstance(ds, Mapping):  # wrappers (RepeatDataset, CBGSDataset, ConcatDataset) nest the real one
            if ds.get("pipeline") is not None:
                return list(ds["pipeline"]), f"{path}.pipeline"
            if isinstance(ds.get("dataset"), Mapping):
                ds, path = ds["dataset"], f"{path}.dataset"
            elif isinstance(ds.get("datasets"), Sequence) and ds["datasets"]:
                ds, path = ds["datasets"][0], f"{path}.datasets[0]"
            else:
                break
        if cfg.get(top_key) is not None:
            return list(cfg[top_key]), top_key
    return None, ""


def parse_point_loading(cfg: Mapping[str, Any], point_cloud_range: Sequence[float] | None = None) -> PointLoading:
    """The model config's point loading, refusing what the runtime cannot reproduce."""
    pipeline, where = find_test_pipeline(cfg)
    if pipeline is None:
        if cfg.get("point_use_dims") is not None:  # this project's own earlier vocabulary
            return from_use_dims(
                _dims(cfg["point_use_dims"], "point_use_dims", "point_use_dims"),
                cfg.get("point_load_dim"),
                source="point_use_dims (no test pipeline)",
            )
        return awml_default(point_cloud_range)
    return _parse_transforms(pipeline, where)


def _parse_transforms(pipeline: list[Any], where: str) -> PointLoading:
    spec: PointLoading | None = None
    for i, t in enumerate(_flatten(pipeline, where)):
        at = f"{where}[{i}]"
        typ = t.get("type")
        if typ == "LoadPointsFromFile":
            if spec is not None:
                raise _err(at, "a second LoadPointsFromFile", hint="load the key frame once")
            if str(t.get("coord_type", "")).upper() != "LIDAR":
                raise _err(
                    at,
                    f"LoadPointsFromFile.coord_type={t.get('coord_type')!r}; CenterPoint runs on LiDAR points",
                    hint="use coord_type='LIDAR'",
                )
            for flag in ("shift_height", "use_color"):
                if t.get(flag):
                    raise _err(
                        at,
                        f"LoadPointsFromFile.{flag}=True is not supported by the centerpoint runtime",
                        hint=f"remove {flag}",
                    )
            load_dim = _int(t, "load_dim", 6, at, 3)  # mmdet3d's defaults: load_dim=6, use_dim=[0, 1, 2]
            use_dim = _dims(t.get("use_dim", [0, 1, 2]), at, "LoadPointsFromFile.use_dim")
            if max(use_dim) >= load_dim:
                raise _err(
                    at,
                    f"LoadPointsFromFile.use_dim={list(use_dim)} needs columns the load_dim={load_dim} points do not have",
                    hint="make every use_dim < load_dim",
                )
            norm = bool(t.get("norm_intensity", False))
            if norm and len(use_dim) < 4:
                raise _err(
                    at,
                    "norm_intensity=True needs an intensity column (use_dim with >= 4 columns)",
                    hint="add column 3 to use_dim",
                )
            spec = PointLoading(load_dim=load_dim, use_dim=use_dim, norm_intensity=norm, source=where)
        elif typ == "LoadPointsFromMultiSweeps":
            if spec is None:
                raise _err(at, "LoadPointsFromMultiSweeps before LoadPointsFromFile", hint="load the key frame first")
            if spec.sweeps is not None:
                raise _err(at, "a second LoadPointsFromMultiSweeps", hint="merge sweeps once")
            sw_load = _int(t, "load_dim", 5, at, 5)
            sw_use = _dims(t.get("use_dim", [0, 1, 2, 4]), at, "LoadPointsFromMultiSweeps.use_dim")
            if max(sw_use) >= sw_load:
                raise _err(
                    at,
                    f"LoadPointsFromMultiSweeps.use_dim={list(sw_use)} needs columns the load_dim={sw_load} sweep points do not have",
                    hint="make every use_dim < load_dim",
                )
            if len(spec.use_dim) != sw_load:
                raise _err(
                    at,
                    f"the key frame keeps {len(spec.use_dim)} columns (LoadPointsFromFile.use_dim={list(spec.use_dim)}) but sweeps are loaded "
                    f"with load_dim={sw_load}; mmdet3d concatenates them, so they must agree",
                    hint=f"set LoadPointsFromFile.use_dim={sw_load} (AWML: use_dim=point_load_dim)",
                )
            spec = replace(
                spec,
                sweeps=SweepLoading(
                    sweeps_num=_int(t, "sweeps_num", 10, at, 0),
                    load_dim=sw_load,
                    use_dim=sw_use,
                    pad_empty_sweeps=bool(t.get("pad_empty_sweeps", False)),
                    remove_close=bool(t.get("remove_close", False)),
                    test_mode=bool(t.get("test_mode", False)),
                ),
            )
        elif typ == "PointsRangeFilter":
            pcr = t.get("point_cloud_range")
            if not isinstance(pcr, Sequence) or len(pcr) != 6:
                raise _err(
                    at,
                    f"PointsRangeFilter.point_cloud_range={pcr!r} must be 6 numbers",
                    hint="use the model's point_cloud_range",
                )
            if spec is None:
                raise _err(at, "PointsRangeFilter before LoadPointsFromFile", hint="load the points first")
            spec = replace(spec, range_filter=tuple(float(v) for v in pcr))
        elif typ not in _POINT_NEUTRAL:
            raise _err(
                at,
                f"test pipeline transform {typ!r} is not reproduced by the centerpoint runtime",
                hint=f"use only {', '.join(_SUPPORTED)}",
            )
    if spec is None:
        raise _err(
            where,
            "the test pipeline has no LoadPointsFromFile",
            hint="add dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5)",
        )
    return spec


def _flatten(pipeline: list[Any], where: str) -> list[Mapping[str, Any]]:
    """Unwrap a test-time ``MultiScaleFlipAug3D`` that neither flips nor rescales."""
    out: list[Mapping[str, Any]] = []
    for i, t in enumerate(pipeline):
        if not isinstance(t, Mapping) or not isinstance(t.get("type"), str):
            raise _err(
                f"{where}[{i}]", f"pipeline entry {t!r} is not a dict with a 'type'", hint="write dict(type=..., ...)"
            )
        if t["type"] != "MultiScaleFlipAug3D":
            out.append(t)
            continue
        scales = t.get("pts_scale_ratio", 1)
        scales = list(scales) if isinstance(scales, Sequence) else [scales]
        if t.get("flip") or any(float(v) != 1.0 for v in scales):
            raise _err(
                f"{where}[{i}]",
                "MultiScaleFlipAug3D with flip or scale test-time augmentation is not supported",
                hint="set flip=False, pts_scale_ratio=1",
            )
        for j, inner in enumerate(t.get("transforms") or []):
            at = f"{where}[{i}].transforms[{j}]"
            if not isinstance(inner, Mapping):
                raise _err(at, f"entry {inner!r} is not a dict", hint="write dict(type=..., ...)")
            if inner.get("type") == "RandomFlip3D":
                continue  # inside MultiScaleFlipAug3D the flip flags come from the wrapper (flip=False here)
            if inner.get("type") == "GlobalRotScaleTrans":
                if (
                    any(float(v) != 0.0 for v in inner.get("rot_range", [0, 0]))
                    or any(float(v) != 1.0 for v in inner.get("scale_ratio_range", [1, 1]))
                    or any(float(v) != 0.0 for v in inner.get("translation_std", [0, 0, 0]))
                ):
                    raise _err(
                        at,
                        "GlobalRotScaleTrans at test time must be the identity",
                        hint="rot_range=[0, 0], scale_ratio_range=[1.0, 1.0], translation_std=[0, 0, 0]",
                    )
                continue
            out.append(inner)
    return out


# --------------------------------------------------------------------------- points


def remove_close(points: np.ndarray, radius: float = REMOVE_CLOSE_RADIUS) -> np.ndarray:
    """mmdet3d's ``_remove_close``: a square (not a disc) around the sensor, x and y only."""
    close = (np.abs(points[:, 0]) < radius) & (np.abs(points[:, 1]) < radius)
    return points[~close]


def _matrix(value: Any, what: str, where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.size == 0 or not np.isfinite(m).all():
        raise DataError(
            f"{where}: {what} is not a finite numeric matrix",
            hint="regenerate the info file (mmdet3d v1.x / AWML T4 converter)",
        )
    return m


def sweep_to_key_frame(xyz: np.ndarray, sweep: Mapping[str, Any], where: str) -> np.ndarray:
    """Sweep-sensor xyz → key-frame xyz, with the arithmetic of the loader the info's layout belongs to."""
    raw_lp = sweep.get("lidar_points")
    lp: Mapping[str, Any] = raw_lp if isinstance(raw_lp, Mapping) else {}
    if lp.get("lidar2sensor") is not None:  # mmdet3d v1.x / AWML T4: xyz @ L[:3, :3] - L[:3, 3]
        m = _matrix(lp["lidar2sensor"], "lidar_points.lidar2sensor", where)
        if m.ndim != 2 or m.shape[1] != 4 or m.shape[0] not in (3, 4):
            raise DataError(
                f"{where}: lidar_points.lidar2sensor has shape {m.shape}, expected 4x4", hint="regenerate the info file"
            )
        rotated = (xyz.astype(np.float64) @ m[:3, :3]).astype(np.float32)
        return (rotated.astype(np.float64) - m[:3, 3]).astype(np.float32)
    if (
        sweep.get("sensor2lidar_rotation") is not None and sweep.get("sensor2lidar_translation") is not None
    ):  # mmdet3d v0.x infos
        r = _matrix(sweep["sensor2lidar_rotation"], "sensor2lidar_rotation", where)
        t = _matrix(sweep["sensor2lidar_translation"], "sensor2lidar_translation", where).reshape(-1)
        if r.shape != (3, 3) or t.shape != (3,):
            raise DataError(
                f"{where}: sensor2lidar_rotation/translation have shapes {r.shape}/{t.shape}, expected (3, 3)/(3,)",
                hint="regenerate the info file",
            )
        return (xyz.astype(np.float64) @ r.T + t).astype(np.float32)
    raise DataError(
        f"{where}: the sweep has no lidar_points.lidar2sensor (nor sensor2lidar_rotation/translation) to move it into the key frame",
        hint="regenerate the info file with AWML's T4 converter (it writes lidar_sweeps[].lidar_points.lidar2sensor)",
    )


def choose_sweeps(num_available: int, spec: SweepLoading) -> list[int]:
    """The sweeps mmdet3d's test mode takes: all when there are at most ``sweeps_num``,
    else the first ``sweeps_num`` (nearest in time). Training mode would sample randomly;
    a deployment stays deterministic and takes test mode's choice."""
    return list(range(min(num_available, spec.sweeps_num)))


@dataclass(frozen=True)
class SweepPoints:
    points: np.ndarray  # [M, sweep load_dim] float32, in the sweep sensor's frame
    info: Mapping[str, Any]  # the lidar_sweeps entry (transform, timestamp)
    where: str


def merge_points(
    key_raw: np.ndarray,
    spec: PointLoading,
    key_timestamp: float | None,
    sweeps: Sequence[SweepPoints] | None,
    where: str = "sample",
) -> np.ndarray:
    """Key frame [N, load_dim] (+ its chosen sweeps) → the model's point features, float32.

    ``sweeps`` None means the info entry has no ``lidar_sweeps`` key (mmdet3d then pads
    with copies of the key frame when ``pad_empty_sweeps``); an empty list means none."""
    key = np.array(key_raw[:, list(spec.use_dim)], dtype=np.float32)
    if spec.norm_intensity:
        key[:, 3] = np.tanh(key[:, 3])
    sw = spec.sweeps
    if sw is None:
        out = key
    else:
        key[:, 4] = 0.0
        parts = [key]
        if sweeps is None:
            if sw.pad_empty_sweeps:
                parts += [remove_close(key) if sw.remove_close else key] * sw.sweeps_num
        elif sweeps:
            if key_timestamp is None:
                raise DataError(
                    f"{where}: the frame has lidar_sweeps but no 'timestamp'",
                    hint="add the key frame's timestamp in seconds (mmdet3d v1.x infos)",
                )
            for s in sweeps:
                p = np.array(s.points, dtype=np.float32)
                if sw.remove_close:
                    p = remove_close(p)
                p[:, :3] = sweep_to_key_frame(p[:, :3], s.info, s.where)
                try:
                    lag = float(key_timestamp) - float(s.info["timestamp"])
                except (KeyError, TypeError, ValueError):
                    raise DataError(
                        f"{s.where}: the sweep has no numeric 'timestamp'",
                        hint="add the sweep's timestamp in seconds (mmdet3d v1.x infos)",
                    ) from None
                if not math.isfinite(lag) or abs(lag) > MAX_TIME_LAG_S:
                    raise DataError(
                        f"{s.where}: time lag {lag} s between the key frame and this sweep; sweeps are at most a few seconds old, "
                        "so the timestamps are not in seconds",
                        hint="write timestamps in seconds (mmdet3d v1.x infos divide T4 microseconds by 1e6)",
                    )
                p[:, 4] = lag
                parts.append(p)
        out = np.concatenate(parts)[:, list(sw.use_dim)]
    if spec.range_filter is not None:
        r = spec.range_filter
        inside = (
            (out[:, 0] > r[0])
            & (out[:, 1] > r[1])
            & (out[:, 2] > r[2])
            & (out[:, 0] < r[3])
            & (out[:, 1] < r[4])
            & (out[:, 2] < r[5])
        )
        out = out[inside]
    return np.ascontiguousarray(out)
