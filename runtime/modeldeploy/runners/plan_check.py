"""Dry-run validation of a whole deployment plan: configs → graphs → TensorRT profiles.

``check-config`` on the deploy config alone cannot see mistakes that only show once the
graphs exist — e.g. a ``backend_config.model_inputs`` list (or a ModelDeployment's
``spec.export.profiles``, which replaces it) that has no profile for one of the exported
graphs would otherwise fail at the TensorRT stage, on a GPU node, after every download.
This builds the model from the model config (random weights: no checkpoint is read), a
synthesised example input (no dataset is read), the export components exactly as ``run``
builds them, and checks every graph's inputs against the profiles with the TensorRT
exporter's own ``check_profiles``. No ONNX is written and no GPU is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.core.project import BaseProject
from modeldeploy.projects import project_for


@dataclass
class PlanReport:
    """What the dry run found: the graphs ``run`` would export and their input shapes
    (-1 = dynamic), plus problems that do not stop a run but make its results misleading."""

    graphs: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def graph_input_shapes(
    sample_inputs: dict[str, Any], dynamic_axes: dict[str, dict[int, str]]
) -> dict[str, tuple[int, ...]]:
    """The ONNX graph's input shapes as the exporter writes them: traced shape, -1 on dynamic axes."""
    out: dict[str, tuple[int, ...]] = {}
    for name, tensor in sample_inputs.items():
        dims = list(tensor.shape)
        for axis in dynamic_axes.get(name, {}):
            dims[axis] = -1
        out[name] = tuple(int(d) for d in dims)
    return out


def unevaluated_engine_warning(cfg: BaseDeploymentConfig) -> str | None:
    """A run that builds a TensorRT engine but evaluates only other backends reports the
    engine's precision next to another backend's latency (`kubectl get mdep`)."""
    if not (cfg.export.should_export_tensorrt and cfg.evaluation.enabled):
        return None
    if "tensorrt" in cfg.evaluation_backends():
        return None
    return (
        f"{cfg.source}: export.mode={cfg.export.mode!r} builds a TensorRT engine but evaluation.backends "
        "does not evaluate it; add tensorrt=dict(device='cuda:0') to evaluation.backends"
    )


def check_plan(cfg: BaseDeploymentConfig, model_cfg_path: str | Path, project: BaseProject | None = None) -> PlanReport:
    """Raise ConfigError for a plan ``run`` would refuse later; return the graphs and warnings."""
    from modeldeploy.config.deploy_config import read_mmengine_config
    from modeldeploy.exporters.tensorrt import check_profiles, profiles_for

    project = project if project is not None else project_for(cfg)
    model_cfg = read_mmengine_config(model_cfg_path)
    project.bind(cfg, model_cfg)  # the project's sections and settings, parsed once
    model = project.build_model(model_cfg).eval()
    sample = project.example_sample(cfg, model_cfg)
    components = project.export_components(project.prepare_for_export(model, cfg), cfg, model_cfg, sample)
    report = PlanReport()
    for comp in components:
        shapes = graph_input_shapes({n: comp.sample_inputs[n] for n in comp.input_names}, comp.dynamic_axes)
        report.graphs[comp.name] = shapes
        if cfg.export.should_export_tensorrt:
            check_profiles(comp.name, shapes, profiles_for(cfg.backend_config, comp.name))
    if cfg.export.should_export_tensorrt:
        named = {prof.component for prof in cfg.backend_config.model_inputs if prof.component is not None}
        for extra in sorted(named - set(report.graphs)):
            report.warnings.append(
                f"{cfg.source}: backend_config.model_inputs names component {extra!r}, which this plan does not export "
                f"(graphs: {sorted(report.graphs)})"
            )
    warning = unevaluated_engine_warning(cfg)
    if warning:
        report.warnings.append(warning)
    return report
