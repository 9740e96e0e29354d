"""What gets exported: one or more named torch modules with their graph IO.

A single-network model (calibration, YOLOX) has one component; CenterPoint has two
(``pts_voxel_encoder`` and ``pts_backbone_neck_head``) with voxelization and scatter
between them, outside the graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ExportComponent:
    name: str
    module: torch.nn.Module
    """Called as ``module(*inputs in input_names order)``; returns a tensor or a tuple in
    ``output_names`` order."""
    input_names: list[str]
    output_names: list[str]
    sample_inputs: dict[str, torch.Tensor]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    file_name: str = ""

    def __post_init__(self) -> None:
        if not self.file_name:
            self.file_name = f"{self.name}.onnx"
        missing = [n for n in self.input_names if n not in self.sample_inputs]
        if missing:
            raise ValueError(f"component {self.name}: sample_inputs lacks {missing}")

    def ordered_inputs(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(inputs[n] for n in self.input_names)
