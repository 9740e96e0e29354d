"""The committed demo checkpoint: safe to load, strict, and it actually classifies.

Accuracy is measured here on the first 50 samples of the bundled evaluation sample
(regenerated in a temp cache; sample i depends only on (seed, i)), through the same
pipeline the runner uses — nothing is read back from the checkpoint's own meta.
"""

from __future__ import annotations

from pathlib import Path

import torch

import modeldeploy.projects.calibration as calibration_pkg
from modeldeploy.config import BaseDeploymentConfig, load_mmengine_config
from modeldeploy.projects.calibration.data_loader import CalibrationDataLoader
from modeldeploy.projects.calibration.evaluator import CalibrationEvaluator
from modeldeploy.projects.calibration.project import COMPONENT_NAME, CalibrationProject
from modeldeploy.projects.calibration.settings import data_settings

PKG = Path(calibration_pkg.__file__).parent
CHECKPOINT = PKG / "assets" / "resnet18_5ch_tiny.pth"


class _ModuleBackend:
    """Minimal test double of a PyTorch backend: the module behind ``infer``."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def infer(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"output": self.module(inputs["input"])}


def test_checkpoint_is_small_plain_and_mmengine_shaped() -> None:
    assert CHECKPOINT.stat().st_size < 4_000_000
    ckpt = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)  # plain types only
    assert set(ckpt) == {"meta", "state_dict"}
    assert ckpt["meta"]["config"] == "builtin:calibration/resnet18_5ch_tiny.py"
    assert "head.fc.weight" in ckpt["state_dict"]


def test_checkpoint_loads_strict_and_reaches_80_percent_on_bundled_samples(bundled_first50: Path) -> None:
    torch.set_num_threads(1)
    model_cfg = load_mmengine_config(PKG / "configs" / "resnet18_5ch_tiny.py")
    deploy_cfg = BaseDeploymentConfig.fromfile(PKG / "configs" / "deploy_demo.py")
    project = CalibrationProject()
    model = project.load_checkpoint(project.build_model(model_cfg), str(CHECKPOINT), deploy_cfg).eval()
    pipe = project.build_pipeline({COMPONENT_NAME: _ModuleBackend(model)}, deploy_cfg, model_cfg, torch.device("cpu"))  # type: ignore[dict-item]
    loader = CalibrationDataLoader(bundled_first50, settings=data_settings(model_cfg))
    assert len(loader) == 50
    evaluator = CalibrationEvaluator()
    for sample in loader:
        evaluator.add(pipe(sample).prediction, sample)
    metrics = evaluator.compute()
    support = [c["support"] for c in metrics["per_class"].values()]
    assert min(support) >= 15  # both classes present: accuracy is not one class's share
    assert metrics["accuracy"] >= 0.8, metrics
