"""DeploymentRunner: load → export ONNX → export TensorRT → verify → evaluate → publish.

Each stage is a method (override it in a subclass) and the three the seed names can be
injected as callables: ``load_model_fn(cfg, model_cfg, checkpoint) -> nn.Module``,
``export_onnx_fn(components, out_dir, cfg) -> dict[str, ExportedModel]`` and
``export_tensorrt_fn(onnx_models, out_dir, cfg) -> dict[str, ExportedModel]``.

A stage that raises stops the run: results.json is still written (``status: failed``,
``failure`` naming stage and reason) together with everything earlier stages produced,
and ``RunOutcome.exit_code`` is non-zero (see docs/contracts.md for the codes).

Before any stage, ``preflight`` checks that the work dir and the output store are
writable (and the store's credentials work). Publishing goes to this run's own prefix
``<artifact uri>/runs/<run id>/``; only a succeeded run moves ``<artifact uri>/current.json``
(artifacts/publication.py), so a failed run never unpublishes a good one. Everything
written (results.json, report.md, the termination summary) is scrubbed of secret values
and holds no NaN/Inf.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from modeldeploy.artifacts import ArtifactStore, LocalArtifact, open_store, sha256_file
from modeldeploy.artifacts.base import MANIFEST_NAME, POINTER_NAME, build_manifest
from modeldeploy.artifacts.localio import probe_writable, storage_error
from modeldeploy.artifacts.publication import make_current, open_run
from modeldeploy.backends.base import BaseBackend
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.config.sections import BackendEvalSection
from modeldeploy.core.backend_registry import BackendOptions, backend_spec
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.core.project import BaseProject
from modeldeploy.core.results import (
    AccuracyDelta,
    Artifact,
    EvaluationResult,
    Failure,
    Inputs,
    RunResults,
    TensorRTBuild,
)
from modeldeploy.errors import (
    BackendUnavailableError,
    ConfigError,
    DataError,
    EvaluationFailed,
    ModelDeployError,
    VerificationFailed,
)
from modeldeploy.exporters.base import ExportedModel
from modeldeploy.projects import project_for
from modeldeploy.redact import scrub, scrub_obj
from modeldeploy.runners.environment import collect_environment
from modeldeploy.runners.report import render_report_md
from modeldeploy.runners.run_metadata import file_info, run_info, utc_now
from modeldeploy.runners.termination import build_summary, write_termination_log
from modeldeploy.verification.finite import sanitize_json_file, sanitize_nonfinite

log = logging.getLogger("modeldeploy.runner")

LoadModelFn = Callable[[BaseDeploymentConfig, Any, str | None], torch.nn.Module]
ExportFn = Callable[..., dict[str, ExportedModel]]
ResolveFn = Callable[[str], Path]


@dataclass
class RunOutcome:
    run_results: RunResults
    exit_code: int
    results_path: Path
    error: ModelDeployError | None = None

    @property
    def results(self) -> dict[str, Any]:
        """results.json as written (the JSON document), for callers that read it as JSON."""
        return self.run_results.to_dict()


@dataclass
class _State:
    model: torch.nn.Module | None = None
    model_cfg: Any = None
    loader: BaseDataLoader | None = None
    components: list[ExportComponent] = field(default_factory=list)
    onnx: dict[str, ExportedModel] = field(default_factory=dict)
    onnx_int8: dict[str, ExportedModel] = field(default_factory=dict)
    onnx_fp16: dict[str, ExportedModel] = field(default_factory=dict)  # made on first use (onnxruntime fp16)
    engines: dict[str, ExportedModel] = field(default_factory=dict)
    local_artifacts: list[LocalArtifact] = field(default_factory=list)


def _kind_of(path: Path) -> str:
    name = path.name
    if name.endswith(".log"):
        return "log"
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith(".onnx.data"):
        return "onnx_data"
    return "other"


def _default_resolve(uri: str) -> Path:
    from modeldeploy.artifacts.fetch import fetch

    return fetch(uri)


class DeploymentRunner:
    def __init__(
        self,
        cfg: BaseDeploymentConfig,
        model_cfg_path: str,
        checkpoint: str | None = None,
        *,
        project: BaseProject | None = None,
        run_id: str | None = None,
        termination_log: str | None = None,
        load_model_fn: LoadModelFn | None = None,
        export_onnx_fn: ExportFn | None = None,
        export_tensorrt_fn: ExportFn | None = None,
        resolve_fn: ResolveFn | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        reporter: Any | None = None,
    ) -> None:
        """``reporter``: a modeldeploy.progress.RunProgress (stage start/end lines, per-item progress)."""
        self.cfg = cfg
        self.model_cfg_path = model_cfg_path
        self.checkpoint = checkpoint if checkpoint is not None else cfg.checkpoint_path
        if cfg.project is None and project is None:
            raise ConfigError(
                f"{cfg.source}: 'project' is not set",
                hint="add project = 'calibration' | 'yolox' | 'centerpoint' to the deploy config",
            )
        # bound: its own deploy section parsed and checked now (projects.project_for)
        self.project = project.bind(cfg) if project is not None else project_for(cfg)
        # Where to write and publish come from the config only: the command line's flags were
        # merged into it (cli_options.Overrides) and checked there with the file's values.
        self.work_dir = cfg.export.output_dir
        self.artifact_uri = cfg.export.publish_uri
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.termination_log = termination_log
        self.load_model_fn = load_model_fn
        self.export_onnx_fn = export_onnx_fn
        self.export_tensorrt_fn = export_tensorrt_fn
        self.resolve = resolve_fn or _default_resolve
        self.reporter = reporter
        self.progress = progress or (reporter.step if reporter is not None else None)
        self.state = _State()
        self._root_store: ArtifactStore | None = None  # <artifact uri>, opened once (root_store)
        self._run_store: ArtifactStore | None = None  # <artifact uri>/runs/<run id>
        self._run_rel: str | None = None
        self._records: list[Any] = []
        self._late_error: ModelDeployError | None = None
        self.publication: dict[str, Any] = {}
        self.results = RunResults(project=self.project.name)

    # ------------------------------------------------------------------ driver
    def run(self) -> RunOutcome:
        self.results.environment = collect_environment()
        run = self.results.run = run_info(self.run_id)
        self.results.inputs = Inputs(
            deploy_config=file_info(self.cfg.source if Path(self.cfg.source).is_file() else None)
        )
        error: ModelDeployError | None = None
        stages: list[tuple[str, Callable[[], None]]] = [
            ("preflight", self.preflight),
            ("load", self.load),
            ("export_onnx", self.export_onnx),
            ("export_tensorrt", self.export_tensorrt),
            ("verify", self.verify),
            ("evaluate", self.evaluate),
            ("gate", self.gate),
        ]
        for name, fn in stages:
            try:
                with self._timed(name):
                    fn()
            except ModelDeployError as exc:
                error = exc
            except OSError as exc:  # read-only / full / not permitted: one clear line, not a traceback
                log.debug("I/O error in stage %s:\n%s", name, traceback.format_exc())
                error = storage_error(exc, f"stage {name}")
            except Exception as exc:  # noqa: BLE001 - a bug must still end in results.json + exit code
                log.debug("unexpected error in stage %s:\n%s", name, traceback.format_exc())
                error = ModelDeployError(
                    f"{type(exc).__name__}: {exc}",
                    reason="InternalError",
                    hint="this is a bug in modeldeploy or a project; see the log for the traceback",
                )
            if error is not None:
                self.results.failure = Failure(stage=name, reason=error.reason, message=error.one_line())
                log.error("stage %s failed: %s", name, error.one_line(), extra={"event": "stage_failed", "stage": name})
                break
        self.results.status = "failed" if error else "succeeded"
        run.finished_at = utc_now()
        results_uri: str | None = None
        if self._run_store is not None:
            try:
                t_pub = time.perf_counter()
                if self.reporter is not None:
                    self.reporter.stage_started("upload")
                results_uri = self.publish()
                if self.reporter is not None:
                    self.reporter.stage_finished("upload", time.perf_counter() - t_pub)
            except (ModelDeployError, OSError) as exc:
                pub_error = exc if isinstance(exc, ModelDeployError) else storage_error(exc, "publishing")
                log.error("publishing failed: %s", pub_error.one_line())
                error = error or pub_error
                self.results.fail("upload", pub_error.reason, pub_error.one_line())
                results_uri = self._record_publish_failure()
        else:
            self._write_local_results_best_effort()
        if error is None and self.results.status == "failed":  # e.g. a NaN found while writing results
            error = self._late_error or ModelDeployError(
                "the run's results hold non-finite numbers", reason="NonFinite"
            )
        summary = build_summary(
            self.results, run_id=self.run_id, results_uri=results_uri, publication=self.publication or None
        )
        write_termination_log(self.termination_log, summary)
        code = 0 if error is None else error.exit_code
        return RunOutcome(self.results, code, self.work_dir / "results.json", error)

    def preflight(self) -> None:
        """Before any heavy work: the work dir and this run's output prefix must be writable
        and the store's credentials must work (a probe object is written and deleted)."""
        probe_writable(self.work_dir, "the work dir")
        root = self.root_store()
        store, rel = open_run(root, self.run_id)
        store.preflight()
        self._run_store, self._run_rel = store, rel
        self.publication = {
            "run_prefix": store.uri,
            "current_uri": root.uri_for(POINTER_NAME),
            "published_current": False,
        }
        log.info(
            "publishing to %s (the pointer %s moves only if this run succeeds)", store.uri, root.uri_for(POINTER_NAME)
        )

    def root_store(self) -> ArtifactStore:
        """The store at the artifact URI, opened once and shared: the publication (preflight,
        publish) and the engine cache's shared tier (export_tensorrt)."""
        if self._root_store is None:
            self._root_store = open_store(self.artifact_uri)
        return self._root_store

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.reporter is not None:
            self.reporter.stage_started(stage)
        ok = False
        try:
            yield
            ok = True
        finally:
            self.results.durations_s[stage] = round(time.perf_counter() - t0, 4)
            if self.reporter is not None:
                from modeldeploy.progress import skip_note

                self.reporter.stage_finished(
                    stage,
                    self.results.durations_s[stage],
                    failed=not ok,
                    note=skip_note(stage, self) if ok else None,
                )

    def gate(self) -> None:
        """verification.gate / evaluation.gate: a measurable regression fails the run (exit 3)."""
        from modeldeploy.evaluation.gate import check, gates_configured, stability_warnings

        for w in stability_warnings(self.results.evaluation):
            log.warning("%s", w)
        if gates_configured(self.cfg.verification.gate, self.cfg.evaluation.gate):
            check(self.results, self.cfg.verification.gate, self.cfg.evaluation.gate)
        from modeldeploy.runners.baseline import check_baseline

        check_baseline(self.results, self.cfg.evaluation.gate.baseline)  # vs an earlier good run (--baseline)

    # ------------------------------------------------------------------ stages
    def load(self) -> None:
        """Resolve inputs, build and load the model, open the dataset, build export components."""
        from modeldeploy.config.deploy_config import read_mmengine_config

        with self._fetch_stage():
            model_cfg_file = self.resolve(self.model_cfg_path)
            ckpt = str(self.resolve(self.checkpoint)) if self.checkpoint else None
        inputs = self.results.inputs = self.results.inputs or Inputs()
        inputs.model_cfg = file_info(model_cfg_file, str(self.model_cfg_path))
        inputs.checkpoint = file_info(ckpt, self.checkpoint)
        self.state.model_cfg = read_mmengine_config(model_cfg_file)
        self.project.bind(self.cfg, self.state.model_cfg)  # the project's model-config settings, parsed once
        if self.load_model_fn is not None:
            model = self.load_model_fn(self.cfg, self.state.model_cfg, ckpt)
        else:
            if ckpt is None:
                raise ConfigError(
                    "no checkpoint given",
                    hint="pass CHECKPOINT on the command line or set checkpoint_path in the deploy config",
                )
            model = self.project.build_model(self.state.model_cfg)
            model = self.project.load_checkpoint(model, ckpt, self.cfg)
        self.state.model = model.eval()
        if self.project.has_data(self.cfg, self.state.model_cfg):
            loader = self.project.build_data_loader(self.cfg, self.state.model_cfg)
            if len(loader) == 0:
                raise DataError("the dataset is empty", hint="check runtime_io.data_root / info_file")
            idx = self.cfg.runtime_io.sample_idx
            if idx >= len(loader):
                raise ConfigError(
                    f"runtime_io.sample_idx={idx} but the dataset has {len(loader)} samples",
                    hint=f"use 0..{len(loader) - 1}",
                )
            self.state.loader = loader
            sample = loader.load_sample(idx)
        else:  # export needs no data: trace with a synthesised input (docs/configuration.md "Export without data")
            self._refuse_requested_stages_without_data()
            sample = self.project.example_sample(self.cfg, self.state.model_cfg)
            log.info(
                "no dataset configured (runtime_io.info_file/data_root unset): exporting from a synthesised example input"
            )
        export_model = self.project.prepare_for_export(self.state.model, self.cfg)
        self.state.components = self.project.export_components(export_model, self.cfg, self.state.model_cfg, sample)
        log.info(
            "loaded %s: %d component(s) %s, %s samples",
            self.project.name,
            len(self.state.components),
            [c.name for c in self.state.components],
            len(self.state.loader) if self.state.loader is not None else "no",
        )

    @contextmanager
    def _fetch_stage(self) -> Iterator[None]:
        """Downloads (s3://, builtin:) inside load get their own progress lines."""
        t0 = time.perf_counter()
        if self.reporter is not None:
            self.reporter.stage_started("fetch")
        ok = False
        try:
            yield
            ok = True
        finally:
            self.results.durations_s["fetch"] = round(time.perf_counter() - t0, 4)
            if self.reporter is not None:
                self.reporter.stage_finished("fetch", self.results.durations_s["fetch"], failed=not ok)

    def _refuse_requested_stages_without_data(self) -> None:
        """Without a dataset, a stage the deploy config configured (any key of its section
        set) is an error before any export work; one left at its defaults is skipped later."""
        if self.cfg.precision_policy == "explicit_int8":
            raise DataError(
                "explicit_int8 quantization needs calibration data but no dataset is configured",
                hint="set runtime_io.info_file (and data_root) in the deploy config, or another precision_policy",
            )
        for stage, section, active in (
            ("verification", self.cfg.verification, bool(self.cfg.verification_scenarios())),
            ("evaluation", self.cfg.evaluation, bool(self.cfg.evaluation_backends())),
        ):
            if active and section.model_fields_set:
                raise DataError(
                    f"{stage} needs data but no dataset is configured",
                    hint=f"set runtime_io.info_file (and data_root) in the deploy config, or {stage}.enabled=False for an export-only run",
                )

    def _skipped_without_data(self, stage: str) -> bool:
        if self.state.loader is not None:
            return False
        log.info("%s skipped: no dataset configured (set runtime_io.info_file/data_root to run it)", stage)
        return True

    def export_onnx(self) -> None:
        mode = self.cfg.export.mode
        if not (self.cfg.export.should_export_onnx or (mode == "trt" and not self.cfg.export.onnx_path)):
            if self.cfg.export.onnx_path:
                self.state.onnx = self._existing_onnx(Path(self.resolve(self.cfg.export.onnx_path)))
                self._check_input_dtype()
            return
        out_dir = self.work_dir / "onnx"
        if self.export_onnx_fn is not None:
            self.state.onnx = self.export_onnx_fn(self.state.components, out_dir, self.cfg)
        else:
            from modeldeploy.exporters.onnx import ONNXExporter

            exporter = ONNXExporter(self.cfg.onnx_config)
            self.state.onnx = {c.name: exporter.export(c, out_dir) for c in self.state.components}
        self._check_input_dtype()
        for m in self.state.onnx.values():
            log.info("exported %s (%d bytes)", m.path.name, m.path.stat().st_size)
            self._add_artifact(m.path, "onnx")
            for f in m.extra_files:
                self._add_artifact(f, "onnx_data")
        if self.cfg.precision_policy == "explicit_int8":
            self._quantize_int8()

    def _check_input_dtype(self) -> None:
        """model_io.input_dtype is a promise about the graph: checked, never ignored (exporters/input_dtype.py)."""
        from modeldeploy.exporters.input_dtype import check_input_dtype

        io = self.cfg.model_io
        check_input_dtype([m.path for m in self.state.onnx.values()], io.input_name, io.input_dtype, self.cfg.source)

    def _existing_onnx(self, onnx_dir: Path) -> dict[str, ExportedModel]:
        out = {}
        for c in self.state.components:
            p = onnx_dir / c.file_name if onnx_dir.is_dir() else onnx_dir
            if not p.is_file():
                raise ConfigError(
                    f"export.onnx_path: {p} does not exist",
                    hint="point onnx_path at the directory holding the exported .onnx files",
                )
            out[c.name] = ExportedModel(c.name, p, input_names=c.input_names, output_names=c.output_names)
        return out

    def _quantize_int8(self) -> None:
        from modeldeploy.exporters.quantization import quantize_qdq

        loader = self.state.loader
        assert loader is not None  # load() refuses explicit_int8 without data
        n = self.cfg.backend_config.quantization.calibration_samples
        out_dir = self.work_dir / "onnx"
        pipe = self._pipeline("pytorch", "cpu")
        for c in self.state.components:

            def calib(component: ExportComponent = c) -> Iterator[dict[str, Any]]:
                # each graph gets what it receives in the pipeline (the 2nd of CenterPoint: the BEV canvas)
                for i in loader.sample_indices(n):
                    inputs = pipe.component_inputs(component.name, loader.load_sample(i))
                    yield {k: v.detach().cpu().numpy() for k, v in inputs.items()}

            src = self.state.onnx[c.name]
            dst = out_dir / src.path.name.replace(".onnx", ".int8_qdq.onnx")
            path = quantize_qdq(src.path, calib(), dst, self.cfg.backend_config.quantization)
            self.state.onnx_int8[c.name] = ExportedModel(
                c.name,
                Path(path),
                input_names=src.input_names,
                output_names=src.output_names,
                info={"precision": "int8"},
            )
            self._add_artifact(Path(path), "onnx")

    def export_tensorrt(self) -> None:
        if not self.cfg.export.should_export_tensorrt:
            return
        out_dir = self.work_dir / "engines"
        onnx_models = (
            self.state.onnx_int8
            if self.cfg.precision_policy == "explicit_int8" and self.state.onnx_int8
            else self.state.onnx
        )
        if self.export_tensorrt_fn is not None:
            self.state.engines = self.export_tensorrt_fn(onnx_models, out_dir, self.cfg)
        else:
            from modeldeploy.exporters.engine_cache import EngineCache, shared_tier
            from modeldeploy.exporters.tensorrt import TensorRTExporter

            # Engines are shared between nodes through the store's content-addressed area.
            cache = (
                EngineCache(shared=shared_tier(self.root_store()))
                if self.cfg.backend_config.common_config.engine_cache
                else None
            )
            exporter = TensorRTExporter(self.cfg.backend_config, device=self.cfg.export.device, cache=cache)
            self.state.engines = {}
            for i, (name, m) in enumerate(onnx_models.items()):
                if self.progress:
                    self.progress("TensorRT build", i, len(onnx_models))
                self.state.engines[name] = exporter.export_onnx(m, out_dir)
            if self.progress:
                self.progress("TensorRT build", len(onnx_models), len(onnx_models))
        builds = {}
        for name, m in self.state.engines.items():
            self._add_artifact(m.path, "engine")
            for f in m.extra_files:
                self._add_artifact(f, _kind_of(f))
            builds[name] = TensorRTBuild.model_validate(
                {k: m.info[k] for k in TensorRTBuild.model_fields if k in m.info}
            )
        self.results.tensorrt_builds = builds

    def verify(self) -> None:
        scenarios = self.cfg.verification_scenarios()
        if not scenarios:
            return
        if self._skipped_without_data("verification"):
            return
        from modeldeploy.verification.runner import verify

        assert self.state.loader is not None
        progress = self.progress  # a local, so the lambda below sees it narrowed to not-None
        ver = self.results.verification = verify(
            scenarios,
            self._verification_pipeline,
            self.state.loader,
            num_samples=self.cfg.verification.num_verify_samples,
            tolerance=self.cfg.verification.tolerance,
            compare_predictions=lambda ref, test: self.project.compare_predictions(ref, test, self.state.model_cfg),
            allow_nonfinite=self.cfg.verification.allow_nonfinite,
            on_step=(lambda i, n: progress("verification", i, n)) if progress else None,
        )
        if not ver.passed:
            failed_raw = [c for c in ver.comparisons if not c.passed]
            if not failed_raw:
                p = next(p for p in ver.predictions or [] if not p.passed)
                raise VerificationFailed(
                    f"{p.test} and {p.reference} agree on raw outputs but their final predictions differ on sample {p.sample}",
                    hint="inspect report.md / results.json verification.predictions (scores near the threshold flip detections)",
                )
            bad = failed_raw[0]
            if bad.reason == "NonFinite":
                nf = bad.nonfinite
                raise VerificationFailed(
                    f"{bad.test} vs {bad.reference}: output '{bad.output}' holds NaN/Inf (NonFinite; {nf.reference if nf else 0} non-finite value(s) "
                    f"in the reference, {nf.test if nf else 0} in the test) — NaN never counts as equal",
                    hint="check the checkpoint for NaN/Inf weights and the export; list the output in verification.allow_nonfinite only if it legitimately carries NaN/Inf",
                )
            raise VerificationFailed(
                f"{bad.test} differs from {bad.reference} on output '{bad.output}': {bad.reason} (max abs diff {bad.max_abs_diff}, tolerance {self.cfg.verification.tolerance})",
                hint="inspect report.md; a real regression must be fixed — raise verification.tolerance only with a measured reason",
            )

    def evaluate(self) -> None:
        backends = self.cfg.evaluation_backends()
        if not backends:  # evaluation disabled: nothing to do (and no loader when there is no data)
            return
        if self._skipped_without_data("evaluation"):
            return
        from modeldeploy.evaluation.runner import evaluate_backend

        assert self.state.loader is not None
        targets: list[tuple[str, str, str]] = []  # (backend, device, precision)
        for name, be in backends.items():
            dev = be.device or self.cfg.export.device
            precision = be.precision or ("fp32" if name != "tensorrt" else self._engine_precision())
            targets.append((name, dev, precision))
        if self.state.onnx_int8 and "onnxruntime" in backends:  # the Q/DQ graph: onnxruntime's int8 variant
            targets.append(("onnxruntime", backends["onnxruntime"].device or self.cfg.export.device, "int8"))
        progress = self.progress  # a local, so on_sample below sees it narrowed to not-None
        for name, dev, precision in targets:
            pipeline = self._pipeline(name, dev, precision, backends.get(name))
            label = pipeline.label  # onnxruntime's int8 variant keeps its key onnxruntime-int8:<dev>
            evaluator = self.project.build_evaluator(self.cfg, self.state.model_cfg)
            pred_path = self.work_dir / "predictions" / f"{label.replace(':', '_')}.json"
            pred_path.parent.mkdir(parents=True, exist_ok=True)
            log.info("evaluating %s (%s)", label, precision)
            done = evaluate_backend(
                pipeline,
                self.state.loader,
                evaluator,
                num_samples=self.cfg.evaluation.num_samples,
                warmup=self.cfg.evaluation.warmup,
                predictions_path=pred_path,
                on_sample=partial(progress, f"evaluate {label}") if progress else None,
                verbose=self.cfg.evaluation.verbose,
                label=label,
                precision=precision,
            )
            compiled = {c: s for c, b in pipeline.backends.items() if (s := getattr(b, "compile_seconds", None))}
            if compiled:  # torch.compile's first call, apart from the latencies (warm-up absorbed it)
                done.result.compile_seconds = compiled
            from modeldeploy.runners.sidecars import write_eval_sidecars

            for side in write_eval_sidecars(self.work_dir, label, done.result, done.raw_latency_ms):
                self._add_artifact(side, "latency" if side.parent.name == "latency" else "curves")
            written = done.predictions
            bad_predictions: list[str] = []
            if written:
                bad_predictions = sanitize_json_file(written)  # strict JSON on disk, NaN → null
                self._add_artifact(written, "predictions")
                gt = written.parent / "ground_truth.json"  # detection projects write GT in the same format
                if gt.is_file():
                    sanitize_json_file(gt)
                    self._add_artifact(gt, "predictions")
            # NaN → null (the entry as written) and numpy scalars → numbers; a NaN fails the run below
            entry, bad_numbers = sanitize_nonfinite(done.result.model_dump(mode="python", by_alias=True))
            self.results.evaluation[label] = EvaluationResult.model_validate(entry)
            if bad_numbers or bad_predictions:
                what = (
                    ", ".join(p.replace("$.", "") for p in bad_numbers[:4])
                    or f"{len(bad_predictions)} prediction value(s) in {written.name if written else ''}"
                )
                raise EvaluationFailed(
                    f"{label}: non-finite (NaN/Inf) {what}",
                    hint="the model produces NaN/Inf (check the checkpoint's weights) or the evaluator saw too few samples; NaN is never a score",
                    reason="NonFiniteMetric",
                )
            for pipe_backend in pipeline.backends.values():
                pipe_backend.close()
        if self.state.onnx_int8 and "onnxruntime:cpu" in self.results.evaluation:
            self._record_int8_delta()

    def _engine_precision(self) -> str:
        """What the engines were actually built with (fp16/tf32/int8…), not the policy name."""
        found = {p for m in self.state.engines.values() if (p := m.info.get("precision"))}
        return found.pop() if len(found) == 1 else self.cfg.precision_policy

    def _record_int8_delta(self) -> None:
        ev = self.results.evaluation
        fp32 = next((v for k, v in ev.items() if k.startswith("onnxruntime:")), None)
        int8 = next((v for k, v in ev.items() if k.startswith("onnxruntime-int8:")), None)
        if fp32 and int8:
            m = fp32.headline_metric
            a, b = fp32.metrics.get(m), int8.metrics.get(m)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                int8.accuracy_delta_vs_fp32 = AccuracyDelta(metric=m, fp32=a, int8=b, delta=b - a)

    # ------------------------------------------------------------------ backends & pipelines
    def _pipeline(
        self, backend: str, device: str, precision: str = "fp32", section: BackendEvalSection | None = None
    ) -> BasePipeline:
        """``section``: the backend's ``evaluation.backends.<name>`` whose speed options apply
        (None: the backend's defaults, as for references and calibration)."""
        dev = torch.device(device)
        if section is not None and section.options_set():
            backends = self._backends(backend, dev, precision, section)
        else:  # the three-argument call a subclass overriding _backends still receives
            backends = self._backends(backend, dev, precision)
        return self.project.build_pipeline(backends, self.cfg, self.state.model_cfg, dev)

    def _verification_pipeline(
        self, backend: str, device: str, precision: str | None = None, test: bool = False
    ) -> BasePipeline:
        """The reference side runs plain; the test side in the scenario's precision and with the
        speed options its backend is evaluated with (when on the same kind of device), so
        verification checks what evaluation measures."""
        section = None
        if test:
            be = self.cfg.evaluation.backends.get(backend)
            configured = torch.device((be.device if be else None) or self.cfg.export.device).type
            section = be if be is not None and configured == torch.device(device).type else None
        return self._pipeline(backend, device, precision or "fp32", section)

    def _backends(
        self, backend: str, device: torch.device, precision: str, section: BackendEvalSection | None = None
    ) -> dict[str, BaseBackend]:
        """One backend per component, made by the backend's registered factory (core/backend.py)."""
        spec = backend_spec(backend)
        if spec.needs_cuda and device.type != "cuda":
            raise BackendUnavailableError(
                f"{backend} runs on CUDA devices only, got device {str(device)!r}",
                hint=f"use device 'cuda' for the {backend} backend",
            )
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"{backend} on {device} requested but no CUDA device is visible",
                hint="use --device cpu or run on a GPU node",
            )
        cache = None
        if section is not None and section.compile_mode:
            # with the artifacts' work dir, so a second run of the same work dir loads instead of compiling
            cache = self.work_dir / (section.compile_cache_dir or "compile_cache")  # an absolute path stays itself
        options = BackendOptions(section, self.cfg.backend_config.common_config, compile_cache_dir=cache)
        out: dict[str, BaseBackend] = {}
        for c in self.state.components:
            source = c if spec.artifact_for(precision) == "module" else self._model_file(backend, c, precision)
            out[c.name] = spec.factory(source, device, precision, options)
        return out

    def _model_file(self, backend: str, c: ExportComponent, precision: str = "fp32") -> Path:
        spec = backend_spec(backend)
        kind = spec.artifact_for(precision)
        be_cfg = self.cfg.evaluation.backends.get(backend)
        if be_cfg is not None and be_cfg.model_dir and kind == spec.artifact:  # a variant (int8) is always this run's
            d = Path(self.resolve(be_cfg.model_dir))
            suffix = spec.file_suffix
            if d.is_file():  # AWML's model_dir/engine_dir may name the file itself
                if len(self.state.components) > 1:
                    raise ConfigError(
                        f"evaluation.backends.{backend}.model_dir: {d} is a file but {self.project.name} has {len(self.state.components)} graphs",
                        hint="point model_dir at the directory holding "
                        + ", ".join(Path(x.file_name).with_suffix(suffix).name for x in self.state.components),
                    )
                return d
            p = d / Path(c.file_name).with_suffix(suffix).name
            published = d / ("engines" if backend == "tensorrt" else "onnx") / p.name
            if (
                not p.is_file() and published.is_file()
            ):  # model_dir named a published run (or its root: fetch follows current.json)
                p = published
            if not p.is_file():
                raise ConfigError(
                    f"evaluation.backends.{backend}.model_dir: {p} does not exist",
                    hint="point model_dir at the directory with the exported files, or unset it to use this run's exports",
                )
            return p
        if kind == "onnx_fp16" and c.name not in self.state.onnx_fp16 and c.name in self.state.onnx:
            self._convert_fp16(c)
        table = {
            "onnx": self.state.onnx,
            "onnx_int8": self.state.onnx_int8,
            "onnx_fp16": self.state.onnx_fp16,
            "engine": self.state.engines,
        }.get(kind, {})
        if c.name not in table:
            raise ConfigError(
                f"{backend} needs a model file for component '{c.name}' but this run exported none",
                hint=f"set export.mode to include {'trt' if kind == 'engine' else 'onnx'}, or evaluation.backends.{backend}.model_dir",
            )
        return table[c.name].path

    def _convert_fp16(self, c: ExportComponent) -> None:
        """onnxruntime's fp16 variant: this run's graph through the one fp16 pass TensorRT uses
        too (float32 IO kept), written next to it and published with the artifacts."""
        from modeldeploy.exporters.quantization import convert_fp16

        src = self.state.onnx[c.name]
        dst = self.work_dir / "onnx" / src.path.name.replace(".onnx", ".fp16.onnx")
        path = convert_fp16(src.path, dst)
        self.state.onnx_fp16[c.name] = ExportedModel(
            c.name, Path(path), input_names=src.input_names, output_names=src.output_names, info={"precision": "fp16"}
        )
        self._add_artifact(Path(path), "onnx")
        data = Path(f"{path}.data")
        if data.is_file():
            self._add_artifact(data, "onnx_data")

    # ------------------------------------------------------------------ outputs
    def _add_artifact(self, path: Path, kind: str) -> None:
        path = Path(path).resolve()
        try:
            name = str(path.relative_to(self.work_dir))
        except ValueError:
            name = f"{kind}/{path.name}"
        self.state.local_artifacts = [a for a in self.state.local_artifacts if a.name != name]
        self.state.local_artifacts.append(LocalArtifact(path, name, kind))

    def _artifact_entries(self, store: ArtifactStore | None) -> list[Artifact]:
        return [
            Artifact(
                name=a.name,
                kind=a.kind,
                uri=store.uri_for(a.name) if store else a.path.as_uri(),
                sha256=sha256_file(a.path),
                bytes=a.path.stat().st_size,
            )
            for a in self.state.local_artifacts
        ]

    def _write_local_results(self, store: ArtifactStore | None = None, report: bool = True) -> tuple[Path, Path]:
        """results.json (+ report.md) in the work dir: scrubbed, strict JSON, written atomically."""
        if not self.results.artifacts:
            self.results.artifacts = self._artifact_entries(store)
        self._enforce_finite_results()
        self.results = RunResults.from_json(scrub_obj(self.results.to_dict()))
        results_path = self.work_dir / "results.json"
        self._atomic_write(results_path, self.results.to_json())
        report_path = self.work_dir / "report.md"
        if report:
            self._atomic_write(report_path, str(scrub(render_report_md(self.results))))
            self._write_report_html()
        return results_path, report_path

    def _write_report_html(self) -> None:
        """report.html beside report.md; a plotting problem is logged, never fails the run."""
        from modeldeploy.runners.report_html import render_report_html

        t0 = time.perf_counter()
        if self.reporter is not None:
            self.reporter.stage_started("report")
        try:
            text = render_report_html(self.results, self.work_dir)
        except Exception as exc:
            log.warning("report.html not written: %s: %s", type(exc).__name__, exc)
            log.debug("report.html failure", exc_info=True)
            text = None
        if text is not None:
            self._atomic_write(self.work_dir / "report.html", str(scrub(text)))
        if self.reporter is not None:
            self.reporter.stage_finished("report", time.perf_counter() - t0, failed=text is None)

    @staticmethod
    def _atomic_write(path: Path, text: str) -> None:
        from modeldeploy.artifacts.base import temp_path_for

        tmp = temp_path_for(path)
        try:
            tmp.write_text(text)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def _enforce_finite_results(self) -> None:
        """NaN/Inf anywhere in results → null, and a succeeded run becomes failed (NonFinite)."""
        clean, found = sanitize_nonfinite(self.results.to_dict())
        if not found:
            return
        self.results = RunResults.from_json(clean)
        if self.results.status == "succeeded":
            self._late_error = EvaluationFailed(
                f"non-finite numbers in results.json at {', '.join(found[:3])}",
                reason="NonFinite",
                hint="a stage produced NaN/Inf; see report.md",
            )
            self.results.status = "failed"
            self.results.failure = Failure(stage="results", reason="NonFinite", message=self._late_error.one_line())

    def _write_local_results_best_effort(self) -> None:
        """The failure record when the work dir itself may be the problem: never raises."""
        try:
            self._write_local_results(report=False)
        except (OSError, ModelDeployError) as exc:
            log.error("cannot write %s: %s", self.work_dir / "results.json", getattr(exc, "strerror", None) or exc)

    def publish(self) -> str | None:
        """Publish into this run's own prefix: artifacts, results.json, manifest last; then,
        only for a succeeded run, move the ``current.json`` pointer (compare-and-swap)."""
        store, root = self._run_store, self._root_store
        assert store is not None and root is not None and self._run_rel is not None
        self.results.artifacts = self._artifact_entries(store)
        results_path, report_path = self._write_local_results(store)
        files = list(self.state.local_artifacts)
        files.append(LocalArtifact(report_path, "report.md", "report"))
        html_path = self.work_dir / "report.html"
        if html_path.is_file():
            files.append(LocalArtifact(html_path, "report.html", "report"))
        log_file = self.work_dir / "logs" / "run.log"
        if log_file.is_file():
            files.append(LocalArtifact(log_file, "logs/run.log", "log"))
        # Artifacts first (timed: that is the upload cost), then results.json, manifest last.
        store.invalidate_manifest()
        t0 = time.perf_counter()
        self._records = []
        for i, f in enumerate(files):
            self._records.append(store.put_file(f))
            if self.progress:
                self.progress("upload", i + 1, len(files))
        self.results.durations_s["upload"] = round(time.perf_counter() - t0, 4)
        results_path, _ = self._write_local_results(store, report=False)
        self._records.append(store.put_file(LocalArtifact(results_path, "results.json", "results")))
        by_name = {r.name: r for r in self._records}
        for a in self.results.artifacts:
            r = by_name.get(a.name)
            if r is not None and r.sha256 != a.sha256:
                from modeldeploy.errors import ArtifactStoreError

                raise ArtifactStoreError(
                    f"{a.name}: uploaded sha256 {r.sha256} != local {a.sha256}",
                    hint="the file changed during upload; re-run",
                )
        manifest = json.dumps(build_manifest(self._records, run_id=self.run_id), indent=2, allow_nan=False).encode()
        store.put_bytes(MANIFEST_NAME, manifest, "manifest")
        log.info("published %d files to %s", len(self._records), store.uri)
        if self.results.status == "succeeded":
            make_current(root, self._run_rel, run_id=self.run_id, manifest=manifest)
            self.publication["published_current"] = True
        else:
            log.info("run failed: %s keeps pointing at the previous good run", root.uri_for(POINTER_NAME))
        return store.uri_for("results.json")

    def _record_publish_failure(self) -> str | None:
        """After a failed publish: results.json says ``failed`` locally and, where the store
        still accepts writes, under the run's own prefix (with a manifest that matches).
        Returns the remote results.json URI when that worked. Never raises."""
        self._write_local_results_best_effort()
        store = self._run_store
        results_path = self.work_dir / "results.json"
        if store is None or not results_path.is_file():
            return None
        try:
            rec = store.put_file(LocalArtifact(results_path, "results.json", "results"))
            records = [r for r in self._records if r.name != "results.json"] + [rec]
            store.put_bytes(
                MANIFEST_NAME,
                json.dumps(build_manifest(records, run_id=self.run_id), indent=2, allow_nan=False).encode(),
                "manifest",
            )
            return store.uri_for("results.json")
        except (OSError, ModelDeployError) as exc:
            log.warning("could not record the failure under %s: %s", store.uri, getattr(exc, "strerror", None) or exc)
            return None
