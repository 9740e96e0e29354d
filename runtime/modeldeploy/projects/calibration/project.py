"""The ``calibration`` project: CalibrationStatusClassification plugged into the runner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.model_config import model_cfg_dict
from modeldeploy.core.model_io import batch_and_axes, check_input_shape, refuse_unsupported
from modeldeploy.core.project import BaseProject, register_project
from modeldeploy.errors import ConfigError
from modeldeploy.projects.calibration.data_loader import CalibrationDataLoader
from modeldeploy.projects.calibration.evaluator import CalibrationEvaluator
from modeldeploy.projects.calibration.fusion import fuse
from modeldeploy.projects.calibration.model import ImageClassifier, build_classifier
from modeldeploy.projects.calibration.pipeline import CalibrationPipeline
from modeldeploy.projects.calibration.settings import CalibrationDataSettings, data_settings
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

    def parse_settings(self, model_cfg: Any) -> CalibrationDataSettings:
        """``calibration_data`` of the model config: how the fused input is built."""
        return data_settings(model_cfg)

    def build_model(self, model_cfg: Any) -> ImageClassifier:
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
        self.settings(model_cfg)  # fail on a bad data section before any work
        return model.eval()

    def build_data_loader(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CalibrationDataLoader:
        rio = cfg.runtime_io
        return CalibrationDataLoader.from_runtime_io(rio.info_file, rio.data_root, self.settings(model_cfg))

    def build_evaluator(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CalibrationEvaluator:
        return CalibrationEvaluator(self.settings(model_cfg).class_names)

    def has_data(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> bool:
        """A configured dataset, or the bundled sample for a model config that names
        ``calibration_data.bundled_sample`` (the demo configs do; AWML's own configs do not)."""
        rio = cfg.runtime_io
        named = "bundled_sample" in self.settings(model_cfg).model_fields_set
        return bool(rio.info_file) or bool(rio.data_root) or named  # '' = unset, as in AWML

    def example_sample(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> dict[str, Any]:
        """A synthetic camera image + LiDAR scan at ``model_io.input_shape``'s (H, W) (else the
        bundled sample's size): the network is resolution-agnostic, so the traced size is the
        one the deploy config asks the engine to be built for."""
        shape = cfg.model_io.input_shape
        if shape and len(shape) == 3:
            height, width = int(shape[1]), int(shape[2])
        else:
            b = self.settings(model_cfg).bundled_sample
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
        refuse_unsupported(
            cfg,
            ("additional_inputs", "additional_outputs"),
            "the calibration classifier",
            "the graph has one input and one output",
            "remove them",
        )
        in_ch = model.in_channels if isinstance(model, ImageClassifier) else IN_CHANNELS
        check_input_shape(
            cfg, (in_ch, None, None), f"(C, H, W) with C = {in_ch}", hint=f"e.g. input_shape=({in_ch}, 96, 160)"
        )
        x = fuse(
            sample["image"], sample["points"], sample["cam2img"], sample["lidar2cam"], self.settings(model_cfg), "cpu"
        )
        x, dynamic_axes = batch_and_axes(
            cfg,
            x,
            names=(io.input_name, io.output_name),
            batch_only=(io.output_name,),
            why_batch_only=f"logits are (B, {NUM_CLASSES}): only axis 0 (batch) of the output can be dynamic",
        )
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
            backends, self.settings(model_cfg), device, cfg.model_io.input_name, cfg.model_io.output_name
        )
