"""Test helpers: a CenterPoint with non-trivial BatchNorm statistics (so parity tests mean something)."""

from __future__ import annotations

import torch

from modeldeploy.projects.centerpoint.model import CenterPoint, build_centerpoint


def randomized_model(cfg, seed: int = 0) -> CenterPoint:
    torch.manual_seed(seed)
    model = build_centerpoint(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()
