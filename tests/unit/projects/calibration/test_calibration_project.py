"""Project hooks with the shipped configs; the pipeline runs over a test-double backend
(a torch module behind BaseBackend), since the real backends are the framework's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

import modeldeploy.projects.calibration as calibration_pkg
from modeldeploy.backends.base import BaseBackend
from modeldeploy.config import BaseDeploymentConfig, load_mmengine_config
from modeldeploy.errors import ConfigError
from modeldeploy.projects import get_project
from modeldeploy.projects.calibration.data_loader import CalibrationDataLoader
from modeldeploy.projects.calibration.project import COMPONENT_NAME, CalibrationProject

CONFIG_DIR = Path(calibration_pkg.__file__).parent / "configs"


class ModuleBackendDouble(BaseBackend):
    """Test double: runs an nn.Module directly."""

    backend_name = "double"

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__("cpu")
        self.module = module.eval()

    @property
    def input_names(self) -> list[str]:
        return ["input"]

    @property
    def output_names(self) -> list[str]:
        return ["output"]

    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        return {"output": self.module(inputs["input"])}


@pytest.fixture(scope="module")
def deploy_cfg() -> BaseDeploymentConfig:
    return BaseDeploymentConfig.fromfile(CONFIG_DIR / "deploy_demo.py")


@pytest.fixture(scope="module")
def model_cfg() -> dict:
    return load_mmengine_config(CONFIG_DIR / "resnet18_5ch_tiny.py")


def test_registered_under_its_name() -> None:
    project = get_project("calibration")
    assert isinstance(project, CalibrationProject)
    assert (project.name, project.task_type) == ("calibration", "classification")


def test_deploy_demo_config_is_valid_and_as_documented(deploy_cfg: BaseDeploymentConfig) -> None:
    assert deploy_cfg.project == "calibration" and deploy_cfg.task_type == "classification"
    assert deploy_cfg.checkpoint_path == "builtin:calibration/resnet18_5ch_tiny.pth"
    assert (
        deploy_cfg.onnx_config.opset_version == 17 and deploy_cfg.onnx_config.save_file == "calibration_classifier.onnx"
    )
    assert deploy_cfg.verification.tolerance == 1e-3
    assert [(s.ref_backend, s.test_backend) for s in deploy_cfg.verification_scenarios()] == [
        ("pytorch", "onnxruntime")
    ]
    assert sorted(deploy_cfg.evaluation_backends()) == ["onnxruntime", "pytorch"]
    (profile,) = deploy_cfg.backend_config.model_inputs
    assert profile.input_shapes["input"].opt_shape == (1, *deploy_cfg.model_io.input_shape)


def test_export_component_from_a_real_sample(deploy_cfg, model_cfg, tiny_dataset: Path) -> None:
    project = CalibrationProject()
    model = project.build_model(model_cfg)
    sample = CalibrationDataLoader(tiny_dataset).load_sample(0)
    (comp,) = project.export_components(model, deploy_cfg, model_cfg, sample)
    assert comp.name == COMPONENT_NAME and comp.file_name == "calibration_classifier.onnx"
    assert comp.input_names == ["input"] and comp.output_names == ["output"]
    assert comp.dynamic_axes == {"input": {0: "batch_size", 2: "height", 3: "width"}, "output": {0: "batch_size"}}
    x = comp.sample_inputs["input"]
    assert x.shape == (1, 5, 96, 160) and x.dtype == torch.float32
    assert float(x[0, 3].max()) > 0 and float(x[0, 4].max()) > 0  # LiDAR channels are populated
    assert comp.module(*comp.ordered_inputs(comp.sample_inputs)).shape == (1, 2)


def test_fixed_batch_and_bad_io_config(model_cfg, tiny_dataset: Path) -> None:
    project = CalibrationProject()
    model = project.build_model(model_cfg)
    sample = CalibrationDataLoader(tiny_dataset).load_sample(0)
    base = BaseDeploymentConfig.fromfile(CONFIG_DIR / "deploy_demo.py").raw
    fixed = BaseDeploymentConfig.from_dict({**base, "model_io": {"batch_size": 4, "input_shape": (5, 96, 160)}})
    (comp,) = project.export_components(model, fixed, model_cfg, sample)
    assert comp.sample_inputs["input"].shape == (4, 5, 96, 160) and comp.dynamic_axes == {}
    wrong = BaseDeploymentConfig.from_dict({**base, "model_io": {"input_shape": (3, 96, 160)}})
    with pytest.raises(ConfigError, match="input_shape"):
        project.export_components(model, wrong, model_cfg, sample)
    typo = BaseDeploymentConfig.from_dict({**base, "model_io": {"dynamic_axes": {"images": {0: "b"}}}})
    with pytest.raises(ConfigError, match="images"):
        project.export_components(model, typo, model_cfg, sample)


def test_pipeline_over_backend_test_double(deploy_cfg, model_cfg, tiny_dataset: Path) -> None:
    project = CalibrationProject()
    model = project.build_model(model_cfg)
    pipe = project.build_pipeline(
        {COMPONENT_NAME: ModuleBackendDouble(model)}, deploy_cfg, model_cfg, torch.device("cpu")
    )
    loader = CalibrationDataLoader(tiny_dataset)
    sample = loader.load_sample(1)
    out = pipe(sample)
    with torch.inference_mode():
        logits = model(pipe.model_inputs(sample)["input"])
    probs = torch.softmax(logits[0], 0)
    assert out.prediction["label"] == int(probs.argmax())
    assert out.prediction["score"] == pytest.approx(float(probs.max()), abs=1e-6)
    assert sum(out.prediction["probs"]) == pytest.approx(1.0, abs=1e-6)
    assert set(out.stage_ms) == {"preprocess", "model", "postprocess"} and out.total_ms > 0
    evaluator = project.build_evaluator(deploy_cfg, model_cfg)
    evaluator.add(out.prediction, sample)
    assert evaluator.compute()["num_samples"] == 1
