"""Shared fixtures: model configs as mmengine Configs, and a small synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CONFIG_DIR = Path(__file__).resolve().parents[4] / "runtime" / "modeldeploy" / "projects" / "centerpoint" / "configs"


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def awml_cfg():
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / "centerpoint_awml.py"))


@pytest.fixture(scope="session")
def tiny_cfg():
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / "centerpoint_tiny.py"))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modeldeploy.projects.centerpoint.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("cp_synth")
    generate_dataset(root, num_frames=3, seed=123)
    return root
