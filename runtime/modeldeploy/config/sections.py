"""Typed sections of a deploy config (the AWML vocabulary), validated at load time.

Every model forbids unknown keys: a typo is an error with a suggestion, not a silently
ignored setting. Cross-field rules that need more than one section live in
``deploy_config.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from modeldeploy.config.parse import did_you_mean
from modeldeploy.core.backend_registry import backend_names

ExportMode = Literal["onnx", "trt", "both", "none"]
PrecisionPolicy = Literal["auto", "fp16", "fp32_tf32", "explicit_int8", "strongly_typed"]


def _known_backend(name: str) -> str:
    known = backend_names()  # the built-ins plus any registered one (core/backend.py)
    if name not in known:
        raise ValueError(f"unknown backend {name!r}; {did_you_mean(name, known)}use one of {', '.join(known)}")
    return name


BackendName = Annotated[str, AfterValidator(_known_backend)]
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def normalize_device(value: str) -> str:
    v = str(value).strip().lower()
    if not _DEVICE_RE.match(v):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")
    return v


def _policy(check: Callable[[], object]) -> None:
    """An output-location check (uri_policy's ConfigError) as a field error, fix included."""
    from modeldeploy.errors import ConfigError

    try:
        check()
    except ConfigError as exc:
        raise ValueError(f"{exc.message} — {exc.hint}") from None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ExportSection(Section):
    mode: ExportMode = "onnx"
    verify: bool = True
    device: str = "cpu"
    work_dir: str = "work_dirs"
    artifact_uri: str | None = None
    onnx_path: str | None = None  # trt-only: build engines from these existing ONNX files

    _dev = field_validator("device")(classmethod(lambda cls, v: normalize_device(v)))

    # No '..' in URIs, no system or unlisted directories as outputs (artifacts/uri_policy.py);
    # one validator per key, so an error names it (and a --work-dir / --artifact-uri flag).
    @field_validator("work_dir")
    @classmethod
    def _safe_work_dir(cls, v: str) -> str:
        from modeldeploy.artifacts.uri_policy import check_local_output

        _policy(lambda: check_local_output(Path(v), what="work dir", work_dir=Path(v)))
        return v

    @field_validator("artifact_uri")
    @classmethod
    def _safe_artifact_uri(cls, v: str | None, info: ValidationInfo) -> str | None:
        from modeldeploy.artifacts.uri_policy import check_artifact_uri

        wd = info.data.get("work_dir")
        if v and wd is not None:  # no work_dir here: its own error is already reported
            _policy(lambda: check_artifact_uri(v, work_dir=Path(wd).expanduser().resolve()))
        return v

    @property
    def output_dir(self) -> Path:
        """The work dir, resolved (``_safe_work_dir`` checked it is an allowed output location)."""
        return Path(self.work_dir).expanduser().resolve()

    @property
    def publish_uri(self) -> str:
        """Where a run publishes: ``artifact_uri`` (file, ``--cfg-options`` or ``--artifact-uri``:
        one key, merged once), else the work dir itself. The one place these are ranked."""
        return self.artifact_uri or str(self.output_dir)

    @property
    def should_export_onnx(self) -> bool:
        return self.mode in ("onnx", "both")

    @property
    def should_export_tensorrt(self) -> bool:
        return self.mode in ("trt", "both")


class RuntimeIOSection(Section):
    info_file: str | None = None
    data_root: str | None = None
    sample_idx: int = Field(0, ge=0)


class AdditionalIO(Section):
    name: str
    shape: tuple[int, ...] = ()
    dtype: Literal["float32", "float16", "int32", "int64", "bool"] = "float32"


class ModelIOSection(Section):
    input_name: str = "input"
    input_shape: tuple[int, ...] = ()
    input_dtype: Literal["float32", "float16", "int32", "int64"] = "float32"
    additional_inputs: tuple[AdditionalIO, ...] = ()
    output_name: str = "output"
    additional_outputs: tuple[str, ...] = ()
    batch_size: int | None = Field(None, ge=1)
    dynamic_axes: dict[str, dict[int, str]] | None = None

    @model_validator(mode="after")
    def _batch_xor_dynamic(self) -> ModelIOSection:
        if self.batch_size is not None and self.dynamic_axes:
            raise ValueError("set batch_size (fixed batch) OR dynamic_axes (dynamic shapes), not both")
        return self


class ONNXConfigSection(Section):
    opset_version: int = Field(17, ge=11, le=23)
    do_constant_folding: bool = True
    export_params: bool = True
    keep_initializers_as_inputs: bool = False
    save_file: str = "model.onnx"
    decode_in_inference: bool = True
    exporter: Literal["legacy", "dynamo"] = "legacy"
    external_data: bool = False

    @field_validator("save_file")
    @classmethod
    def _onnx_suffix(cls, v: str) -> str:
        if not v.endswith(".onnx") or "/" in v:
            raise ValueError(f"save_file must be a file name ending in .onnx, got {v!r}")
        return v


class ShapeRange(Section):
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    @model_validator(mode="after")
    def _ordered(self) -> ShapeRange:
        if not (len(self.min_shape) == len(self.opt_shape) == len(self.max_shape)):
            raise ValueError("min_shape, opt_shape and max_shape must have the same rank")
        for lo, mid, hi in zip(self.min_shape, self.opt_shape, self.max_shape):
            if not (1 <= lo <= mid <= hi):
                raise ValueError(
                    f"need 1 <= min <= opt <= max in every dimension, got {self.min_shape}/{self.opt_shape}/{self.max_shape}"
                )
        return self


class TRTProfile(Section):
    component: str | None = None  # None: the model's only component
    input_shapes: dict[str, ShapeRange]


class QuantizationSection(Section):
    calibration_samples: int = Field(32, ge=1)
    calibrate_method: Literal["MinMax", "Entropy", "Percentile"] = "MinMax"
    per_channel: bool = True
    tool: Literal["onnxruntime", "modelopt"] = "onnxruntime"


class TRTCommonConfig(Section):
    precision_policy: PrecisionPolicy = "auto"
    max_workspace_size: int = Field(1 << 30, ge=1 << 20)
    builder_optimization_level: int | None = Field(None, ge=0, le=5)
    timing_cache: bool = True
    engine_cache: bool = True
    cuda_graph: bool = False


class BackendConfigSection(Section):
    type: Literal["tensorrt"] = "tensorrt"
    common_config: TRTCommonConfig = TRTCommonConfig()
    model_inputs: tuple[TRTProfile, ...] = ()
    quantization: QuantizationSection = QuantizationSection()


class Scenario(Section):
    ref_backend: BackendName
    ref_device: str
    test_backend: BackendName
    test_device: str
    # the test side's precision variant (e.g. onnxruntime 'fp16': the fp16 graph checked against
    # the fp32 reference); None: fp32, as before
    test_precision: Literal["fp32", "fp16"] | None = None

    _dev = field_validator("ref_device", "test_device")(classmethod(lambda cls, v: normalize_device(v)))


TOLERANCE_MAX = 1e3  # docs/contracts.md: the CRD's spec.verification.tolerance uses the same bounds


class VerificationGate(Section):
    """Regression limits beyond the per-element tolerance (exit 3, RegressionDetected)."""

    max_mean_abs_diff: float | None = Field(
        None, gt=0, allow_inf_nan=False
    )  # systematic drift the max-based tolerance misses


class BaselineGate(Section):
    """Limits against an earlier run's results.json (exit 3, RegressionDetected); None = off.

    Why a second reference: ``max_metric_drop`` compares the backends of ONE run, so a worse
    checkpoint or config (every backend degraded alike) passes it. The operator names the
    last succeeded generation of a ModelDeployment here (``--baseline``); without a
    ``uri`` (a first generation) the baseline gate passes and says so in the log.
    """

    uri: str | None = None  # results.json, a run dir, a publication root (current.json) or s3://…
    max_metric_drop: float | None = Field(None, ge=0, allow_inf_nan=False)  # per backend, absolute, vs the baseline
    max_latency_ratio: float | None = Field(None, gt=0, allow_inf_nan=False)  # latency p50 new / baseline

    @property
    def limits_set(self) -> bool:
        return self.max_metric_drop is not None or self.max_latency_ratio is not None


class EvaluationGate(Section):
    """Regression limits on each evaluated backend (exit 3, RegressionDetected); None = off."""

    reference: BackendName = "pytorch"  # the headline metric of every other backend is compared with this one's
    max_metric_drop: float | None = Field(None, ge=0, allow_inf_nan=False)  # absolute, e.g. 0.01 = one accuracy point
    max_latency_ms: float | None = Field(None, gt=0, allow_inf_nan=False)  # on latency p50
    max_cv: float | None = Field(
        None, gt=0, allow_inf_nan=False
    )  # latency std/mean: flags a noisy (shared, throttled) node
    baseline: BaselineGate = BaselineGate()  # the same backends of an earlier run (e.g. the last good generation)


class VerificationSection(Section):
    enabled: bool = True
    num_verify_samples: int = Field(3, ge=1)
    # finite and bounded, from a file or --cfg-options alike: an inf tolerance could never fail
    tolerance: float = Field(1e-3, gt=0, le=TOLERANCE_MAX, allow_inf_nan=False)
    allow_nonfinite: tuple[str, ...] = ()  # output names whose NaN/Inf must match instead of failing
    scenarios: dict[ExportMode, tuple[Scenario, ...]] = {}
    gate: VerificationGate = VerificationGate()


CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
#: The speed options each built-in backend reads (issue #16); deploy_config refuses one set on
#: a backend that would ignore it. Precisions a backend evaluates in (int8 is onnxruntime's
#: variant chosen by precision_policy='explicit_int8', not by this key).
BACKEND_OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "pytorch": ("channels_last", "cuda_graph", "compile_mode", "compile_cache_dir"),
    "onnxruntime": ("cuda_graph", "channels_last"),
    "tensorrt": ("cuda_graph",),
}
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {"pytorch": ("fp32", "fp16"), "onnxruntime": ("fp32", "fp16")}


class BackendEvalSection(Section):
    enabled: bool = True
    device: str | None = None  # default: export.device
    model_dir: str | None = None  # None: the artifacts exported by this run
    # pytorch: fp32|fp16 (autocast on CUDA, real fp16 weights with a speed option below);
    # onnxruntime: fp32|fp16 (an fp16 graph converted from this run's ONNX, CUDA EP); tensorrt: informational
    precision: str | None = None
    # Speed options (backends/pytorch.py, backends/onnxruntime.py); BACKEND_OPTION_KEYS says which backend reads which.
    channels_last: bool = False  # pytorch: NHWC module and 4-D inputs; onnxruntime (CUDA EP): prefer_nhwc
    cuda_graph: bool | None = None  # capture fixed shapes once, replay (tensorrt: overrides common_config.cuda_graph)
    compile_mode: CompileMode | None = None  # pytorch: torch.compile(mode=...)
    compile_cache_dir: str | None = (
        None  # pytorch: Inductor/Triton cache; relative to export.work_dir; default <work_dir>/compile_cache
    )

    def options_set(self) -> list[str]:
        """The speed options this section sets (for the per-backend check)."""
        return [k for k in ("channels_last", "cuda_graph", "compile_mode", "compile_cache_dir") if getattr(self, k)]

    @field_validator("device")
    @classmethod
    def _dev(cls, v: str | None) -> str | None:
        return None if v is None else normalize_device(v)


class EvaluationSection(Section):
    enabled: bool = True
    num_samples: int = Field(-1, ge=-1)  # -1: the whole dataset
    verbose: bool = False
    warmup: int = Field(3, ge=0)
    backends: dict[BackendName, BackendEvalSection] = {}
    gate: EvaluationGate = EvaluationGate()
