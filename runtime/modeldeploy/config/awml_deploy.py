"""AWML deployment-framework deploy configs → modeldeploy deploy configs.

Why this exists: AWML users already have deploy configs written for the deployment
framework (vividf/AWML@65fdbffe, ``deployment/core/config/base_config.py``). Its layout is
close to ours but not the same (a ``devices`` alias table, backend name ``onnx``,
``engine_dir``, ``onnx_config.simplify``/``multi_file``/``type``, ``codebase_config``,
``batch_size`` together with ``dynamic_axes``, no ``project``). Rather than refusing such a
file at its first key, ``run``/``check-config`` convert it in memory and
``modeldeploy convert-config`` writes the converted file, with every decision listed.

Everything here is a pure function of the loaded config dict (no file system access, no
imports of projects), so each mapping rule is unit-tested on its own.

Facts from the framework that the rules rely on (read at 65fdbffe, not copied):
- Paths (``checkpoint_path``, ``export.work_dir``/``onnx_path``, ``runtime_io.info_file``,
  ``model_dir``/``engine_dir``) are used as given with ``os.path``: relative paths are
  relative to the process's working directory. modeldeploy resolves them the same way.
- Defaults when a key is absent: ``export.mode='both'``, ``export.work_dir='work_dirs'``,
  ``onnx_config.opset_version=16``, ``evaluation.enabled=False``,
  ``evaluation.num_samples=10``, per-backend ``enabled=False``/``device='cpu'``,
  ``verification.enabled=True``, ``tolerance=0.1``, ``num_verify_samples=3``.
- An exported artifact is used before ``model_dir``/``engine_dir`` (ArtifactManager);
  those keys only matter for a backend this run does not export.
- A verification scenario's device is an alias looked up in ``verification.devices``
  (then ``devices.cpu``/``devices.cuda``), used as given when it is not an alias.
- An integer ``model_io.batch_size`` switches ``dynamic_axes`` off.
- Only ``backend_config.model_inputs[0]`` is used; for CenterPoint that one entry holds
  the profiles of both engines (each build sets the inputs its network has).
- The YOLOX_opt_elan ONNX wrapper outputs raw box regression (not decoded) with sigmoid
  objectness and class scores, i.e. our ``onnx_config.decode_in_inference=False``.
- ``codebase_config`` and ``onnx_config.type`` are not read by the framework (mmdeploy
  leftovers); ``onnx_config.simplify`` runs onnx-simplifier and only warns on failure;
  ``onnx_config.multi_file`` says whether the ONNX artifact is a directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from modeldeploy.errors import ConfigError

log = logging.getLogger(__name__)

AWML_REF = "vividf/AWML@65fdbffe deployment framework"
DOC = "docs/awml.md"

# task_type (AWML) → modeldeploy project
TASK_TO_PROJECT = {"detection3d": "centerpoint", "detection2d": "yolox", "classification": "calibration"}
# codebase_config.type (mmdeploy) → project, used only when task_type is absent
CODEBASE_TO_PROJECT = {"mmdet3d": "centerpoint", "mmdet": "yolox", "mmpretrain": "calibration", "mmcls": "calibration"}
# Which engine (component) has which TensorRT input, for projects with several engines.
# Must match the projects' export components (tested against them).
PROFILE_INPUT_COMPONENT = {
    "centerpoint": {"input_features": "pts_voxel_encoder", "spatial_features": "pts_backbone_neck_head"},
}
BACKEND_ALIASES = {"onnx": "onnxruntime"}

# Keys that only the AWML layout has: finding one of them means "convert".
_MARKERS = (
    "devices",
    "codebase_config",
    "onnx_config.simplify",
    "onnx_config.multi_file",
    "onnx_config.type",
    "onnx_config.verbose",
    "verification.devices",
    "evaluation.devices",
    "evaluation.models",
    "evaluation.backends.onnx",
    "evaluation.backends.tensorrt.engine_dir",
)


def _our_fields(section: str) -> set[str]:
    """Our own keys at ``section``, accepted unchanged inside an AWML-layout file (e.g.
    set with --cfg-options). Read from the typed sections so new keys need no update here."""
    from modeldeploy.config import deploy_config as dc
    from modeldeploy.config import sections as sc

    if section == "":
        return set(dc._SCALARS)
    models: dict[str, Any] = {**dc._SECTIONS, "backend_config.common_config": sc.TRTCommonConfig}
    if section.startswith("evaluation.backends."):
        return set(sc.BackendEvalSection.model_fields)
    model = models.get(section)
    return set(model.model_fields) if model is not None else set()


@dataclass(frozen=True)
class MappingNote:
    """One decision of the conversion, for the log line and the written file's header."""

    key: str
    action: str  # mapped | dropped | default | kept | resolved
    target: str
    why: str

    def line(self) -> str:
        arrow = f" -> {self.target}" if self.target else ""
        return f"{self.key}: {self.action}{arrow} ({self.why})"


@dataclass
class Conversion:
    """The converted config (our layout, plain builtins) and how it was obtained."""

    data: dict[str, Any]
    notes: list[MappingNote] = field(default_factory=list)
    base_dir: Path | None = None

    def summary(self) -> str:
        """One log line: the keys that were mapped or dropped (defaults and kept keys omitted)."""
        parts = [
            f"{n.key}->{n.target}" if n.action == "mapped" else f"-{n.key}"
            for n in self.notes
            if n.action in ("mapped", "dropped")
        ]
        return ", ".join(parts) if parts else "no key needed mapping"


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _has(d: Mapping[str, Any], dotted: str) -> bool:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


def awml_markers(raw: Mapping[str, Any]) -> list[str]:
    """The AWML-only keys present in ``raw`` (empty for a config in our layout)."""
    found = [k for k in _MARKERS if _has(raw, k)]
    scen = _get(raw, "verification.scenarios")
    if isinstance(scen, Mapping) and any(
        isinstance(sc, Mapping)
        and "onnx" in (_backend_name(sc.get("ref_backend")), _backend_name(sc.get("test_backend")))
        for lst in scen.values()
        if isinstance(lst, (list, tuple))
        for sc in lst
    ):
        found.append("verification.scenarios backend 'onnx'")
    backends = _get(raw, "evaluation.backends")
    if (
        isinstance(backends, Mapping)
        and "evaluation.backends.onnx" not in found
        and "onnx" in {_backend_name(k) for k in backends}
    ):
        found.append("evaluation.backends Backend.ONNX")
    if "project" not in raw and "task_type" in raw:
        found.append("task_type without project")
    return found


def is_awml_layout(raw: Mapping[str, Any]) -> bool:
    """True when ``raw`` is written for AWML's deployment framework rather than for us.

    A config with any AWML-only key, or with ``task_type`` but no ``project`` (AWML picks
    the pipeline from ``task_type``; we need ``project``), is converted.
    """
    return bool(awml_markers(raw))


def _unsupported(source: str, key: str, value: Any, why: str, fix: str) -> ConfigError:
    return ConfigError(
        f"{source}: AWML deploy-config key '{key}' = {value!r} is not supported: {why}", hint=f"{fix} (see {DOC})"
    )


def _mapping(source: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: '{key}' must be a dict, got {type(value).__name__} {value!r}", hint=f"write {key} = dict(...)"
        )
    return dict(value)


def _check_keys(source: str, section: str, d: Mapping[str, Any], awml_keys: set[str]) -> None:
    ours = _our_fields(section)
    for k in d:
        if k not in awml_keys and k not in ours and not str(k).startswith("_"):
            key = f"{section}.{k}" if section else str(k)
            known = sorted(awml_keys | ours)
            raise _unsupported(
                source,
                key,
                d[k],
                f"neither AWML's deployment framework nor modeldeploy reads '{k}' here",
                f"remove it or use one of {known}",
            )


def _our_fields_sections() -> set[str]:
    """Our generic sections; a project's own section is the top-level key named after it."""
    from modeldeploy.config import deploy_config as dc

    return set(dc._SECTIONS)


def _backend_name(value: Any) -> Any:
    """AWML allows ``deployment.core.Backend`` members (``Backend.ONNX``) where a backend name
    goes. In a config file that import is lazy (mmengine), so the value is a placeholder whose
    text is the member name; a real enum member carries the name in ``value``."""
    if value is None:
        return value
    if isinstance(value, Enum):
        return str(value.value).strip().lower()
    text = str(value).strip()
    if "Backend." in text:  # the placeholder's text (dict keys: 'ONNX'; plain values: '...Backend.ONNX')
        text = text.rsplit(".", 1)[-1]
    return text.lower()


def _passthrough(section: str, src: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Copy our own keys that the AWML mapping of ``section`` did not set."""
    for k in _our_fields(section):
        if src.get(k) is not None and k not in out:
            out[k] = src[k]


def _is_relative_path(p: Any) -> bool:
    return (
        isinstance(p, str) and p != "" and "://" not in p and not p.startswith("builtin:") and not Path(p).is_absolute()
    )


class _Converter:
    def __init__(
        self, raw: Mapping[str, Any], source: str, base_dir: Path | None, model_cfg: Mapping[str, Any] | None = None
    ) -> None:
        self.raw = dict(raw)
        self.model_cfg = model_cfg
        self.source = source
        self.base_dir = base_dir
        self.notes: list[MappingNote] = []

    def note(self, key: str, action: str, target: str, why: str) -> None:
        self.notes.append(MappingNote(key, action, target, why))

    def err(self, key: str, value: Any, why: str, fix: str) -> ConfigError:
        return _unsupported(self.source, key, value, why, fix)

    # ---------------------------------------------------------------- paths
    def path(self, key: str, value: Any) -> Any:
        """Relative paths stay relative (both tools resolve them against the working
        directory) unless a base directory was given: then they are made absolute there."""
        if self.base_dir is None or not _is_relative_path(value):
            return value
        out = str((self.base_dir / value).resolve())
        self.note(
            key,
            "resolved",
            out,
            f"relative path made absolute under {self.base_dir} (AWML opens it against the working directory it runs in)",
        )
        return out

    # ---------------------------------------------------------------- top level
    def run(self) -> Conversion:
        raw = self.raw
        top_awml = {
            "task_type",
            "checkpoint_path",
            "devices",
            "codebase_config",
            "export",
            "runtime_io",
            "model_io",
            "onnx_config",
            "backend_config",
            "evaluation",
            "verification",
        }
        project = raw.get("project")
        task = raw.get("task_type")
        if project is None:
            project = self.project_from(task, raw.get("codebase_config"))
        if project not in TASK_TO_PROJECT.values():
            raise ConfigError(
                f"{self.source}: unknown project {project!r}", hint=f"use one of {sorted(TASK_TO_PROJECT.values())}"
            )
        self.project = project
        for k in raw:
            if (
                k not in top_awml
                and k not in _our_fields("")
                and k not in _our_fields_sections()
                and k != project
                and not str(k).startswith("_")
            ):
                raise self.err(
                    k,
                    raw[k],
                    "neither AWML's deployment framework nor modeldeploy reads this top-level key",
                    f"remove it; known keys: {sorted(top_awml | _our_fields(''))}",
                )
        out: dict[str, Any] = {"project": project}
        if task is not None:
            if task not in TASK_TO_PROJECT:
                raise self.err(
                    "task_type",
                    task,
                    "modeldeploy has projects only for detection3d (CenterPoint), detection2d (YOLOX_opt_elan) and classification (CalibrationStatusClassification)",
                    "use one of those task types",
                )
            out["task_type"] = task
        if "codebase_config" in raw:
            self.note(
                "codebase_config",
                "dropped",
                "",
                "an mmdeploy key the deployment framework does not read; the project comes from task_type",
            )
        if "use_ema" in raw:
            out["use_ema"] = raw["use_ema"]
        if raw.get("checkpoint_path") is not None:
            out["checkpoint_path"] = self.path("checkpoint_path", raw["checkpoint_path"])
        self.devices = self.device_table()
        out["export"] = self.export()
        out["runtime_io"] = self.runtime_io()
        if "model_io" in raw and (io := self.model_io()):
            out["model_io"] = io
        out["onnx_config"] = self.onnx_config()
        if "backend_config" in raw:
            out["backend_config"] = self.backend_config(out.get("model_io", {}))
        out["verification"] = self.verification()
        out["evaluation"] = self.evaluation(out["export"]["mode"])
        if project in raw:
            out[project] = raw[project]
        for k, v in raw.items():
            if str(k).startswith("_"):
                out[k] = v
        return Conversion(out, self.notes, self.base_dir)

    def project_from(self, task: Any, codebase: Any) -> str:
        if task in TASK_TO_PROJECT:
            self.note(
                "task_type",
                "mapped",
                "project",
                f"task_type {task!r} is handled by modeldeploy project {TASK_TO_PROJECT[task]!r}",
            )
            return TASK_TO_PROJECT[task]
        cb = codebase.get("type") if isinstance(codebase, Mapping) else None
        if task is None and cb in CODEBASE_TO_PROJECT:
            self.note(
                "codebase_config.type",
                "mapped",
                "project",
                f"no task_type; codebase {cb!r} is handled by project {CODEBASE_TO_PROJECT[cb]!r}",
            )
            return CODEBASE_TO_PROJECT[cb]
        raise self.err(
            "task_type",
            task,
            "it does not name a modeldeploy project",
            "set task_type to 'detection3d', 'detection2d' or 'classification' (or add project = 'centerpoint' | 'yolox' | 'calibration')",
        )

    def device_table(self) -> dict[str, str]:
        devices = _mapping(self.source, "devices", self.raw.get("devices"))
        _check_keys(self.source, "devices", devices, {"cpu", "cuda"})
        cpu = str(devices.get("cpu") or "cpu").strip().lower()
        cuda = devices.get("cuda", "cuda:0")
        cuda = None if cuda in (None, "") else str(cuda).strip().lower()
        if cuda == "cuda":
            cuda = "cuda:0"
        if "devices" in self.raw:
            self.note(
                "devices",
                "dropped",
                "",
                f"AWML's device alias table; its aliases were resolved in place (cpu={cpu!r}, cuda={cuda!r})",
            )
        table = {"cpu": cpu}
        if cuda is not None:
            table["cuda"] = cuda
        return table

    # ---------------------------------------------------------------- sections
    def export(self) -> dict[str, Any]:
        if "export" not in self.raw:
            raise ConfigError(
                f"{self.source}: missing 'export' section (AWML's framework refuses this too)",
                hint="add export = dict(mode='onnx', work_dir='work_dirs/<name>')",
            )
        ex = _mapping(self.source, "export", self.raw["export"])
        _check_keys(self.source, "export", ex, {"mode", "work_dir", "onnx_path"})
        out: dict[str, Any] = {}
        mode = ex.get("mode")
        if mode is None:
            mode = "both"
            self.note("export.mode", "default", "export.mode", "absent: AWML's default 'both' written explicitly")
        mode = str(mode).strip().lower()
        out["mode"] = mode
        out["work_dir"] = self.path("export.work_dir", ex.get("work_dir", "work_dirs"))
        if ex.get("onnx_path") is not None:
            out["onnx_path"] = self.path("export.onnx_path", ex["onnx_path"])
        if "device" in ex:
            out["device"] = ex["device"]
        else:
            needs_cuda = mode in ("trt", "both")
            dev = self.devices.get("cuda", "cuda:0") if needs_cuda else self.devices["cpu"]
            out["device"] = dev
            self.note(
                "export.device",
                "default",
                "export.device",
                f"AWML has no export device; {'devices.cuda (TensorRT needs CUDA)' if needs_cuda else 'devices.cpu'} = {dev!r} for mode {mode!r}",
            )
        _passthrough("export", ex, out)
        return out

    def runtime_io(self) -> dict[str, Any]:
        rt = _mapping(self.source, "runtime_io", self.raw.get("runtime_io"))
        _check_keys(self.source, "runtime_io", rt, {"info_file", "sample_idx"})
        out: dict[str, Any] = {}
        info = rt.get("info_file")
        if info:
            out["info_file"] = self.path("runtime_io.info_file", info)
        elif "info_file" in rt:
            out["info_file"] = None
            self.note(
                "runtime_io.info_file",
                "mapped",
                "runtime_io.info_file=None",
                "empty: None (no dataset; the project's bundled sample or synthesised input)",
            )
        if rt.get("data_root"):
            out["data_root"] = self.path("runtime_io.data_root", rt["data_root"])
        elif out.get("info_file"):
            root = self.data_root_for_info()
            if root is not None:
                out["data_root"] = self.path("runtime_io.data_root", root)
        out["sample_idx"] = rt.get("sample_idx", 0)
        _passthrough("runtime_io", rt, out)
        return out

    def data_root_for_info(self) -> str | None:
        """Where AWML looks for the files an info file names, which our loaders take from
        ``runtime_io.data_root`` (AWML's deploy config has no such key)."""
        if self.project == "yolox":
            self.note(
                "runtime_io.data_root",
                "default",
                "runtime_io.data_root='.'",
                "AWML opens the info file's img_path entries as written: relative ones against the working directory",
            )
            return "."
        model_root = self.model_cfg.get("data_root") if self.model_cfg is not None else None
        if model_root:
            self.note(
                "runtime_io.data_root",
                "default",
                f"runtime_io.data_root={model_root!r}",
                "AWML joins the info file's relative paths to the model config's data_root",
            )
            return str(model_root)
        if self.project == "centerpoint":
            self.note(
                "runtime_io.data_root",
                "default",
                "runtime_io.data_root='data/t4dataset/'",
                "AWML joins relative lidar paths to the model config's data_root, 'data/t4dataset/' when it has none"
                + ("" if self.model_cfg is not None else "; pass the model config to take its data_root"),
            )
            return "data/t4dataset/"
        self.note(
            "runtime_io.data_root",
            "default",
            "",
            "AWML takes it from the model config's data_root"
            + (
                " (which has none: set runtime_io.data_root)"
                if self.model_cfg is not None
                else "; pass the model config, or set runtime_io.data_root"
            ),
        )
        return None

    def model_io(self) -> dict[str, Any]:
        io = _mapping(self.source, "model_io", self.raw["model_io"])
        _check_keys(
            self.source,
            "model_io",
            io,
            {
                "input_name",
                "input_shape",
                "input_dtype",
                "additional_inputs",
                "output_name",
                "additional_outputs",
                "batch_size",
                "dynamic_axes",
            },
        )
        out = dict(io)
        if isinstance(io.get("batch_size"), int) and io.get("dynamic_axes"):
            del out["dynamic_axes"]
            self.note(
                "model_io.dynamic_axes",
                "dropped",
                "",
                f"batch_size={io['batch_size']} is an integer: AWML then exports a fixed batch and ignores dynamic_axes",
            )
        elif "batch_size" in io and io["batch_size"] is None:
            del out["batch_size"]
        if self.project == "centerpoint" and io:
            self.note(
                "model_io",
                "dropped",
                "",
                "informational for centerpoint: its two graphs' inputs (input_features, spatial_features) are fixed by "
                "the project, which refuses model_io settings",
            )
            return {}
        return out

    def onnx_config(self) -> dict[str, Any]:
        oc = _mapping(self.source, "onnx_config", self.raw.get("onnx_config"))
        _check_keys(
            self.source,
            "onnx_config",
            oc,
            {
                "type",
                "opset_version",
                "do_constant_folding",
                "export_params",
                "keep_initializers_as_inputs",
                "save_file",
                "simplify",
                "multi_file",
                "verbose",
            },
        )
        out = {k: v for k, v in oc.items() if k not in ("type", "simplify", "multi_file", "verbose")}
        if "type" in oc:
            if oc["type"] != "onnx":
                raise self.err(
                    "onnx_config.type",
                    oc["type"],
                    "the ONNX export section can only be of type 'onnx'",
                    "set type='onnx' or remove it",
                )
            self.note(
                "onnx_config.type", "dropped", "", "an mmdeploy marker the framework does not read; always 'onnx'"
            )
        if "simplify" in oc:
            self.note(
                "onnx_config.simplify",
                "dropped",
                "",
                "modeldeploy does not run onnx-simplifier (AWML only warns when it fails); the graph is constant-folded by torch.onnx and verified against PyTorch",
            )
        if "multi_file" in oc:
            multi = self.project in PROFILE_INPUT_COMPONENT
            self.note(
                "onnx_config.multi_file",
                "dropped",
                "",
                f"the project knows its graph count: {self.project} writes {'one .onnx per component into <work_dir>/onnx/' if multi else 'one .onnx file'}",
            )
        if "verbose" in oc:
            self.note("onnx_config.verbose", "dropped", "", "torch.onnx's verbose graph print; use --log-level DEBUG")
        if "opset_version" not in oc:
            out["opset_version"] = 16
            self.note(
                "onnx_config.opset_version",
                "default",
                "onnx_config.opset_version",
                "absent: AWML's default 16 written explicitly",
            )
        if self.project == "yolox" and "decode_in_inference" not in oc:
            out["decode_in_inference"] = False
            self.note(
                "onnx_config.decode_in_inference",
                "default",
                "onnx_config.decode_in_inference=False",
                "AWML's YOLOX_opt_elan export writes the raw box regression (not decoded), sigmoid objectness and class scores",
            )
        if self.project in PROFILE_INPUT_COMPONENT and "save_file" in out:
            del out["save_file"]
            self.note(
                "onnx_config.save_file",
                "dropped",
                "",
                f"{self.project} writes one file per component (pts_voxel_encoder.onnx, pts_backbone_neck_head.onnx), as AWML's multi-file export does",
            )
        return out

    def backend_config(self, model_io: Mapping[str, Any]) -> dict[str, Any]:
        bc = _mapping(self.source, "backend_config", self.raw["backend_config"])
        _check_keys(self.source, "backend_config", bc, {"type", "common_config", "model_inputs"})
        out: dict[str, Any] = {k: v for k, v in bc.items() if k != "model_inputs"}
        if out.get("type", "tensorrt") != "tensorrt":
            raise self.err(
                "backend_config.type",
                out["type"],
                "the only engine backend is TensorRT",
                "set type='tensorrt' or remove it",
            )
        cc = _mapping(self.source, "backend_config.common_config", bc.get("common_config"))
        _check_keys(self.source, "backend_config.common_config", cc, {"precision_policy", "max_workspace_size"})
        entries = list(bc.get("model_inputs") or [])
        if any(isinstance(e, Mapping) and "component" in e for e in entries):
            out["model_inputs"] = entries  # already our layout
            return out
        if not entries:
            return out
        for i, e in enumerate(entries):
            if not isinstance(e, Mapping):
                raise ConfigError(
                    f"{self.source}: 'backend_config.model_inputs[{i}]' must be a dict, got {e!r}",
                    hint="write dict(input_shapes=dict(<input>=dict(min_shape=..., opt_shape=..., max_shape=...)))",
                )
            _check_keys(self.source, f"backend_config.model_inputs[{i}]", e, {"input_shapes"})
        if len(entries) > 1:
            self.note(
                "backend_config.model_inputs[1:]", "dropped", "", "AWML builds every engine with the first entry only"
            )
        shapes = dict(entries[0].get("input_shapes") or {})
        table = PROFILE_INPUT_COMPONENT.get(self.project)
        if table is not None:
            by_comp: dict[str, dict[str, Any]] = {}
            for name, rng in shapes.items():
                if name not in table:
                    raise self.err(
                        f"backend_config.model_inputs[0].input_shapes.{name}",
                        rng,
                        f"{self.project}'s engines have no input {name!r}",
                        f"use {sorted(table)}",
                    )
                by_comp.setdefault(table[name], {})[name] = rng
            out["model_inputs"] = [dict(component=c, input_shapes=s) for c, s in by_comp.items()]
            self.note(
                "backend_config.model_inputs[0]",
                "mapped",
                "backend_config.model_inputs[*].component",
                f"one AWML entry split per engine by input name ({', '.join(f'{n}->{c}' for n, c in table.items())})",
            )
            return out
        graph_input = model_io.get("input_name", "input")
        keep = {n: r for n, r in shapes.items() if n == graph_input}
        for n in shapes:
            if n not in keep:
                self.note(
                    f"backend_config.model_inputs[0].input_shapes.{n}",
                    "dropped",
                    "",
                    f"the {self.project} graph has no input {n!r} (its input is model_io.input_name={graph_input!r}); TensorRT cannot set a profile for it",
                )
        out["model_inputs"] = [dict(input_shapes=keep)] if keep else []
        return out

    def resolve_device(self, aliases: Mapping[str, str], value: Any) -> Any:
        return aliases.get(value, value) if isinstance(value, str) else value

    def verification(self) -> dict[str, Any]:
        ver = _mapping(self.source, "verification", self.raw.get("verification"))
        _check_keys(
            self.source, "verification", ver, {"enabled", "tolerance", "num_verify_samples", "devices", "scenarios"}
        )
        aliases = dict(self.devices)
        v_dev = _mapping(self.source, "verification.devices", ver.get("devices"))
        aliases.update({str(k): str(v) for k, v in v_dev.items() if v})
        if "devices" in ver:
            self.note("verification.devices", "dropped", "", "device aliases of the scenarios, resolved in place")
        out: dict[str, Any] = {
            "enabled": ver.get("enabled", True),
            "tolerance": ver.get("tolerance", 0.1),
            "num_verify_samples": ver.get("num_verify_samples", 3),
        }
        for k, dflt in (("tolerance", 0.1), ("num_verify_samples", 3)):
            if k not in ver:
                self.note(
                    f"verification.{k}",
                    "default",
                    f"verification.{k}",
                    f"absent: AWML's default {dflt} written explicitly",
                )
        scen_out: dict[str, list[dict[str, Any]]] = {}
        renamed = False
        for mode, lst in _mapping(self.source, "verification.scenarios", ver.get("scenarios")).items():
            items = []
            for i, sc in enumerate(lst or []):
                if not isinstance(sc, Mapping):
                    raise ConfigError(
                        f"{self.source}: 'verification.scenarios.{mode}[{i}]' must be a dict, got {sc!r}",
                        hint="write dict(ref_backend=..., ref_device=..., test_backend=..., test_device=...)",
                    )
                _check_keys(
                    self.source,
                    f"verification.scenarios.{mode}[{i}]",
                    sc,
                    {"ref_backend", "ref_device", "test_backend", "test_device"},
                )
                s = dict(sc)
                for side in ("ref", "test"):
                    b = _backend_name(s.get(f"{side}_backend"))
                    if b in BACKEND_ALIASES:
                        b = BACKEND_ALIASES[b]
                        renamed = True
                    s[f"{side}_backend"] = b
                    s[f"{side}_device"] = self.resolve_device(aliases, s.get(f"{side}_device"))
                items.append(s)
            scen_out[str(mode)] = items
        if renamed:
            self.note(
                "verification.scenarios.*.{ref,test}_backend='onnx'",
                "mapped",
                "'onnxruntime'",
                "AWML's backend name for ONNX Runtime",
            )
        if scen_out or "scenarios" in ver:
            out["scenarios"] = scen_out
        _passthrough("verification", ver, out)
        return out

    def evaluation(self, mode: str) -> dict[str, Any]:
        ev = _mapping(self.source, "evaluation", self.raw.get("evaluation"))
        _check_keys(
            self.source, "evaluation", ev, {"enabled", "num_samples", "verbose", "backends", "devices", "models"}
        )
        out: dict[str, Any] = {
            "enabled": ev.get("enabled", False),
            "num_samples": ev.get("num_samples", 10),
            "verbose": ev.get("verbose", False),
        }
        _passthrough("evaluation", ev, out)
        for k, dflt in (("enabled", False), ("num_samples", 10)):
            if k not in ev:
                self.note(
                    f"evaluation.{k}", "default", f"evaluation.{k}", f"absent: AWML's default {dflt} written explicitly"
                )
        for k in ("devices", "models"):
            if k in ev:
                self.note(
                    f"evaluation.{k}",
                    "dropped",
                    "",
                    "AWML only logs it; each backend's device is evaluation.backends.<name>.device",
                )
        exported = {"onnxruntime": mode in ("onnx", "both"), "tensorrt": mode in ("trt", "both"), "pytorch": True}
        self.raw_onnx_path = bool(_get(self.raw, "export.onnx_path"))
        backends: dict[str, Any] = {}
        merged: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, be in _mapping(self.source, "evaluation.backends", ev.get("backends")).items():
            key = _backend_name(name)
            ours = BACKEND_ALIASES.get(key, key)
            if ours not in ("pytorch", "onnxruntime", "tensorrt"):
                raise self.err(
                    f"evaluation.backends.{name}", be, "unknown backend", "use pytorch, onnx (onnxruntime) or tensorrt"
                )
            if ours != key:
                self.note(
                    f"evaluation.backends.{key}",
                    "mapped",
                    f"evaluation.backends.{ours}",
                    "AWML's backend name for ONNX Runtime",
                )
            be = _mapping(self.source, f"evaluation.backends.{key}", be)
            if (
                ours in merged
            ):  # both 'onnx' (the file) and 'onnxruntime' (e.g. --cfg-options): the later one's keys win
                be = {**merged[ours][1], **be}
            merged[ours] = (key, be)
        for ours, (key, be) in merged.items():
            path_key = {"onnxruntime": "model_dir", "tensorrt": "engine_dir", "pytorch": None}[ours]
            allowed = {"enabled", "device"} | ({path_key} if path_key else set())
            if ours == "tensorrt":
                allowed.add("model_dir")
            _check_keys(self.source, f"evaluation.backends.{key}", be, allowed)
            b: dict[str, Any] = {
                "enabled": be.get("enabled", False),
                "device": self.resolve_device(self.devices, be.get("device") or "cpu"),
            }
            if "precision" in be:
                b["precision"] = be["precision"]
            src_key = path_key if path_key and be.get(path_key) else ("model_dir" if be.get("model_dir") else None)
            if src_key:
                where = f"evaluation.backends.{key}.{src_key}"
                if exported[ours]:
                    self.note(
                        where,
                        "dropped",
                        "",
                        f"export.mode={mode!r} exports this backend and AWML evaluates the fresh export before {src_key}",
                    )
                else:
                    b["model_dir"] = self.path(where, be[src_key])
                    if src_key != "model_dir":
                        self.note(
                            where,
                            "mapped",
                            f"evaluation.backends.{ours}.model_dir",
                            "a TensorRT engine file or a directory of engines",
                        )
            if (
                b["enabled"]
                and not exported[ours]
                and "model_dir" not in b
                and not (ours == "onnxruntime" and self.raw_onnx_path)
            ):
                b["enabled"] = False
                self.note(
                    f"evaluation.backends.{key}.enabled",
                    "mapped",
                    f"evaluation.backends.{ours}.enabled=False",
                    f"export.mode={mode!r} produces no {ours} model and no {path_key} is set: AWML skips this backend with a warning",
                )
            backends[ours] = b
        if backends or "backends" in ev:
            out["backends"] = backends
        return out


def convert(
    raw: Mapping[str, Any],
    *,
    source: str = "<dict>",
    base_dir: Path | None = None,
    model_cfg: Mapping[str, Any] | None = None,
) -> Conversion:
    """Map an AWML-layout deploy config dict to our layout.

    ``base_dir``: where AWML was run from; relative paths are made absolute under it.
    None keeps them relative (resolved against the working directory at run time, as AWML does).
    ``model_cfg``: the model config (a mapping), where AWML finds the dataset's ``data_root``.
    Raises ConfigError (one line: key, why, fix) for a key neither tool reads.
    """
    return _Converter(raw, source, base_dir, model_cfg).run()


def _needs_model_cfg(raw: Mapping[str, Any]) -> bool:
    return bool(_get(raw, "runtime_io.info_file")) and not _get(raw, "runtime_io.data_root")


ModelCfgSource = str | Path | Callable[[], str | Path] | None


def _read_model_cfg(model_cfg: ModelCfgSource, raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model config as a dict, read (and, for a callable, located) only when the
    conversion needs its data_root."""
    if model_cfg is None or not _needs_model_cfg(raw):
        return None
    from modeldeploy.config.deploy_config import read_mmengine_config

    path = model_cfg() if callable(model_cfg) else model_cfg
    return dict(read_mmengine_config(path).to_dict())


def render_python(conv: Conversion, source: str) -> str:
    """The converted config as a Python (mmengine) config file with a header listing every
    mapped, dropped and defaulted key and why."""
    import pprint

    lines = [
        f"# modeldeploy deploy config converted from the AWML deployment-framework config {source}",
        f"# by `modeldeploy convert-config` ({AWML_REF} layout; mapping: {DOC}).",
        (
            f"# Relative paths were made absolute under {conv.base_dir}, the directory AWML opens them from."
            if conv.base_dir is not None
            else "# Relative paths are kept as written: run modeldeploy from the directory you ran AWML from."
        ),
        "#",
        "# Mapped / dropped / defaulted keys:",
    ]
    lines += [f"#   {n.line()}" for n in conv.notes] or ["#   (none)"]
    lines.append("")
    data = conv.data
    order = ["project", "task_type", "checkpoint_path", "use_ema"]
    for k in order + [k for k in data if k not in order]:
        if k in data:
            lines.append(f"{k} = {pprint.pformat(data[k], indent=1, width=110, sort_dicts=False)}")
    return "\n".join(lines) + "\n"


def load_deploy_config(
    path: str | Path,
    cfg_options: Mapping[str, Any] | None = None,
    model_cfg_path: ModelCfgSource = None,
    finalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
):  # -> BaseDeploymentConfig
    """Load a deploy config in either layout; an AWML-layout file is converted in memory
    with one INFO line naming the mapping (so `run` and `check-config` accept it alike).
    ``model_cfg_path`` (``run`` passes it) supplies the dataset's data_root as AWML finds it.
    ``finalize`` (the command line's ``--device``) edits the merged data in our layout just
    before it is validated, once."""
    from modeldeploy.config.deploy_config import BaseDeploymentConfig, load_mmengine_config

    data = load_mmengine_config(path, cfg_options)
    if is_awml_layout(data):
        # base_dir = the working directory: AWML opens every relative path against it, while
        # some of our loaders would join a relative info_file to data_root instead
        conv = convert(data, source=str(path), base_dir=Path.cwd(), model_cfg=_read_model_cfg(model_cfg_path, data))
        log.info(
            "%s: AWML deployment-framework layout (%s), converted: %s",
            path,
            ", ".join(awml_markers(data)[:3]),
            conv.summary(),
        )
        data = conv.data
    if finalize is not None:
        data = finalize(data)
    return BaseDeploymentConfig(data, source=str(path))


def convert_file(
    path: str | Path,
    output: str | Path | None = None,
    base_dir: Path | None = None,
    model_cfg_path: ModelCfgSource = None,
) -> str:
    """Convert the AWML deploy config at ``path``; write it to ``output`` (atomically) when given.

    The result is validated as a modeldeploy config before anything is written, so a
    written file always loads. Returns the file text.
    """
    import os
    import tempfile

    from modeldeploy.config.deploy_config import BaseDeploymentConfig, load_mmengine_config

    data = load_mmengine_config(path)
    if not is_awml_layout(data):
        raise ConfigError(
            f"{path}: already in modeldeploy's layout (it sets 'project' and has no AWML-only key)",
            hint="use it as it is with `modeldeploy run` / `check-config`",
        )
    conv = convert(data, source=str(path), base_dir=base_dir, model_cfg=_read_model_cfg(model_cfg_path, data))
    BaseDeploymentConfig(conv.data, source=f"{path} (converted)")
    text = render_python(conv, str(path))
    if output is not None:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return text
