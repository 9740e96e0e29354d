"""Pipeline stages, names and bad input through the PyTorch backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.errors import DataError
from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
from modeldeploy.projects.centerpoint.pipeline import STAGES, CenterPointPipeline
from modeldeploy.projects.centerpoint.project import export_components_for
from modeldeploy.projects.centerpoint.synthetic import CLASSES, INFO_FILE_NAME

from .helpers import randomized_model


@pytest.fixture(scope="module")
def pipeline_and_loader(tiny_cfg, synthetic_root: Path):
    model = randomized_model(tiny_cfg)
    loader = CenterPointDataLoader(
        synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, model.settings.point_loading
    )
    comps = export_components_for(model, loader.load_sample(0))
    return CenterPointPipeline({c.name: PyTorchBackend(c) for c in comps}, model.settings), loader


def test_pipeline_times_every_stage_and_returns_boxes(pipeline_and_loader) -> None:
    pipe, loader = pipeline_and_loader
    out = pipe(loader.load_sample(1))
    assert set(out.stage_ms) == {"preprocess", "postprocess", *STAGES}
    assert all(v >= 0 for v in out.stage_ms.values()) and out.total_ms >= out.stage_ms["backbone_neck_head"]
    pred = out.prediction
    assert pred["bboxes_3d"].shape[1] == 9 and len(pred["scores_3d"]) == len(pred["labels_3d"]) == len(
        pred["bboxes_3d"]
    )
    assert set(out.raw_outputs) == {"heatmap", "reg", "height", "dim", "rot", "vel"}


def test_pipeline_handles_a_cloud_without_points_in_range(pipeline_and_loader) -> None:
    pipe, _ = pipeline_and_loader
    out = pipe({"points": torch.full((10, 4), 500.0), "token": "empty"})
    assert out.raw_outputs["heatmap"].shape[0] == 1


def test_pipeline_rejects_points_with_wrong_columns(pipeline_and_loader) -> None:
    pipe, _ = pipeline_and_loader
    with pytest.raises(DataError, match="N×4"):
        pipe({"points": torch.zeros(10, 3), "token": "bad"})
    with pytest.raises(DataError, match="no 'points'"):
        pipe({"token": "none"})
