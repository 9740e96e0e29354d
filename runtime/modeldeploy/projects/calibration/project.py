"""The ``calibration`` project: CalibrationStatusClassification plugged into the runner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.project import BaseProject, register_project
from modeldeploy.errors import ConfigError
from modeldeploy.projects.calibration.data_loader import CalibrationDataLoader
from modeldeploy.projects.calibration.evaluator import CalibrationEvaluator
from modeldeploy.projects.calibration.fusion import fuse
from modeldeploy.projects.calibration.model import ImageClassifier, build_classifier
from modeldeploy.projects.calibration.pipeline import CalibrationPipeline
from modeldeploy.projects.calibration.settings import data_settings, model_cfg_dict
from modeldeploy.projects.calibration.synthetic import example_sample

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig

COMPONENT_NAME = "calibration_classifier"
IN_CHANNELS = 5  # B, G, R, depth, intensity
NUM_CLASSES = 2  # 0 = miscalibrated, 1 = calibrated


@register_project
class CalibrationProject(BaseProject):
    name = "calibration"
    task_type = "classification"

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        cfg = model_cfg_dict(model_cfg)
        if "model" not in cfg:
            raise ConfigError(
                "model config has no 'model' section",
                hint="add model = dict(type='ImageClassifier', backbone=..., neck=..., head=...)",
            )
        model = build_classifier(cfg["model"])
        if model.in_channels != IN_CHANNELS:
            raise ConfigError(
                f"model config: 'model.backbone.in_channels' = {model.in_channels}: the calibration input has {IN_CHANNELS} channels (BGR, depth, intensity)",
                hint=f"set in_channels={IN_CHANNELS}",
            )
        if model.num_classes != NUM_CLASSES:
            raise ConfigError(
                f"model config: 'model.head.num_classes' = {model.num_classes}: the classifier is binary (0 = miscalibrated, 1 = calibrated)",
                hint=f"set num_classes={NUM_CLASSES}",
            )
        data_settings(model_cfg)  # fail on a bad data section before any work
        return model.eval()

    def build_data_loader(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CalibrationDataLoader:
        rio = cfg.runtime_io
        return CalibrationDataLoader.from_runtime_io(rio.info_file, rio.data_root, data_settings(model_cfg))

    def build_evaluator(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CalibrationEvaluator:
        return CalibrationEvaluator(data_settings(model_cfg).class_names)

    def has_data(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> bool:
        """A configured dataset, or the bundled sample for a model config that names
        ``calibration_data.bundled_sample`` (the demo configs do; AWML's own configs do not)."""
        rio = cfg.runtime_io
        raw = model_cfg_dict(model_cfg_dict(model_cfg).get("calibration_data") or {})
        return bool(rio.info_file) or bool(rio.data_root) or "bundled_sample" in raw  # '' = unset, as in AWML

    def example_sample(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> dict[str, Any]:
        """A synthetic camera image + LiDAR scan at ``model_io.input_shape``'s (H, W) (else the
        bundled sample's size): the network is resolution-agnostic, so the traced size is the
        one the deploy config asks the engine to be built for."""
        shape = cfg.model_io.input_shape
        if shape and len(shape) == 3:
            height, width = int(shape[1]), int(shape[2])
        else:
            b = data_settings(model_cfg).bundled_sample
            height, width = b.height, b.width
        if height < 16 or width < 16:
            raise ConfigError(
                f"{cfg.source}: 'model_io.input_shape' = {shape}: height and width must be >= 16",
                hint="e.g. input_shape=(5, 1860, 2880)",
            )
        return example_sample(height, width)

    def export_components(
        self, model: torch.nn.Module, cfg: BaseDeploymentConfig, model_cfg: Any, sample: dict[str, Any]
    ) -> list[ExportComponent]:
        io = cfg.model_io
        if io.additional_inputs or io.additional_outputs:
            raise ConfigError(
                f"{cfg.source}: 'model_io.additional_inputs/additional_outputs' are not used by the calibration classifier",
                hint="remove them: the graph has one input and one output",
            )
        in_ch = model.in_channels if isinstance(model, ImageClassifier) else IN_CHANNELS
        if io.input_shape and (len(io.input_shape) != 3 or io.input_shape[0] != in_ch):
            raise ConfigError(
                f"{cfg.source}: 'model_io.input_shape' = {io.input_shape}: expected (C, H, W) with C = {in_ch}",
                hint=f"e.g. input_shape=({in_ch}, 96, 160)",
            )
        x = fuse(
            sample["image"], sample["points"], sample["cam2img"], sample["lidar2cam"], data_settings(model_cfg), "cpu"
        )
        dynamic_axes: dict[str, dict[int, str]] = {}
        if io.batch_size is not None:
            x = x.repeat(io.batch_size, 1, 1, 1)
        elif io.dynamic_axes:
            unknown = sorted(set(io.dynamic_axes) - {io.input_name, io.output_name})
            if unknown:
                raise ConfigError(
                    f"{cfg.source}: 'model_io.dynamic_axes' names {unknown}, which the graph does not have",
                    hint=f"use '{io.input_name}' and '{io.output_name}'",
                )
            bad = [a for a in io.dynamic_axes.get(io.output_name, {}) if a != 0]
            if bad:
                raise ConfigError(
                    f"{cfg.source}: 'model_io.dynamic_axes.{io.output_name}' makes axis {bad[0]} dynamic; logits are (B, {NUM_CLASSES})",
                    hint="only axis 0 (batch) of the output can be dynamic",
                )
            dynamic_axes = {k: dict(v) for k, v in io.dynamic_axes.items()}
        return [
            ExportComponent(
                name=COMPONENT_NAME,
                module=model,
                input_names=[io.input_name],
                output_names=[io.output_name],
                sample_inputs={io.input_name: x},
                dynamic_axes=dynamic_axes,
                file_name=cfg.onnx_config.save_file,
            )
        ]

    def build_pipeline(
        self, backends: dict[str, BaseBackend], cfg: BaseDeploymentConfig, model_cfg: Any, device: torch.device
    ) -> CalibrationPipeline:
        if len(backends) != 1:
            raise ConfigError(
                f"the calibration pipeline runs one component, got {sorted(backends)}",
                hint=f"export only '{COMPONENT_NAME}'",
            )
        return CalibrationPipeline(
            backends, data_settings(model_cfg), device, cfg.model_io.input_name, cfg.model_io.output_name
        )
