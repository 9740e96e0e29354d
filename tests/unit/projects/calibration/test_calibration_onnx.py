"""Project-level ONNX check: the exported classifier matches PyTorch on a real sample and
keeps batch/height/width dynamic (the framework's exporter is tested separately)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import modeldeploy.projects.calibration as calibration_pkg
from modeldeploy.config import BaseDeploymentConfig, load_mmengine_config
from modeldeploy.projects.calibration.data_loader import CalibrationDataLoader
from modeldeploy.projects.calibration.project import CalibrationProject

CONFIG_DIR = Path(calibration_pkg.__file__).parent / "configs"


def test_onnx_export_matches_pytorch(tmp_path: Path, tiny_dataset: Path) -> None:
    torch.manual_seed(0)
    deploy_cfg = BaseDeploymentConfig.fromfile(CONFIG_DIR / "deploy_demo.py")
    model_cfg = load_mmengine_config(CONFIG_DIR / "resnet18_5ch_tiny.py")
    project = CalibrationProject()
    model = project.build_model(model_cfg)
    model.init_weights(torch.Generator().manual_seed(0))
    for m in model.modules():  # non-trivial BN statistics and residual scales
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    loader = CalibrationDataLoader(tiny_dataset)
    (comp,) = project.export_components(model, deploy_cfg, model_cfg, loader.load_sample(0))
    path = tmp_path / comp.file_name
    with torch.no_grad():
        torch.onnx.export(
            comp.module,
            comp.ordered_inputs(comp.sample_inputs),
            str(path),
            input_names=comp.input_names,
            output_names=comp.output_names,
            dynamic_axes=comp.dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["output"]

    x = comp.sample_inputs["input"]
    other = project.export_components(model, deploy_cfg, model_cfg, loader.load_sample(3))[0].sample_inputs["input"]
    for batch in (x, torch.cat([x, other]), torch.cat([x, other])[:, :, :64, :128]):  # dynamic B, H, W
        with torch.no_grad():
            ref = model(batch).numpy()
        got = sess.run(["output"], {"input": batch.numpy()})[0]
        assert got.shape == ref.shape == (batch.shape[0], 2)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
