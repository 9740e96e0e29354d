"""Shared fixtures for the yolox project tests: configs, a tiny synthetic COCO dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CONFIG_DIR = Path(__file__).resolve().parents[4] / "runtime" / "modeldeploy" / "projects" / "yolox" / "configs"


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def awml_cfg():
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / "yolox_s_opt_elan_960.py"))


@pytest.fixture(scope="session")
def tiny_cfg():
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / "yolox_tiny_256.py"))


@pytest.fixture(scope="session")
def coco_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modeldeploy.projects.yolox.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("coco")
    generate_dataset(out, num_images=6, seed=7, min_size=160, max_size=256)
    return out
