"""results.json as types: what a run writes and what every reader reads (docs/contracts.md §2).

Why one module of models: the document is built by verification, evaluation and the runner
and read by compare, the reports, the gates and the termination summary. Spelled as string
keys in each of them, a renamed key broke a reader silently; typed, mypy and pydantic catch
it, and the JSON Schema in docs/results.schema.json is generated from these classes
(``scripts/results_schema.py``) instead of being written by hand.

Reading is lenient, writing is strict:
- every model keeps keys it does not know (``extra="allow"``), so a newer file still loads and
  a file round-trips unchanged; fields that schema_version 1 files did not always carry have
  defaults, so ``modeldeploy compare`` still reads results.json written by older versions;
- the generated schema describes what a run writes now (serialization mode: a field with a
  default is still required there, except the ones a writer omits when they do not apply).

NaN is never a number here either: models keep a NaN as it came (nothing turns it into
``null`` quietly); the runner finds it (``verification.finite.sanitize_nonfinite`` on
``to_dict()``), fails the run and writes ``null``; ``to_json`` refuses to write one at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, SerializerFunctionWrapHandler, model_serializer
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema

SCHEMA_VERSION: Literal[1] = 1
SCHEMA_ID = "https://modeldeploy.dev/schemas/results.schema.json"

Stage = Literal[
    "config", "preflight", "load", "export_onnx", "export_tensorrt", "verify", "evaluate", "gate", "results", "upload"
]
# Backend keys are <backend>:<device type>; the registry may add backends, so this is the
# documented contract for the built-in ones (schema only), not a check on reading.
BACKEND_LABEL = r"^(pytorch|onnxruntime|onnxruntime-int8|onnxruntime-fp16|tensorrt):(cpu|cuda)$"
SHA256 = r"^[0-9a-f]{64}$"


class ResultsModel(BaseModel):
    """Base of every part of results.json: unknown keys kept, NaN kept (found by the writer),
    fields listed in ``_omit_when_none`` left out of the JSON when they do not apply."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        protected_namespaces=(),
        json_schema_serialization_defaults_required=True,
        ser_json_inf_nan="constants",
    )
    _omit_when_none: ClassVar[frozenset[str]] = frozenset()

    # No return annotation on purpose: pydantic would take it as the serialized schema and the
    # generated JSON Schema would lose every field.
    @model_serializer(mode="wrap")
    def _drop_absent(self, handler: SerializerFunctionWrapHandler):
        out: dict[str, Any] = handler(self)
        for key in self._omit_when_none:
            if out.get(key, 0) is None:
                del out[key]
        return out

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        for key in cls._omit_when_none:  # left out when absent: optional, and never null when present
            if key in target.get("required", []):
                target["required"].remove(key)
            prop = target.get("properties", {}).get(key, {})
            options = [o for o in prop.pop("anyOf", []) if o != {"type": "null"}]
            if len(options) == 1:
                prop.update(options[0])
            elif options:
                prop["anyOf"] = options
            prop.pop("default", None)
        return schema

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as a dict (NaN still in it: the writer finds and replaces it)."""
        out: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return out


# ---------------------------------------------------------------------------- run metadata
class Failure(ResultsModel):
    stage: Stage
    reason: str = Field(
        json_schema_extra={"pattern": "^[A-Z][A-Za-z0-9]*$"},
        description="CamelCase code, e.g. ConfigError, VerificationFailed, RegressionDetected",
    )
    message: str = Field(description="one line: the problem and the fix, secret values scrubbed")


class RunInfo(ResultsModel):
    """What identifies the run."""

    id: str = Field(json_schema_extra={"pattern": "^[A-Za-z0-9._-]+$"})
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    modeldeploy: str = Field(description="package version")


class InputFile(ResultsModel):
    path: str
    sha256: str | None = Field(json_schema_extra={"pattern": SHA256})


class Inputs(ResultsModel):
    """The inputs as the user named them (builtin:/s3:// URIs kept), with their sha256."""

    deploy_config: InputFile | None = None
    model_cfg: InputFile | None = Field(None, alias="model_config")
    checkpoint: InputFile | None = None


class Environment(ResultsModel):
    """Library versions and the accelerator; null where absent (no TensorRT, no GPU)."""

    torch: str | None = None
    onnx: str | None = None
    onnxruntime: str | None = None
    tensorrt: str | None = None
    gpu: str | dict[str, Any] | None = None
    cuda: str | None = None


class Artifact(ResultsModel):
    _omit_when_none = frozenset({"uri"})

    name: str = Field(description="path relative to the run prefix, e.g. onnx/model.onnx")
    kind: str = Field(description="onnx, onnx_data, engine, predictions, latency, curves, log, …")
    uri: str | None = None
    sha256: str = Field(pattern=SHA256)
    bytes: int = Field(ge=0)


class TensorRTBuild(ResultsModel):
    """What one engine was built as (TensorRT runs only)."""

    _omit_when_none = frozenset(
        {"cache_hit", "cache_source", "precision", "build_seconds", "tensorrt", "compute_capability"}
    )

    cache_hit: bool | None = None
    cache_source: str | None = None
    precision: str | None = None
    build_seconds: float | None = None
    tensorrt: str | None = None
    compute_capability: str | None = None


# ---------------------------------------------------------------------------- verification
class NonFiniteCounts(ResultsModel):
    reference: int = 0
    test: int = 0


class OutputComparison(ResultsModel):
    """One (reference, test, output): the worst case over the verified samples."""

    _omit_when_none = frozenset({"nonfinite", "sample_max_abs_diff"})

    reference: str = Field(json_schema_extra={"pattern": BACKEND_LABEL})
    test: str = Field(json_schema_extra={"pattern": BACKEND_LABEL})
    output: str
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    max_rel_diff: float | None = None
    passed: bool
    reason: str | None = Field(None, description="why it failed, e.g. ToleranceExceeded, ShapeMismatch, NonFinite")
    samples: int = Field(0, ge=0)
    sample_max_abs_diff: list[float | None] | None = Field(
        None, description="per sample (small: num_verify_samples), for the report's error histogram"
    )
    nonfinite: NonFiniteCounts | None = Field(None, description="NaN/Inf element counts, when any")


class PredictionComparison(ResultsModel):
    """Final predictions of one sample compared (detection: boxes after decode + NMS); the
    project's verdict adds its own keys."""

    reference: str
    test: str
    sample: int
    passed: bool


class VerificationResult(ResultsModel):
    """Null in RunResults when verification did not run (disabled, export.mode none, no data)."""

    _omit_when_none = frozenset({"predictions"})

    passed: bool
    tolerance: float = Field(gt=0)
    allow_nonfinite: list[str] = Field(default_factory=list)
    num_samples: int = Field(0, ge=0)
    comparisons: list[OutputComparison] = Field(default_factory=list)
    predictions: list[PredictionComparison] | None = Field(
        None, description="final-prediction comparisons (detection projects: boxes after decode + NMS)"
    )


# ---------------------------------------------------------------------------- evaluation
class LatencyStats(ResultsModel):
    """Milliseconds over the timed samples (warm-up excluded)."""

    mean: float = Field(json_schema_extra={"minimum": 0})
    std: float = Field(json_schema_extra={"minimum": 0})
    min: float = Field(json_schema_extra={"minimum": 0})
    max: float = Field(json_schema_extra={"minimum": 0})
    p50: float = Field(json_schema_extra={"minimum": 0})
    p90: float = Field(json_schema_extra={"minimum": 0})
    p95: float = Field(json_schema_extra={"minimum": 0})
    p99: float = Field(json_schema_extra={"minimum": 0})


class AccuracyDelta(ResultsModel):
    metric: str
    fp32: float
    int8: float
    delta: float


class EvaluationResult(ResultsModel):
    """One evaluated backend, keyed ``<backend>:<device type>`` in RunResults.evaluation."""

    _omit_when_none = frozenset({"latency_samples", "pr_curves", "accuracy_delta_vs_fp32", "compile_seconds"})

    precision: str = Field(description="fp32, fp16, int8, tf32, …")
    metrics: dict[str, Any] = Field(
        description="the project's metrics; the headline metric is a number (classification: accuracy, …, "
        "confusion_matrix; detection: mAP, per-class AP, …)"
    )
    headline_metric: str = Field(description="the key of metrics used by the summary, gates and compare")
    num_samples: int = Field(ge=1)
    warmup: int = Field(0, ge=0)
    latency_ms: LatencyStats = Field(
        description="the headline latency: one deployment's path (preprocess + model + postprocess)"
    )
    stage_latency_ms: dict[str, LatencyStats] = Field(default_factory=dict)
    latency_samples: str | None = Field(
        None, description="sidecar with every timed sample, relative to the run (latency/<backend>.json)"
    )
    pr_curves: str | None = Field(None, description="sidecar with per-class PR curves (detection), relative to the run")
    accuracy_delta_vs_fp32: AccuracyDelta | None = None
    compile_seconds: dict[str, float] | None = Field(
        None, description="per component: torch.compile's first call, kept apart from the latencies"
    )

    @property
    def headline_value(self) -> float | None:
        """The headline metric when it is a number (never a bool, never absent)."""
        return number(self.metrics.get(self.headline_metric))


# ---------------------------------------------------------------------------- gate
class GateViolation(ResultsModel):
    _omit_when_none = frozenset({"reference", "reference_value"})

    backend: str
    metric: str
    value: float
    reference: str | None = None
    reference_value: float | None = None
    limit: str
    observed: float


class BaselineRecord(ResultsModel):
    """``evaluation.gate.baseline``: this run against an earlier good run (``--baseline``);
    ``uri`` null = none given (a first generation); ``note`` says why nothing was compared."""

    _omit_when_none = frozenset({"run_id", "rows", "regressions", "notes", "note"})

    uri: str | None
    passed: bool
    max_metric_drop: float | None = None
    max_latency_ratio: float | None = None
    run_id: str | None = None
    rows: list[dict[str, Any]] | None = Field(
        None, description="per backend: metric a (baseline), b (this run), delta, p50/p99 and their ratios"
    )
    regressions: list[str] | None = None
    notes: list[str] | None = None
    note: str | None = None


class GateResult(ResultsModel):
    """Present when verification.gate / evaluation.gate limits (or a baseline) are set."""

    _omit_when_none = frozenset({"evaluation", "verification", "baseline"})

    passed: bool
    violations: list[GateViolation] = Field(default_factory=list)
    evaluation: dict[str, Any] | None = Field(None, description="the evaluation.gate limits applied")
    verification: dict[str, Any] | None = Field(None, description="the verification.gate limits applied")
    baseline: BaselineRecord | None = None


# ---------------------------------------------------------------------------- the document
class RunResults(ResultsModel):
    """What ``modeldeploy run`` writes to <work dir>/results.json and publishes as
    <artifact uri>/runs/<run id>/results.json, for a succeeded and a failed run alike."""

    _omit_when_none = frozenset({"run", "inputs", "tensorrt_builds", "gate"})

    schema_version: Literal[1] = SCHEMA_VERSION
    project: str = Field(description="the project that handled the model (`modeldeploy projects`)")
    # "running" exists only in memory: a written document is succeeded or failed (to_json).
    status: Literal["running", "succeeded", "failed"] = Field(
        "running",
        json_schema_extra={"enum": ["succeeded", "failed"]},
        description="succeeded only if every stage passed (verification, evaluation, gates, publication)",
    )
    failure: Failure | None = Field(None, description="null when succeeded; otherwise the first stage that failed")
    environment: Environment = Field(default_factory=Environment)
    artifacts: list[Artifact] = Field(
        default_factory=list,
        description="files of this run (graphs, engines, predictions, sidecars, logs); manifest.json lists "
        "the same with results.json and the reports",
    )
    verification: VerificationResult | None = None
    evaluation: dict[str, EvaluationResult] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"pattern": BACKEND_LABEL}},
        description="one entry per evaluated backend, keyed <backend>:<device type> (onnxruntime-int8 for the "
        "Q/DQ model); {} when evaluation did not run",
    )
    durations_s: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"additionalProperties": {"type": "number", "minimum": 0}},
        description="wall time of each stage that ran (preflight, fetch, load, export_onnx, export_tensorrt, "
        "verify, evaluate, gate, report, upload)",
    )
    run: RunInfo | None = None
    inputs: Inputs | None = None
    tensorrt_builds: dict[str, TensorRTBuild] | None = Field(
        None, description="per engine: precision, build time, cache hit (TensorRT runs only)"
    )
    gate: GateResult | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def fail(self, stage: Stage, reason: str, message: str) -> None:
        """Mark the run failed; the first failure recorded stays the one reported."""
        self.status = "failed"
        if self.failure is None:
            self.failure = Failure(stage=stage, reason=reason, message=message)

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON: a NaN/Inf raises ValueError (the runner replaces them first and fails
        the run), and a document still ``running`` is refused (never published half-done)."""
        if self.status == "running":
            raise ValueError("results.json is written only once the run has succeeded or failed")
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, source: str | bytes | Mapping[str, Any]) -> RunResults:
        """A results.json (text or parsed) of this or an older modeldeploy; pydantic's
        ValidationError when it is not one."""
        if isinstance(source, Mapping):
            return cls.model_validate(dict(source))
        return cls.model_validate(json.loads(source))


def number(v: Any) -> float | None:
    """A value of results.json as a number, or None (absent, null, a bool or not numeric)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class _NoTitles(GenerateJsonSchema):
    """Schema without the per-field "title" noise pydantic adds (descriptions say more)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def results_json_schema() -> dict[str, Any]:
    """docs/results.schema.json: the JSON Schema (2020-12) of what a run writes."""
    body = RunResults.model_json_schema(mode="serialization", by_alias=True, schema_generator=_NoTitles)
    head = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"modeldeploy results.json (schema_version {SCHEMA_VERSION})",
        "description": "What `modeldeploy run` writes to <work dir>/results.json and publishes as "
        "<artifact uri>/runs/<run id>/results.json, for a succeeded and a failed run alike (docs/contracts.md §2). "
        "Strict JSON: no NaN/Infinity anywhere. Readers must tolerate keys not listed here (additionalProperties "
        "is open); keys listed here keep their meaning within schema_version 1. Generated from "
        "modeldeploy.core.results by scripts/results_schema.py; validated against real runs by "
        "tests/unit/runtime/test_results_schema.py.",
    }
    body.pop("title", None)
    body.pop("description", None)
    return {**head, **body}
