"""FastCenterPointPipeline (fixed shapes, no host sync between stages) gives the reference pipeline's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
from modeldeploy.projects.centerpoint.fast_pipeline import FastCenterPointPipeline
from modeldeploy.projects.centerpoint.pipeline import STAGES, CenterPointPipeline
from modeldeploy.projects.centerpoint.project import export_components_for
from modeldeploy.projects.centerpoint.synthetic import CLASSES, INFO_FILE_NAME

from .helpers import randomized_model


@pytest.fixture(scope="module")
def pipelines(tiny_cfg, synthetic_root: Path):
    model = randomized_model(tiny_cfg)
    loader = CenterPointDataLoader(
        synthetic_root / INFO_FILE_NAME, synthetic_root, CLASSES, model.settings.point_loading
    )
    comps = export_components_for(model, loader.load_sample(0))
    backends = {c.name: PyTorchBackend(c) for c in comps}
    return CenterPointPipeline(backends, model.settings), FastCenterPointPipeline(backends, model.settings), loader


def test_fast_pipeline_matches_the_reference_pipeline(pipelines) -> None:
    ref_pipe, fast_pipe, loader = pipelines
    for i in range(2):
        sample = loader.load_sample(i)
        a, b = ref_pipe(sample), fast_pipe(sample)
        assert set(b.stage_ms) == {"preprocess", "postprocess", *STAGES}
        for k, v in a.raw_outputs.items():
            assert torch.equal(b.raw_outputs[k], v), k
        pa, pb = a.prediction, b.prediction
        assert len(pa["scores_3d"]) > 0
        for k in ("labels_3d", "scores_3d", "bboxes_3d"):
            assert np.array_equal(pa[k], pb[k]), k


def test_fast_pipeline_runs_the_encoder_on_a_fixed_number_of_rows(pipelines) -> None:
    _, fast_pipe, loader = pipelines
    s = fast_pipe.settings
    a = fast_pipe.preprocess(loader.load_sample(0))
    b = fast_pipe.preprocess({"points": torch.full((10, s.in_channels), 500.0)})  # nothing in range
    assert (
        a["input_features"].shape == b["input_features"].shape == (s.max_voxels, s.max_num_points, s.decorated_channels)
    )
    assert int(b["voxel_count"]) == 0
    out = fast_pipe({"points": torch.full((10, s.in_channels), 500.0), "token": "empty"})
    ref = pipelines[0]({"points": torch.full((10, s.in_channels), 500.0), "token": "empty"})
    assert np.array_equal(out.prediction["labels_3d"], ref.prediction["labels_3d"])
