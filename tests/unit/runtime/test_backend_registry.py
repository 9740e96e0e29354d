"""A new backend is one registration: a NumPy re-implementation of the toy project's network
(a test backend, not a real runtime) registered under ``numpy-reference`` runs through the
real DeploymentRunner — verified against PyTorch and evaluated — with no change to the
runner, the config sections or the backends package (issue #13: a new backend in ≤ 4 files).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.core import backend_registry
from modeldeploy.core.backend import BaseBackend
from modeldeploy.core.backend_registry import BackendSpec, backend_spec, register_backend
from modeldeploy.core.components import ExportComponent
from modeldeploy.errors import ConfigError
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyProject


class NumpyToyBackend(BaseBackend):
    """ToyNet (conv3x3 → relu → global mean → linear) computed with NumPy from the component's weights."""

    backend_name = "numpy-reference"

    def __init__(self, component: ExportComponent, device: torch.device, precision: str) -> None:
        super().__init__(device, precision)
        sd = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in component.module.state_dict().items()}
        self.w, self.b, self.fw, self.fb = sd["conv.weight"], sd["conv.bias"], sd["fc.weight"], sd["fc.bias"]
        self.calls = 0

    @property
    def input_names(self) -> list[str]:
        return ["input"]

    @property
    def output_names(self) -> list[str]:
        return ["output"]

    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        self.calls += 1
        x = np.pad(inputs["input"].detach().cpu().numpy().astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))  # N, C, H, W, 3, 3
        conv = np.einsum("nchwij,ocij->nohw", win, self.w) + self.b[None, :, None, None]
        feat = np.maximum(conv, 0).mean(axis=(2, 3))
        return {"output": torch.from_numpy((feat @ self.fw.T + self.fb).astype(np.float32))}


@pytest.fixture
def numpy_backend() -> Iterator[list[NumpyToyBackend]]:
    """Registers the backend for one test; yields the instances the runner made."""
    made: list[NumpyToyBackend] = []

    def factory(component: ExportComponent, device: torch.device, precision: str, options: Any) -> BaseBackend:
        made.append(NumpyToyBackend(component, device, precision))
        return made[-1]

    register_backend(BackendSpec("numpy-reference", "module", factory))
    yield made
    backend_registry._REGISTRY.pop("numpy-reference")


def test_registered_backend_is_verified_and_evaluated_by_the_runner(
    tmp_path: Path, toy_files: dict[str, Path], numpy_backend: list[NumpyToyBackend]
) -> None:
    cfg = BaseDeploymentConfig.from_dict(
        {
            "project": "toy",
            "export": {"mode": "onnx", "work_dir": str(tmp_path / "work")},
            "onnx_config": {"save_file": "toy.onnx"},
            "verification": {
                "num_verify_samples": 2,
                "tolerance": 1e-4,
                "scenarios": {
                    "onnx": [
                        {
                            "ref_backend": "pytorch",
                            "ref_device": "cpu",
                            "test_backend": "numpy-reference",
                            "test_device": "cpu",
                        }
                    ]
                },
            },
            "evaluation": {"num_samples": 4, "warmup": 1, "backends": {"pytorch": {}, "numpy-reference": {}}},
        }
    )
    out = DeploymentRunner(
        cfg,
        str(toy_files["model_cfg"]),
        str(toy_files["checkpoint"]),
        project=ToyProject(),
        resolve_fn=Path,
        termination_log=str(tmp_path / "term.log"),
    ).run()
    assert out.exit_code == 0, out.results["failure"]
    res = json.loads(out.results_path.read_text())
    (comp,) = res["verification"]["comparisons"]
    assert comp["reference"] == "pytorch:cpu" and comp["test"] == "numpy-reference:cpu" and comp["passed"] is True
    assert set(res["evaluation"]) == {"pytorch:cpu", "numpy-reference:cpu"}
    assert res["evaluation"]["numpy-reference:cpu"]["metrics"] == res["evaluation"]["pytorch:cpu"]["metrics"]
    assert (
        sum(b.calls for b in numpy_backend) >= 2 + 4
    )  # verification samples + evaluated samples really ran through it


def test_unregistered_backend_name_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'numpy-reference'.*pytorch, onnxruntime, tensorrt"):
        BaseDeploymentConfig.from_dict({"project": "toy", "evaluation": {"backends": {"numpy-reference": {}}}})


def test_builtins_are_table_entries_and_int8_is_a_variant_not_a_name() -> None:
    import modeldeploy.backends  # noqa: F401 - registers the built-ins

    assert backend_spec("pytorch").artifact == "module"
    assert backend_spec("onnxruntime").artifact_for("int8") == "onnx_int8"
    assert backend_spec("tensorrt").needs_cuda and backend_spec("tensorrt").artifact == "engine"
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntime-int8'"):
        backend_spec("onnxruntime-int8")
