"""Base inference pipeline: preprocess → model component(s) → postprocess.

The same pipeline class runs every backend: it receives one ``BaseBackend`` per export
component and times each stage with ``StageTimer`` (CUDA events on a GPU, so the numbers
include the device work, not just the launch).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from modeldeploy.core.backend import BaseBackend
from modeldeploy.core.timing import StageTimer


@dataclass
class PipelineOutput:
    prediction: Any
    raw_outputs: dict[str, torch.Tensor]
    stage_ms: dict[str, float] = field(default_factory=dict)
    total_ms: float = 0.0


class BasePipeline(ABC):
    """Subclasses implement the three steps; ``__call__`` times them."""

    def __init__(self, backends: dict[str, BaseBackend], device: str | torch.device = "cpu") -> None:
        self.backends = backends
        self.device = torch.device(device)

    @property
    def label(self) -> str:
        return next(iter(self.backends.values())).label

    @abstractmethod
    def preprocess(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]: ...

    def run_model(self, inputs: dict[str, torch.Tensor], timer: StageTimer) -> dict[str, torch.Tensor]:
        """Default: a single component. Multi-component pipelines override and time sub-stages."""
        (backend,) = self.backends.values()
        with timer.stage("model"):
            return backend.infer(inputs)

    @abstractmethod
    def postprocess(self, raw: dict[str, torch.Tensor], sample: dict[str, Any]) -> Any: ...

    @torch.inference_mode()
    def __call__(self, sample: dict[str, Any]) -> PipelineOutput:
        timer = StageTimer(self.device)
        self._timer: StageTimer | None = timer  # lets preprocess/postprocess time nested stages via self.stage()
        try:
            with timer.total():
                with timer.stage("preprocess"):
                    inputs = self.preprocess(sample)
                raw = self.run_model(inputs, timer)
                with timer.stage("postprocess"):
                    prediction = self.postprocess(raw, sample)
        finally:
            self._timer = None
        stages, total = timer.collect()
        return PipelineOutput(prediction=prediction, raw_outputs=raw, stage_ms=stages, total_ms=total)

    def stage(self, name: str) -> AbstractContextManager[None]:
        """Time a nested stage (e.g. voxelize inside preprocess) when called from __call__;
        a no-op otherwise (verification calls preprocess/postprocess untimed)."""
        timer = getattr(self, "_timer", None)
        return timer.stage(name) if timer is not None else nullcontext()

    def model_inputs(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Preprocessed inputs, used by verification to feed every backend identical tensors."""
        with torch.inference_mode():
            return self.preprocess(sample)

    def component_inputs(self, name: str, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The tensors export component ``name`` receives for ``sample`` (INT8 calibration data).

        Default: a single-component pipeline feeds its one graph ``model_inputs``. A pipeline
        with several graphs must override: what a later graph receives is computed by the
        earlier ones, and feeding it the first graph's inputs would calibrate it on nonsense.
        """
        if set(self.backends) != {name}:
            from modeldeploy.errors import ConfigError

            raise ConfigError(
                f"{type(self).__name__} runs components {sorted(self.backends)} and cannot say what '{name}' receives, so it cannot be INT8-calibrated",
                hint="use another precision_policy, or override component_inputs in the project's pipeline",
            )
        return self.model_inputs(sample)
