"""TensorRTExporter: ONNX → serialized engine, cached, with its build log and timing cache.

Why it is shaped like this:
* every ``tensorrt`` call goes through ``modeldeploy.tensorrt_api`` (one small module checked against the
  real bindings), and the module object is injectable so CI drives this file with a
  recording test double;
* precision policies are PLANNED from what the installed TensorRT offers (feature
  detection): TensorRT 10 takes FP16/INT8/TF32 builder flags; TensorRT 11 is always
  strongly typed, so ``fp16`` rewrites the graph to fp16 and ``explicit_int8`` to Q/DQ;
* profiles are validated against the ONNX graph BEFORE TensorRT is touched, so a typo in
  ``backend_config.model_inputs`` is a ConfigError naming the input, not a builder crash;
* the engine cache key covers everything that changes the engine (engine_cache.py); a
  hit is reported in ``ExportedModel.info['cache_hit']`` for results.json.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from modeldeploy import tensorrt_api as trt_api
from modeldeploy.config.sections import BackendConfigSection
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.engine_info import EngineInfo, write_engine_info
from modeldeploy.errors import BackendUnavailableError, ConfigError, ExportError
from modeldeploy.exporters.base import BaseExporter, ExportedModel
from modeldeploy.exporters.engine_cache import EngineCache, EngineCacheKey, ProfileShapes, onnx_digest

log = logging.getLogger(__name__)

"""component name -> preprocessed calibration samples keyed by graph input name."""


@dataclass(frozen=True)
class PrecisionPlan:
    policy: str
    builder_flags: tuple[str, ...]
    strongly_typed: bool
    graph_transform: str  # none | fp16 | qdq

    @property
    def precision_label(self) -> str:
        """The evaluation ``precision`` field for this engine."""
        return {"auto": "fp32", "fp16": "fp16", "fp32_tf32": "tf32", "explicit_int8": "int8"}.get(
            self.policy, self.policy
        )


def plan_precision(policy: str, caps: trt_api.Capabilities) -> PrecisionPlan:
    """Map a policy onto this TensorRT: builder flags where they exist, graph types where not.

    Without weak typing (TensorRT 11) every network is strongly typed, so the plan says so
    for every policy; the flag itself is set only where the enum still has it.
    """
    weak = caps.weakly_typed_precision
    st = not weak
    if policy == "auto":
        return PrecisionPlan(policy, (), st, "none")  # TensorRT's defaults (fp32, TF32 allowed)
    if policy == "fp16":
        return PrecisionPlan(policy, ("FP16",), False, "none") if weak else PrecisionPlan(policy, (), True, "fp16")
    if policy == "fp32_tf32":
        return PrecisionPlan(policy, ("TF32",) if "TF32" in caps.builder_flags else (), st, "none")
    if policy == "explicit_int8":
        flags = ("INT8",) if weak and "INT8" in caps.builder_flags else ()
        return PrecisionPlan(policy, flags, st, "qdq")
    if policy == "strongly_typed":
        return PrecisionPlan(policy, (), True, "none")
    raise ConfigError(
        f"unknown backend_config.common_config.precision_policy {policy!r}",
        hint="auto | fp16 | fp32_tf32 | explicit_int8 | strongly_typed",
    )


def profiles_for(backend_config: BackendConfigSection, component: str) -> list[ProfileShapes]:
    """Profiles of ``component``: entries naming it, plus entries with no component."""
    out: list[ProfileShapes] = []
    for prof in backend_config.model_inputs:
        if prof.component is None or prof.component == component:
            out.append({n: (r.min_shape, r.opt_shape, r.max_shape) for n, r in prof.input_shapes.items()})
    return out


def onnx_input_shapes(onnx_path: Path) -> dict[str, tuple[int, ...]]:
    """Graph inputs with -1 for every symbolic/unknown dim (initializers excluded)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    shapes = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        shapes[inp.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims)
    return shapes


def check_profiles(component: str, inputs: dict[str, tuple[int, ...]], profiles: list[ProfileShapes]) -> None:
    """Every dynamic input covered by every profile; names, ranks and static dims agree."""
    where = "backend_config.model_inputs"
    dynamic = sorted(n for n, s in inputs.items() if any(d < 0 for d in s))
    if dynamic and not profiles:
        raise ConfigError(
            f"{component}: inputs {dynamic} have dynamic dims but {where} has no profile for this component",
            hint=f"add dict(component={component!r}, input_shapes={{{dynamic[0]!r}: dict(min_shape=..., opt_shape=..., max_shape=...)}})",
        )
    for k, prof in enumerate(profiles):
        unknown = sorted(set(prof) - set(inputs))
        if unknown:
            raise ConfigError(
                f"{where}[{k}] names input(s) {unknown} that {component} does not have; inputs: {sorted(inputs)}",
                hint="use the ONNX graph's input names",
            )
        missing = [n for n in dynamic if n not in prof]
        if missing:
            raise ConfigError(
                f"{where}[{k}] lacks dynamic input(s) {missing} of {component}",
                hint="every profile must give shapes for every dynamic input",
            )
        for name, (lo, _opt, hi) in prof.items():
            graph = inputs[name]
            if len(lo) != len(graph):
                raise ConfigError(
                    f"{where}[{k}].{name}: rank {len(lo)} but the graph input has rank {len(graph)} {graph}",
                    hint="match the ONNX input's rank",
                )
            for axis, g in enumerate(graph):
                if g >= 0 and not (lo[axis] == g == hi[axis]):
                    raise ConfigError(
                        f"{where}[{k}].{name}: axis {axis} is static ({g}) in the graph but the profile gives {lo[axis]}..{hi[axis]}",
                        hint=f"use {g} on axis {axis} or export that axis as dynamic",
                    )


def _cuda_compute_capability(device: str) -> str:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "TensorRT needs a CUDA GPU but torch sees none", hint="run on a GPU node or choose export.mode='onnx'"
        )
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    return f"{major}.{minor}"


class TensorRTExporter(BaseExporter):
    """Builds one engine per component from its ONNX file."""

    def __init__(
        self,
        backend_config: BackendConfigSection,
        *,
        device: str = "cuda",
        cache: EngineCache | None = None,
        trt_module: ModuleType | None = None,
        compute_capability: str | None = None,
    ) -> None:
        self.cfg = backend_config
        self.trt = trt_module if trt_module is not None else trt_api.require_tensorrt()
        self.device = device
        self._cc = compute_capability
        common = backend_config.common_config
        self.cache = cache if cache is not None else (EngineCache() if common.engine_cache else None)
        if not common.engine_cache:
            self.cache = None
        self.caps = trt_api.capabilities(self.trt)
        self.plan = plan_precision(common.precision_policy, self.caps)

    @property
    def compute_capability(self) -> str:
        if self._cc is None:
            self._cc = _cuda_compute_capability(self.device)
        return self._cc

    # ------------------------------------------------------------------ public API

    def export(self, component: ExportComponent, out_dir: Path, onnx_path: Path | None = None) -> ExportedModel:
        """BaseExporter entry point; ``onnx_path`` defaults to ``<out_dir>/../onnx/<file>``."""
        src = Path(onnx_path) if onnx_path is not None else Path(out_dir).parent / "onnx" / component.file_name
        return self.build(src, Path(out_dir), component=component.name, output_names=list(component.output_names))

    def export_onnx(self, onnx_model: ExportedModel, out_dir: Path) -> ExportedModel:
        """The runner's entry point: one exported ONNX component → its engine."""
        return self.build(
            onnx_model.path,
            Path(out_dir),
            component=onnx_model.component,
            output_names=list(onnx_model.output_names) or None,
        )

    def build(
        self, onnx_path: Path, out_dir: Path, *, component: str, output_names: list[str] | None = None
    ) -> ExportedModel:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ExportError(
                f"ONNX file {onnx_path} does not exist",
                hint="export ONNX first (export.mode='both') or set export.onnx_path",
            )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        inputs = onnx_input_shapes(onnx_path)
        profiles = profiles_for(self.cfg, component)
        check_profiles(component, inputs, profiles)

        graph, extra = self._transform(onnx_path, out_dir, component)
        common = self.cfg.common_config
        key = EngineCacheKey(
            onnx_sha256=onnx_digest(graph),
            tensorrt_version=self.caps.version,
            compute_capability=self.compute_capability,
            precision_policy=self.plan.policy,
            builder_flags=self.plan.builder_flags,
            strongly_typed=self.plan.strongly_typed,
            graph_transform=self.plan.graph_transform,
            profiles=EngineCacheKey.canonical_profiles(profiles),
            workspace_bytes=common.max_workspace_size,
            optimization_level=common.builder_optimization_level,
        )
        engine_path = out_dir / f"{component}.engine"
        log_path = out_dir / f"{component}.build.log"
        timing_path = out_dir / f"{component}.timing.cache"
        info: dict[str, Any] = {
            "tensorrt": self.caps.version,
            "compute_capability": self.compute_capability,
            "precision_policy": self.plan.policy,
            "precision": self.plan.precision_label,
            "builder_flags": list(self.plan.builder_flags),
            "strongly_typed": self.plan.strongly_typed,
            "graph_transform": self.plan.graph_transform,
            "built_from": str(graph),
            "profiles": [{n: [list(s) for s in v] for n, v in p.items()} for p in profiles],
            "cache_key": key.digest,
            "build_log": str(log_path),
        }

        lookup = self.cache.lookup(key) if self.cache is not None else None
        if lookup is not None and lookup.hit:
            _atomic_copy(lookup.path, engine_path)  # type: ignore[arg-type]
            log.info("%s: engine cache hit (%s, key %s) — not rebuilding", component, lookup.source, key.digest[:12])
            log_path.write_text(f"engine cache hit ({lookup.source}) key={key.digest}\nsource={lookup.path}\n")
            info.update(cache_hit=True, cache_source=lookup.source, build_seconds=0.0)
        else:
            t0 = time.perf_counter()
            self._build_engine(graph, engine_path, log_path, timing_path, profiles, component)
            info.update(
                cache_hit=False,
                cache_source="miss" if self.cache is not None else "disabled",
                build_seconds=round(time.perf_counter() - t0, 3),
            )
            if self.cache is not None:
                self.cache.store(key, engine_path)
        if timing_path.is_file():
            info["timing_cache"] = str(timing_path)
        known = ("tensorrt", "compute_capability", "precision")
        meta_path = write_engine_info(
            engine_path,
            EngineInfo(
                component=component,
                precision=str(info["precision"]),
                tensorrt=info["tensorrt"],
                compute_capability=info["compute_capability"],
                output_names=output_names,
                extra={**{k: v for k, v in info.items() if k not in known}, "cache_key_fields": key.to_json()},
            ),
        )
        files = [p for p in (*extra, meta_path, log_path, timing_path) if p.is_file()]
        return ExportedModel(
            component=component,
            path=engine_path,
            extra_files=files,
            input_names=list(inputs),
            output_names=list(output_names or []),
            info=info,
        )

    # ------------------------------------------------------------------ steps

    def _transform(self, onnx_path: Path, out_dir: Path, component: str) -> tuple[Path, list[Path]]:
        """The graph TensorRT should parse, plus new files written for it."""
        from modeldeploy.exporters import quantization

        if self.plan.graph_transform == "fp16":
            out = quantization.convert_fp16(onnx_path, out_dir / f"{component}.fp16.onnx")
            return out, _with_data(out)
        if self.plan.graph_transform == "qdq":
            # One INT8 path: the runner quantizes each graph (with the inputs that graph really
            # receives, BasePipeline.component_inputs) before TensorRT; the exporter only checks.
            counts = quantization.qdq_node_counts(onnx_path)
            if not (counts["QuantizeLinear"] and counts["DequantizeLinear"]):
                raise ConfigError(
                    f"precision_policy='explicit_int8': {onnx_path.name} ({component}) is not a Q/DQ graph",
                    hint="let modeldeploy export and quantize the ONNX (export.mode='both', no export.onnx_path), or give export.onnx_path a Q/DQ graph",
                )
            return onnx_path, []
        return onnx_path, []

    def _build_engine(
        self,
        graph: Path,
        engine_path: Path,
        log_path: Path,
        timing_path: Path,
        profiles: list[ProfileShapes],
        component: str,
    ) -> None:
        trt = self.trt
        records: list[trt_api.LogRecord] = []
        common = self.cfg.common_config
        try:
            logger = trt_api.make_logger(trt, records)
            builder = trt_api.create_builder(trt, logger)
            network = trt_api.create_network(trt, builder, strongly_typed=self.plan.strongly_typed)
            _parser, issues = trt_api.parse_onnx(trt, network, logger, graph)
            if issues:
                shown = "; ".join(i.one_line() for i in issues[:3])
                more = f" (+{len(issues) - 3} more in {log_path.name})" if len(issues) > 3 else ""
                for i in issues:
                    records.append(trt_api.LogRecord("PARSER", i.one_line()))
                raise ExportError(
                    f"TensorRT {self.caps.version} could not parse {graph.name}: {shown}{more}",
                    hint="simplify the graph (onnxsim), change the opset, or replace the unsupported op",
                )
            config = trt_api.create_config(
                trt,
                builder,
                workspace_bytes=common.max_workspace_size,
                optimization_level=common.builder_optimization_level,
                builder_flags=self.plan.builder_flags,
            )
            for shapes in profiles:
                trt_api.add_profile(builder, config, shapes)
            timing = None
            if common.timing_cache:
                seed = _read_timing_cache(timing_path, self._shared_timing_path())
                timing = trt_api.attach_timing_cache(config, seed)
            blob = trt_api.build_serialized(builder, network, config)
            if blob is None:
                errors = [r.message for r in records if r.severity in ("ERROR", "INTERNAL_ERROR")]
                last = errors[-1] if errors else "no error message (see the build log)"
                raise ExportError(
                    f"TensorRT {self.caps.version} failed to build {component}: {last[:300]}",
                    hint=f"see {log_path}; raise backend_config.common_config.max_workspace_size or check profiles",
                )
            del _parser  # the ONNX parser owned the weights until here
            _atomic_write(engine_path, blob)
            if timing is not None:
                data = trt_api.serialize_timing_cache(timing)
                _atomic_write(timing_path, data)
                shared = self._shared_timing_path()
                if shared is not None:
                    shared.parent.mkdir(parents=True, exist_ok=True)
                    _atomic_write(shared, data)
            log.info("%s: built engine %s (%d bytes)", component, engine_path, len(blob))
        finally:
            _write_log(log_path, records, graph, self.plan, self.caps.version)

    def _shared_timing_path(self) -> Path | None:
        """One timing cache per (TensorRT version, GPU) in the cache root, reused by every build."""
        if self.cache is None:
            return None
        return self.cache.root.parent / "timing" / f"trt-{self.caps.version}-sm{self.compute_capability}.cache"


def _with_data(graph: Path) -> list[Path]:
    data = graph.with_name(graph.name + ".data")
    return [graph, data] if data.is_file() else [graph]


def _read_timing_cache(*candidates: Path | None) -> bytes:
    for p in candidates:
        if p is not None and p.is_file():
            return p.read_bytes()
    return b""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_copy(src: Path, dest: Path) -> None:
    _atomic_write(dest, Path(src).read_bytes())


def _write_log(path: Path, records: list[trt_api.LogRecord], graph: Path, plan: PrecisionPlan, version: str) -> None:
    lines = [f"# TensorRT {version} build of {graph.name}", f"# plan: {json.dumps(asdict(plan))}"]
    lines += [f"[{r.severity}] {r.message}" for r in records]
    path.write_text("\n".join(lines) + "\n")
