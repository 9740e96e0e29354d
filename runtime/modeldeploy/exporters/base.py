"""BaseExporter: turns one export component into file(s) on disk, all-or-nothing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy.core.components import ExportComponent


@dataclass
class ExportedModel:
    component: str
    path: Path  # the graph / engine file
    extra_files: list[Path] = field(default_factory=list)  # e.g. ONNX external data
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # exporter-specific facts (cache hit, opset…)

    @property
    def files(self) -> list[Path]:
        return [self.path, *self.extra_files]


class BaseExporter(ABC):
    @abstractmethod
    def export(self, component: ExportComponent, out_dir: Path) -> ExportedModel: ...
