"""PyTorch backend: runs an export component's module eagerly (the reference)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent


class PyTorchBackend(BaseBackend):
    backend_name = "pytorch"

    def __init__(self, component: ExportComponent, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        super().__init__(device, precision)
        self.component = component
        self.module = component.module.to(self.device).eval()
        self._autocast = precision == "fp16"
        if self._autocast and self.device.type != "cuda":
            from modeldeploy.errors import ConfigError

            raise ConfigError("PyTorch fp16 (autocast) needs a CUDA device", hint="use precision fp32 on CPU")

    @property
    def input_names(self) -> list[str]:
        return list(self.component.input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self.component.output_names)

    @torch.inference_mode()
    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        args = tuple(inputs[n].to(self.device, non_blocking=True) for n in self.input_names)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self._autocast):
            out = self.module(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        if len(out) != len(self.output_names):
            from modeldeploy.errors import InferenceError

            raise InferenceError(
                f"{self.component.name}: module returned {len(out)} outputs, expected {self.output_names}",
                hint="the component's forward must return its outputs in output_names order",
            )
        return {n: (t.float() if self._autocast and t.is_floating_point() else t) for n, t in zip(self.output_names, out)}
