"""BaseDeploymentConfig: an mmengine config file parsed into typed sections.

All validation happens here, before any work: unknown keys (with a did-you-mean), wrong
types, out-of-range values and impossible combinations (``mode='trt'`` on ``device='cpu'``)
raise ``ConfigError`` naming the file, the dotted key, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict

from modeldeploy.config.parse import did_you_mean, parse_section
from modeldeploy.config.sections import (
    BACKEND_OPTION_KEYS,
    BACKEND_PRECISIONS,
    BackendConfigSection,
    BackendEvalSection,
    EvaluationSection,
    ExportSection,
    ModelIOSection,
    ONNXConfigSection,
    RuntimeIOSection,
    Scenario,
    Section,
    VerificationSection,
)
from modeldeploy.core.model_config import to_plain
from modeldeploy.errors import ConfigError

TaskType = Literal["classification", "detection2d", "detection3d"]

_SECTIONS: dict[str, type[Section]] = {
    "export": ExportSection,
    "runtime_io": RuntimeIOSection,
    "model_io": ModelIOSection,
    "onnx_config": ONNXConfigSection,
    "backend_config": BackendConfigSection,
    "verification": VerificationSection,
    "evaluation": EvaluationSection,
}
_SCALARS = {"project", "task_type", "checkpoint_path", "use_ema"}
_TASK_TYPES = ("classification", "detection2d", "detection3d")
S = TypeVar("S", bound=Section)


class UnparsedSection(Section):
    """The project's own top-level section (e.g. ``yolox = dict(...)``) as written.

    Why unparsed: the config sits below the projects (docs/architecture.md), so it cannot
    know their sections. A project *declares* its section (``BaseProject.deploy_section``)
    and parses this with ``project_section`` once the project is resolved; keeping the keys
    here lets ``to_dict`` and a round trip through ``from_dict`` carry them unchanged."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _looks_like_model_config(raw: Mapping[str, Any]) -> bool:
    """An mmengine model config passed where the deploy config goes (arguments swapped):
    worth its own message, since the unknown key 'model' would otherwise suggest 'model_io'."""
    model = raw.get("model")
    return isinstance(model, Mapping) and "type" in model and "project" not in raw and "export" not in raw


class BaseDeploymentConfig:
    """Typed view of a deploy config. Build with ``fromfile`` or ``from_dict``."""

    def __init__(self, data: Mapping[str, Any], *, source: str = "<dict>") -> None:
        self.source = source
        self.raw = dict(data)
        project = self.raw.get("project")
        own = project if isinstance(project, str) and project not in _SECTIONS and project not in _SCALARS else None
        unknown = [
            k for k in self.raw if k not in _SECTIONS and k not in _SCALARS and k != own and not k.startswith("_")
        ]
        if unknown and _looks_like_model_config(self.raw):
            raise ConfigError(
                f"{source}: this looks like a MODEL config (it has model = dict(type={self.raw['model'].get('type')!r}) "
                "and no 'project' or 'export'), not a deploy config",
                hint="the order is DEPLOY_CFG MODEL_CFG [CHECKPOINT]: modeldeploy run deploy.py model.py ckpt.pth",
            )
        if unknown:
            raise self._unknown_top_level(unknown[0], {own} if own else set())
        self.project: str | None = self.raw.get("project")
        self.task_type: str | None = self.raw.get("task_type")
        if self.task_type is not None and self.task_type not in _TASK_TYPES:
            raise ConfigError(
                f"{source}: invalid value for 'task_type': {self.task_type!r}", hint=f"use one of {list(_TASK_TYPES)}"
            )
        self.checkpoint_path: str | None = self.raw.get("checkpoint_path")
        self.use_ema: bool = bool(self.raw.get("use_ema", False))
        sections: dict[str, Section] = {
            name: parse_section(model, self.raw.get(name) or {}, key=name, source=source)
            for name, model in _SECTIONS.items()
        }
        if own is not None and own in self.raw:
            sections[own] = parse_section(UnparsedSection, self.raw[own] or {}, key=own, source=source)
        self._project_sections: dict[tuple[str, type[Section]], Section] = {}
        self.sections = sections
        self.export: ExportSection = sections["export"]  # type: ignore[assignment]
        self.runtime_io: RuntimeIOSection = sections["runtime_io"]  # type: ignore[assignment]
        self.model_io: ModelIOSection = sections["model_io"]  # type: ignore[assignment]
        self.onnx_config: ONNXConfigSection = sections["onnx_config"]  # type: ignore[assignment]
        self.backend_config: BackendConfigSection = sections["backend_config"]  # type: ignore[assignment]
        self.verification: VerificationSection = sections["verification"]  # type: ignore[assignment]
        self.evaluation: EvaluationSection = sections["evaluation"]  # type: ignore[assignment]
        self._check_combinations()

    def _unknown_top_level(self, key: str, also_known: set[str]) -> ConfigError:
        known = sorted(set(_SECTIONS) | _SCALARS | also_known)
        return ConfigError(
            f"{self.source}: unknown top-level key '{key}' (value {self.raw[key]!r})",
            hint=did_you_mean(key, known) + f"known keys: {', '.join(known)}",
        )

    def project_section(self, model: type[S] | None, key: str) -> S | None:
        """The project's own section ``key`` parsed as ``model`` (the project's declared
        ``deploy_section``), once per config; None when the project declares none.

        A config that sets a section for a project that reads none gets the same error as
        any unknown top-level key."""
        if model is None:
            if key in self.raw:
                raise self._unknown_top_level(key, set())
            return None
        cached = self._project_sections.get((key, model))
        if cached is None:
            cached = parse_section(model, self.raw.get(key) or {}, key=key, source=self.source)
            self._project_sections[(key, model)] = cached
        return cached  # type: ignore[return-value]

    # ------------------------------------------------------------------ loading
    @classmethod
    def fromfile(cls, path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> BaseDeploymentConfig:
        data = load_mmengine_config(path, cfg_options)
        return cls(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> BaseDeploymentConfig:
        return cls(data, source=source)

    # ------------------------------------------------------------------ rules
    def _err(self, key: str, value: Any, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.source}: '{key}' = {value!r}: {problem}", hint=fix)

    def _check_combinations(self) -> None:
        ex = self.export
        if ex.should_export_tensorrt and ex.device == "cpu":
            raise self._err(
                "export.mode",
                ex.mode,
                "TensorRT needs a CUDA device but export.device is 'cpu'",
                "set export.device='cuda:0' or export.mode='onnx'",
            )
        if ex.mode == "trt" and not ex.onnx_path and not ex.should_export_onnx:
            pass  # trt-only without onnx_path: the runner exports ONNX as an intermediate
        for mode, scenarios in self.verification.scenarios.items():
            for i, sc in enumerate(scenarios):
                for side in ("ref", "test"):
                    b, d = getattr(sc, f"{side}_backend"), getattr(sc, f"{side}_device")
                    if b == "tensorrt" and d == "cpu":
                        raise self._err(
                            f"verification.scenarios.{mode}[{i}].{side}_device",
                            d,
                            "TensorRT runs only on CUDA",
                            f"set {side}_device='cuda:0'",
                        )
                if sc.test_precision == "fp16" and (
                    sc.test_backend not in BACKEND_PRECISIONS or sc.test_device == "cpu"
                ):
                    raise self._err(
                        f"verification.scenarios.{mode}[{i}].test_precision",
                        "fp16",
                        f"an fp16 {sc.test_backend} on {sc.test_device} cannot run "
                        + (
                            "(its precision comes from the engine)"
                            if sc.test_backend == "tensorrt"
                            else "(fp16 needs CUDA)"
                        ),
                        "use test_device='cuda:0' with pytorch or onnxruntime, or drop test_precision",
                    )
        for name, be in self.evaluation.backends.items():
            dev = be.device or ex.device
            if name == "tensorrt" and be.enabled and dev == "cpu":
                raise self._err(
                    "evaluation.backends.tensorrt.device",
                    dev,
                    "TensorRT runs only on CUDA",
                    "set device='cuda:0' or enabled=False",
                )
            if be.precision is not None and name == "pytorch" and be.precision not in ("fp32", "fp16"):
                raise self._err(
                    "evaluation.backends.pytorch.precision",
                    be.precision,
                    "PyTorch evaluates in fp32 or fp16 (autocast)",
                    "use 'fp32' or 'fp16'",
                )
            if name == "pytorch" and be.precision == "fp16" and dev == "cpu":
                raise self._err(
                    "evaluation.backends.pytorch.precision",
                    "fp16",
                    "fp16 autocast evaluation needs CUDA",
                    "use precision='fp32' on CPU",
                )
            self._check_backend_options(name, be, dev)
        bc = self.backend_config
        if bc.common_config.precision_policy == "explicit_int8" and not (
            ex.should_export_onnx or ex.should_export_tensorrt
        ):
            raise self._err(
                "backend_config.common_config.precision_policy",
                "explicit_int8",
                "INT8 Q/DQ needs an export",
                "set export.mode to 'onnx', 'trt' or 'both'",
            )

    def _check_backend_options(self, name: str, be: BackendEvalSection, dev: str) -> None:
        """Speed options and precisions per backend (sections.BACKEND_OPTION_KEYS): a key the
        backend would ignore, or one its device cannot run, is an error rather than a no-op."""
        key = f"evaluation.backends.{name}"
        allowed = BACKEND_OPTION_KEYS.get(name, ())
        for opt in be.options_set():
            if opt not in allowed:
                readers = [b for b, keys in BACKEND_OPTION_KEYS.items() if opt in keys]
                raise self._err(
                    f"{key}.{opt}",
                    getattr(be, opt),
                    f"the {name} backend does not read '{opt}' (only {', '.join(readers)} does)",
                    f"remove {opt} from {key}",
                )
        if name == "onnxruntime" and be.precision is not None and be.precision not in BACKEND_PRECISIONS[name]:
            raise self._err(
                f"{key}.precision",
                be.precision,
                "onnxruntime evaluates the fp32 graph or its fp16 conversion (INT8 comes from precision_policy)",
                "use 'fp32' or 'fp16'; for INT8 set backend_config.common_config.precision_policy='explicit_int8'",
            )
        if name == "onnxruntime" and be.precision == "fp16" and dev == "cpu":
            raise self._err(
                f"{key}.precision",
                "fp16",
                "the fp16 graph runs on ONNX Runtime's CUDA execution provider; the CPU one has few fp16 kernels",
                f"set {key}.device='cuda:0' or precision='fp32'",
            )
        if name == "onnxruntime" and be.channels_last and dev == "cpu":
            raise self._err(
                f"{key}.channels_last",
                True,
                "channels_last selects the CUDA execution provider's NHWC kernels",
                f"set {key}.device='cuda:0' or drop channels_last",
            )
        if be.cuda_graph and dev == "cpu":
            raise self._err(
                f"{key}.cuda_graph",
                True,
                "CUDA-graph capture needs a CUDA device",
                f"set {key}.device='cuda:0' or drop cuda_graph",
            )
        if be.compile_mode in ("reduce-overhead", "max-autotune") and be.cuda_graph:
            raise self._err(
                f"{key}.compile_mode",
                be.compile_mode,
                "this torch.compile mode captures CUDA graphs itself, so cuda_graph=True would capture twice",
                "use compile_mode='max-autotune-no-cudagraphs' with cuda_graph=True, or drop cuda_graph",
            )
        if be.compile_cache_dir and not be.compile_mode:
            raise self._err(
                f"{key}.compile_cache_dir",
                be.compile_cache_dir,
                "a compile cache without torch.compile is never used",
                f"set {key}.compile_mode or remove compile_cache_dir",
            )

    # ------------------------------------------------------------------ derived views
    @property
    def work_dir(self) -> Path:
        return Path(self.export.work_dir)

    @property
    def precision_policy(self) -> str:
        return self.backend_config.common_config.precision_policy

    def verification_scenarios(self) -> tuple[Scenario, ...]:
        """Configured scenarios for the export mode, or the sensible default pairs."""
        if not (self.verification.enabled and self.export.verify) or self.export.mode == "none":
            return ()
        configured = self.verification.scenarios.get(self.export.mode)
        if configured is not None:
            return configured
        dev = self.export.device
        out: list[Scenario] = []
        if self.export.should_export_onnx:
            out.append(Scenario(ref_backend="pytorch", ref_device=dev, test_backend="onnxruntime", test_device=dev))
        if self.export.should_export_tensorrt:
            out.append(Scenario(ref_backend="pytorch", ref_device=dev, test_backend="tensorrt", test_device=dev))
        return tuple(out)

    def evaluation_backends(self) -> dict[str, BackendEvalSection]:
        """Enabled backends to evaluate (defaults follow the export mode)."""
        if not self.evaluation.enabled:
            return {}
        cfg = dict(self.evaluation.backends)
        if not cfg:
            cfg["pytorch"] = BackendEvalSection()
            if self.export.should_export_onnx or self.export.mode == "none":
                cfg["onnxruntime"] = BackendEvalSection()
            if self.export.should_export_tensorrt:
                cfg["tensorrt"] = BackendEvalSection()
        return {k: v for k, v in cfg.items() if v.enabled}

    def needs_tensorrt(self) -> bool:
        scen = any("tensorrt" in (s.ref_backend, s.test_backend) for s in self.verification_scenarios())
        return self.export.should_export_tensorrt or scen or "tensorrt" in self.evaluation_backends()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("project", "task_type", "checkpoint_path", "use_ema")}
        out.update({k: v.model_dump(mode="json") for k, v in self.sections.items()})
        return out


def read_mmengine_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """Run an mmengine config file (Python) and return the ``mmengine.Config``.

    Only the runtime (the Job) does this: a config file is code. Every failure becomes one
    ConfigError naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist", hint="check the path (or use builtin:<project>/<file>)")
    if p.suffix not in (".py", ".json", ".yaml", ".yml"):
        raise ConfigError(
            f"config file {p} has suffix {p.suffix!r}", hint="mmengine configs are .py (or .json/.yaml) files"
        )
    from modeldeploy.core.awml_config import fromfile  # AWML configs as written: no custom_imports, scope:: bases

    try:
        cfg = fromfile(p)
    except ConfigError:
        raise
    except SyntaxError as exc:
        raise ConfigError(
            f"{p}: syntax error at line {exc.lineno}: {exc.msg}", hint="fix the Python syntax of the config"
        ) from None
    except Exception as exc:  # noqa: BLE001 - mmengine raises many types for a broken config; report one line
        from modeldeploy.core.config_failure import describe

        message, hint = describe(p, exc)  # names the line that failed (mmengine's lazy-import errors have no text)
        raise ConfigError(message, hint=hint) from None
    if cfg_options:
        try:
            cfg.merge_from_dict(dict(cfg_options))
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"--cfg-options could not be applied to {p}: {exc}", hint="use key=value with dotted keys"
            ) from None
    return cfg


def load_mmengine_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config file as a plain dict (for typed validation)."""
    return to_plain(read_mmengine_config(path, cfg_options).to_dict())
