"""CenterPoint export with only a deploy config, a model config and a checkpoint — no dataset.

The example input is one synthetic scene (with a sweep) built in memory by the model
config's own loading pipeline; nothing is generated on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

CONFIG_DIR = Path(__file__).resolve().parents[4] / "runtime" / "modeldeploy" / "projects" / "centerpoint" / "configs"
CHECKPOINT = CONFIG_DIR.parent / "assets" / "centerpoint_tiny.pth"

DEPLOY = """
project = "centerpoint"
task_type = "detection3d"
export = dict(mode="onnx", device="cpu", work_dir={work!r})
runtime_io = dict(info_file=None, data_root=None, sample_idx=0)
onnx_config = dict(opset_version=17)
"""

# The tiny model config without its bundled-sample opt-in: a user's config with no data.
MODEL_NO_DATA = """
_base_ = [{base!r}]
centerpoint_data = None
"""


def _deploy_cfg(tmp_path: Path, overrides: dict | None = None):
    from modeldeploy.config import BaseDeploymentConfig

    path = tmp_path / "deploy.py"
    path.write_text(DEPLOY.format(work=str(tmp_path / "work")))
    return BaseDeploymentConfig.fromfile(str(path), overrides or {})


def _model_cfg_path(tmp_path: Path) -> Path:
    path = tmp_path / "centerpoint_no_data.py"
    path.write_text(MODEL_NO_DATA.format(base=str(CONFIG_DIR / "centerpoint_tiny.py")))
    return path


def test_example_sample_has_the_loader_structure_and_the_model_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, awml_cfg
) -> None:
    from modeldeploy.projects.centerpoint.project import CenterPointProject
    from modeldeploy.projects.centerpoint.settings import parse_settings

    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    project = CenterPointProject()
    sample = project.example_sample(_deploy_cfg(tmp_path), awml_cfg)
    assert set(sample) == {"points", "token", "sample_idx", "lidar_path", "gt_bboxes_3d", "gt_labels_3d", "gt_velocity"}
    pts = sample["points"]
    assert pts.dtype == torch.float32 and pts.shape[1] == parse_settings(awml_cfg).in_channels == 4
    lags = np.unique(pts[:, 3].numpy())
    assert lags[0] == 0.0 and len(lags) == 2 and abs(lags[1] - 0.1) < 0.003  # key frame + one sweep, as sweeps_num=1
    assert len(sample["gt_bboxes_3d"]) == len(sample["gt_labels_3d"]) > 0
    assert not (tmp_path / "cache").exists()  # built in memory: no bundled dataset generated


def test_has_data_only_with_a_dataset_or_the_bundled_opt_in(tmp_path: Path, tiny_cfg, awml_cfg) -> None:
    from modeldeploy.projects.centerpoint.project import CenterPointProject

    cfg = _deploy_cfg(tmp_path)
    assert CenterPointProject().has_data(cfg, tiny_cfg)  # the demo config names centerpoint_data.bundled_sample
    assert not CenterPointProject().has_data(cfg, awml_cfg)
    with_data = _deploy_cfg(tmp_path, {"runtime_io.data_root": str(tmp_path)})
    assert CenterPointProject().has_data(with_data, awml_cfg)


def test_run_exports_onnx_from_a_synthesised_example_without_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime as ort

    from modeldeploy.runners import DeploymentRunner

    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    out = DeploymentRunner(_deploy_cfg(tmp_path), str(_model_cfg_path(tmp_path)), str(CHECKPOINT)).run()
    assert out.exit_code == 0, out.results.get("failure")
    res = json.loads(out.results_path.read_text())
    assert res["status"] == "succeeded"
    onnx = {Path(a["uri"]).name: a for a in res["artifacts"] if a["kind"] == "onnx"}
    assert set(onnx) == {"pts_voxel_encoder.onnx", "pts_backbone_neck_head.onnx"}
    assert not res.get("verification") and not res.get("evaluation")  # nothing to verify or score without data
    assert not (tmp_path / "cache" / "datasets").exists()
    # the exported encoder keeps its dynamic voxel axis and computes what the checkpoint's encoder does
    from mmengine.config import Config

    from modeldeploy.core.checkpoint import load_weights
    from modeldeploy.projects.centerpoint.model import VoxelEncoderExport, build_centerpoint

    model = load_weights(build_centerpoint(Config.fromfile(str(_model_cfg_path(tmp_path)))), str(CHECKPOINT)).eval()
    sess = ort.InferenceSession(
        str(tmp_path / "work" / "onnx" / "pts_voxel_encoder.onnx"), providers=["CPUExecutionProvider"]
    )
    feats = torch.randn(37, 20, 10)
    got = sess.run(["pillar_features"], {"input_features": feats.numpy()})[0]
    with torch.no_grad():
        want = VoxelEncoderExport(model.pts_voxel_encoder).eval()(feats).numpy()
    assert got.shape == want.shape and got.shape[0] == 37
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
