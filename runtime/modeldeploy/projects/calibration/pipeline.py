"""Calibration pipeline: fuse image + LiDAR on the device → classifier → softmax/argmax."""

from __future__ import annotations

from typing import Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.projects.calibration.fusion import fuse
from modeldeploy.projects.calibration.settings import CalibrationDataSettings


class CalibrationPipeline(BasePipeline):
    def __init__(
        self,
        backends: dict[str, BaseBackend],
        settings: CalibrationDataSettings,
        device: str | torch.device = "cpu",
        input_name: str = "input",
        output_name: str = "output",
    ) -> None:
        super().__init__(backends, device)
        self.settings = settings
        self.input_name = input_name
        self.output_name = output_name

    def preprocess(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        x = fuse(sample["image"], sample["points"], sample["cam2img"], sample["lidar2cam"], self.settings, self.device)
        return {self.input_name: x}

    def postprocess(self, raw: dict[str, torch.Tensor], sample: dict[str, Any]) -> dict[str, Any]:
        logits = raw[self.output_name].float()
        probs = torch.softmax(logits.reshape(-1, logits.shape[-1])[0], dim=0).cpu()
        label = int(torch.argmax(probs))
        return {
            "label": label,
            "score": float(probs[label]),
            "probs": probs.tolist(),
            "class_name": self.settings.class_names[label] if label < len(self.settings.class_names) else str(label),
        }
