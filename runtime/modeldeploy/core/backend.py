"""One interface for every runnable backend (the contract pipelines are written against).

Why in ``core``: pipelines (core) and projects hold backends through this interface while
the implementations (``modeldeploy.backends``) sit on the floor above; the interface must
not live with them or core would import up.

Verification and evaluation call ``infer(inputs) -> outputs`` and never special-case a
backend. Inputs and outputs are torch tensors keyed by graph name; outputs come back in
``output_names`` order (by name, never by position in some engine's binding table).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch


class BaseBackend(ABC):
    backend_name: str = "base"

    def __init__(self, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        self.device = torch.device(device)
        self.precision = precision

    @property
    def label(self) -> str:
        """``pytorch:cpu``, ``onnxruntime:cuda``… — the key used in results.json."""
        return f"{self.backend_name}:{self.device.type}"

    @property
    @abstractmethod
    def input_names(self) -> list[str]: ...

    @property
    @abstractmethod
    def output_names(self) -> list[str]: ...

    @abstractmethod
    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run once. Tensors may live on any device; results live on ``self.device``."""

    def check_inputs(self, inputs: Mapping[str, torch.Tensor]) -> None:
        from modeldeploy.errors import IONameMismatch

        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise IONameMismatch(
                f"{self.label}: missing input(s) {missing}; got {sorted(inputs)}",
                hint="name the inputs as the exported graph does (model_io.input_name)",
            )

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract: most backends hold nothing
        """Release sessions/engines. Safe to call twice."""

    def __enter__(self) -> BaseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
