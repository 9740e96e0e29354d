"""`modeldeploy run` on a T4-layout info file with lidar_sweeps, with a model config written in
AWML's style (the project's own fixture: _base_ chain, custom_imports, test_dataloader
pipeline with LoadPointsFromMultiSweeps) and the committed tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.projects.centerpoint.synthetic import INFO_FILE_NAME, generate_dataset
from modeldeploy.runners import DeploymentRunner

ROOT = Path(__file__).resolve().parents[4]
AWML_TINY = (
    ROOT
    / "tests/fixtures/awml/centerpoint/projects/CenterPoint/configs/t4dataset/Centerpoint/pillar_032_tiny_secfpn_1xb2_25m_base.py"
)
CHECKPOINT = ROOT / "runtime/modeldeploy/projects/centerpoint/assets/centerpoint_tiny.pth"

DEPLOY = """
project = "centerpoint"
task_type = "detection3d"
export = dict(mode="onnx", device="cpu", work_dir={work!r})
runtime_io = dict(data_root={data!r}, info_file={info!r}, sample_idx=0)
onnx_config = dict(opset_version=17)
verification = dict(enabled=True, num_verify_samples=2, tolerance=1e-3,
                    scenarios=dict(onnx=[dict(ref_backend="pytorch", ref_device="cpu", test_backend="onnxruntime", test_device="cpu")]))
evaluation = dict(enabled=True, num_samples=-1, warmup=0, backends=dict(pytorch=dict(device="cpu"), onnxruntime=dict(device="cpu")))
"""


def _cfg(tmp_path: Path, data: Path, name: str) -> BaseDeploymentConfig:
    path = tmp_path / f"{name}.py"
    path.write_text(DEPLOY.format(work=str(tmp_path / name), data=str(data), info=INFO_FILE_NAME))
    return BaseDeploymentConfig.fromfile(str(path))


def test_run_awml_style_model_config_on_a_t4_info_file_with_sweeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "t4"
    generate_dataset(data, num_frames=3, seed=31)
    out = DeploymentRunner(_cfg(tmp_path, data, "ok"), str(AWML_TINY), str(CHECKPOINT)).run()
    assert out.exit_code == 0, out.results.get("failure")
    res = json.loads(out.results_path.read_text())
    assert res["verification"]["passed"] is True
    ev = res["evaluation"]
    assert ev["pytorch:cpu"]["metrics"]["mAP"] > 0.05  # trained on this domain with these features: boxes, not noise
    assert abs(ev["pytorch:cpu"]["metrics"]["mAP"] - ev["onnxruntime:cpu"]["metrics"]["mAP"]) < 0.02
    assert not (tmp_path / "cache" / "datasets").exists()  # the user's info file, not the bundled sample

    # the sweeps are really read: without the nearest sweep's file the run stops with a DataError (exit 2)
    (data / "sweeps" / "LIDAR_TOP" / "synthetic-s31-00000_1.bin").unlink()
    bad = DeploymentRunner(_cfg(tmp_path, data, "bad"), str(AWML_TINY), str(CHECKPOINT)).run()
    assert bad.exit_code == 2
    assert "synthetic-s31-00000_1.bin does not exist" in json.dumps(bad.results["failure"])
