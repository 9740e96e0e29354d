"""BaseEvaluator: accumulates predictions against ground truth, then computes metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any


class BaseEvaluator(ABC):
    #: the metric shown in status / Prometheus / report headline (e.g. ``accuracy``, ``mAP``)
    headline_metric: str = "accuracy"

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def add(self, prediction: Any, sample: dict[str, Any]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """Metrics: the headline metric must be a float; others may be nested (per class)."""

    def write_predictions(self, path: Path) -> Path | None:
        """Write predictions in a re-scorable public format; return the path or None."""
        return None
