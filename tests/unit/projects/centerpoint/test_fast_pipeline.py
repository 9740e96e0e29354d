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


def _deploy_cfg(tmp_path: Path, extra: str = ""):
    from modeldeploy.config import BaseDeploymentConfig

    p = tmp_path / "deploy.py"
    p.write_text("project='centerpoint'\nexport=dict(mode='onnx', device='cpu')\n" + extra)
    return BaseDeploymentConfig.fromfile(p)


def test_deploy_config_key_selects_the_fast_pipeline(tiny_cfg, pipelines, tmp_path: Path) -> None:
    """centerpoint.fast_pipeline=True makes the project build FastCenterPointPipeline; the
    default stays the reference pipeline (the class itself, not a subclass)."""
    from modeldeploy.projects import project_for

    backends = pipelines[0].backends
    fast_cfg = _deploy_cfg(tmp_path, "centerpoint = dict(fast_pipeline=True)\n")
    pipe = project_for(fast_cfg, tiny_cfg).build_pipeline(backends, fast_cfg, tiny_cfg, torch.device("cpu"))
    assert type(pipe) is FastCenterPointPipeline
    plain_cfg = _deploy_cfg(tmp_path)
    pipe = project_for(plain_cfg, tiny_cfg).build_pipeline(backends, plain_cfg, tiny_cfg, torch.device("cpu"))
    assert type(pipe) is CenterPointPipeline


def test_a_typo_in_the_centerpoint_section_is_refused_by_name(tiny_cfg, tmp_path: Path) -> None:
    from modeldeploy.errors import ConfigError
    from modeldeploy.projects import project_for

    with pytest.raises(ConfigError) as ei:
        project_for(_deploy_cfg(tmp_path, "centerpoint = dict(fast_pipline=True)\n"), tiny_cfg)
    assert "centerpoint.fast_pipline" in ei.value.one_line()
