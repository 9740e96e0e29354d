from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.unit.runtime.toy_project import ToyNet


@pytest.fixture()
def toy_files(tmp_path: Path) -> dict[str, Path]:
    """A model config file and a matching checkpoint for the toy project."""
    model_cfg = tmp_path / "model_cfg.py"
    model_cfg.write_text("model = dict(type='ToyNet')\n")
    ckpt = tmp_path / "toy.pth"
    torch.manual_seed(1)
    torch.save({"meta": {"epoch": 1}, "state_dict": ToyNet().state_dict()}, ckpt)
    return {"model_cfg": model_cfg, "checkpoint": ckpt}
