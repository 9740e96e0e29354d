"""Shared AWML-compatibility fixtures: the project's own AWML-style model configs
(tests/fixtures/awml) and checkpoints written by mmengine's Runner on those models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.awml import runner_checkpoints as rc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "awml"
MODEL_CONFIGS: dict[tuple[str, str], Path] = {
    ("calibration", "tiny"): FIXTURES
    / "calibration/projects/CalibrationStatusClassification/configs/t4dataset/resnet18_5ch_tiny_1xb4-1e_j6gen2.py",
    ("calibration", "awml"): FIXTURES
    / "calibration/projects/CalibrationStatusClassification/configs/t4dataset/resnet18_5ch_1xb16-50e_j6gen2.py",
    ("centerpoint", "tiny"): FIXTURES
    / "centerpoint/projects/CenterPoint/configs/t4dataset/Centerpoint/pillar_032_tiny_secfpn_1xb2_25m_base.py",
    ("centerpoint", "awml"): FIXTURES
    / "centerpoint/projects/CenterPoint/configs/t4dataset/Centerpoint/second_secfpn_4xb16_121m_base_amp.py",
    ("centerpoint", "awml_v1"): FIXTURES
    / "centerpoint/projects/CenterPoint/configs/t4dataset/Centerpoint/second_secfpn_4xb16_121m_base_v1.py",
    ("yolox", "tiny"): FIXTURES
    / "yolox/projects/YOLOX_opt_elan/configs/t4dataset/YOLOX_opt-S-DynamicRecognition/yolox-tiny-opt-elan_256x256_t4dataset.py",
    ("yolox", "awml"): FIXTURES
    / "yolox/projects/YOLOX_opt_elan/configs/t4dataset/YOLOX_opt-S-DynamicRecognition/yolox-s-opt-elan_960x960_300e_t4dataset.py",
}


@dataclass
class RunnerCheckpoint:
    path: Path
    model_cfg_path: Path
    initial_state: dict[str, torch.Tensor]  # the weights before the Runner trained


def build(project: str, size: str) -> tuple[Any, torch.nn.Module]:
    from modeldeploy.config.deploy_config import read_mmengine_config
    from modeldeploy.projects import get_project

    cfg = read_mmengine_config(MODEL_CONFIGS[(project, size)])
    return cfg, get_project(project).build_model(cfg)


def _train(project: str, size: str, ema: bool, work_dir: Path) -> RunnerCheckpoint:
    torch.manual_seed(0)
    _, net = build(project, size)
    initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if project == "calibration":
        path = rc.train_with_runner(net, rc.calibration_samples(), rc.calibration_loss, work_dir, ema=ema)
    elif project == "yolox":
        path = rc.train_with_runner(net, rc.yolox_samples(64), rc.yolox_loss, work_dir, ema=ema, optimizer="SGD")
    else:
        canvas = (32, 32)
        path = rc.train_with_runner(
            net, rc.centerpoint_samples(net, canvas), rc.centerpoint_loss_for(canvas), work_dir, ema=ema
        )
    return RunnerCheckpoint(path, MODEL_CONFIGS[(project, size)], initial)


@pytest.fixture(scope="session")
def runner_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str, bool], RunnerCheckpoint]:
    """``runner_checkpoint(project, size, ema)``: trained once per session, then reused."""
    cache: dict[tuple[str, str, bool], RunnerCheckpoint] = {}

    def get(project: str, size: str, ema: bool) -> RunnerCheckpoint:
        key = (project, size, ema)
        if key not in cache:
            cache[key] = _train(
                project, size, ema, tmp_path_factory.mktemp(f"runner_{project}_{size}_{'ema' if ema else 'plain'}")
            )
        return cache[key]

    return get
