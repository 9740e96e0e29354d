"""``tiny_classifier``: the smallest complete modeldeploy project (docs/adding-a-project.md).

A 2-class image classifier on a deterministic synthetic dataset. Every hook the runner calls is
here, each in its simplest honest form: build the model from the model config, read samples,
score predictions, say what to export, and run any backend through one pipeline class. The
model config is read once, into typed settings (``parse_settings``), which every hook reuses.
Registered on import (``@register_project``); modeldeploy imports this module when it is named
in ``MODELDEPLOY_PROJECTS`` or published under the ``modeldeploy.projects`` entry point.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from modeldeploy.backends.base import BaseBackend
from modeldeploy.config.parse import parse_section
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.core.model_io import batch_and_axes, refuse_unsupported
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.core.project import BaseProject, register_project
from modeldeploy.errors import ConfigError


class TinyClassifier(torch.nn.Module):
    """conv → ReLU → global average pool → linear: logits (B, num_classes)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, width, 3, padding=1)
        self.fc = torch.nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().mean((2, 3)))


class SyntheticImages(BaseDataLoader):
    """Seeded random images; the label is whether the image's mean is positive."""

    def __init__(self, num_samples: int, channels: int, size: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, channels, size, size, generator=g)
        self.y = (self.x.mean((1, 2, 3)) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def load_sample(self, index: int) -> dict[str, Any]:
        return {"image": self.x[index], "label": int(self.y[index])}


class Accuracy(BaseEvaluator):
    headline_metric = "accuracy"

    def reset(self) -> None:
        self.hits: list[bool] = []

    def add(self, prediction: Any, sample: dict[str, Any]) -> None:
        self.hits.append(prediction == sample["label"])

    def compute(self) -> dict[str, Any]:
        return {"accuracy": sum(self.hits) / len(self.hits)}


class TinyPipeline(BasePipeline):
    """Same class for PyTorch, ONNX Runtime and TensorRT: only ``self.backends`` differs."""

    def __init__(
        self, backends: dict[str, BaseBackend], device: torch.device, input_name: str, output_name: str
    ) -> None:
        super().__init__(backends, device)
        self.input_name, self.output_name = input_name, output_name

    def preprocess(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {self.input_name: sample["image"].unsqueeze(0).to(self.device)}

    def postprocess(self, raw: dict[str, torch.Tensor], sample: dict[str, Any]) -> Any:
        return int(raw[self.output_name].argmax(1)[0])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a typo is an error, not a default


class TinyModel(_Strict):
    in_channels: int = Field(3, ge=1)
    num_classes: int = Field(2, ge=2)
    width: int = Field(4, ge=1)


class TinyData(_Strict):
    num_samples: int = Field(16, ge=1)
    size: int = Field(8, ge=1)


class TinySettings(_Strict):
    model: TinyModel
    data: TinyData


def parse_tiny_settings(model_cfg: Any) -> TinySettings:
    """``model`` and ``tiny_data`` of the model config; a bad key is one ConfigError line."""
    model = dict(model_cfg.get("model") or {})
    if model.pop("type", None) != "TinyClassifier":
        raise ConfigError(
            "the model config must set model = dict(type='TinyClassifier', ...)",
            hint="see examples/custom_project/tiny_classifier/configs/model.py",
        )
    return TinySettings(
        model=parse_section(TinyModel, model, key="model", source="model config"),
        data=parse_section(TinyData, model_cfg.get("tiny_data"), key="tiny_data", source="model config"),
    )


@register_project
class TinyClassifierProject(BaseProject):
    name = "tiny_classifier"
    task_type = "classification"

    def parse_settings(self, model_cfg: Any) -> TinySettings:
        """Parsed once per model config; the hooks read it back with ``self.settings(model_cfg)``."""
        return parse_tiny_settings(model_cfg)

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        return TinyClassifier(**self.settings(model_cfg).model.model_dump()).eval()

    def build_data_loader(self, cfg: Any, model_cfg: Any) -> BaseDataLoader:
        s = self.settings(model_cfg)
        return SyntheticImages(s.data.num_samples, s.model.in_channels, s.data.size)

    def example_sample(self, cfg: Any, model_cfg: Any) -> dict[str, Any]:
        """A sample of the right shape without data: `check-config DEPLOY MODEL` traces with it."""
        s = self.settings(model_cfg)
        return {"image": torch.zeros(s.model.in_channels, s.data.size, s.data.size), "label": 0}

    def build_evaluator(self, cfg: Any, model_cfg: Any) -> BaseEvaluator:
        return Accuracy()

    def export_components(
        self, model: torch.nn.Module, cfg: Any, model_cfg: Any, sample: dict[str, Any]
    ) -> list[ExportComponent]:
        io = cfg.model_io
        # model_io is checked by the shared helper, as in the built-in projects
        refuse_unsupported(
            cfg,
            ("input_shape", "additional_inputs", "additional_outputs"),
            "tiny_classifier",
            "one image in",
            "remove it",
        )
        x, axes = batch_and_axes(
            cfg, sample["image"].unsqueeze(0), (io.input_name, io.output_name), (io.output_name,), "logits are (B, C)"
        )
        return [
            ExportComponent(
                name="tiny_classifier",
                module=model,
                input_names=[io.input_name],
                output_names=[io.output_name],
                sample_inputs={io.input_name: x},
                dynamic_axes=axes,
                file_name=cfg.onnx_config.save_file,
            )
        ]

    def build_pipeline(
        self, backends: dict[str, BaseBackend], cfg: Any, model_cfg: Any, device: torch.device
    ) -> BasePipeline:
        return TinyPipeline(backends, device, cfg.model_io.input_name, cfg.model_io.output_name)
