"""A tiny in-test project (a test double for a real model project) for runner tests."""

from __future__ import annotations

from typing import Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.data_loader import BaseDataLoader
from modeldeploy.core.evaluator import BaseEvaluator
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.core.project import BaseProject


class ToyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().mean((2, 3)))


class ToyLoader(BaseDataLoader):
    def __init__(self, n: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.y = (self.x.mean((1, 2, 3)) > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def load_sample(self, index: int) -> dict[str, Any]:
        return {"image": self.x[index], "label": int(self.y[index])}


class ToyEvaluator(BaseEvaluator):
    headline_metric = "accuracy"

    def reset(self) -> None:
        self.hits: list[bool] = []

    def add(self, prediction: Any, sample: dict[str, Any]) -> None:
        self.hits.append(prediction == sample["label"])

    def compute(self) -> dict[str, Any]:
        return {"accuracy": sum(self.hits) / len(self.hits)}


class ToyPipeline(BasePipeline):
    def preprocess(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"input": sample["image"].unsqueeze(0).to(self.device)}

    def postprocess(self, raw: dict[str, torch.Tensor], sample: dict[str, Any]) -> Any:
        return int(raw["output"].argmax(1)[0])


class ToyProject(BaseProject):
    name = "toy"
    task_type = "classification"

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        torch.manual_seed(0)
        return ToyNet().eval()

    def build_data_loader(self, cfg: Any, model_cfg: Any) -> BaseDataLoader:
        return ToyLoader()

    def build_evaluator(self, cfg: Any, model_cfg: Any) -> BaseEvaluator:
        return ToyEvaluator()

    def export_components(
        self, model: torch.nn.Module, cfg: Any, model_cfg: Any, sample: dict[str, Any]
    ) -> list[ExportComponent]:
        return [
            ExportComponent(
                "toy",
                model,
                ["input"],
                ["output"],
                {"input": sample["image"].unsqueeze(0)},
                {"input": {0: "batch"}},
                "toy.onnx",
            )
        ]

    def build_pipeline(
        self, backends: dict[str, BaseBackend], cfg: Any, model_cfg: Any, device: torch.device
    ) -> BasePipeline:
        return ToyPipeline(backends, device)
