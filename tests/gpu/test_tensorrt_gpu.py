"""Real TensorRT on the GPU. Skipped (with the import error as reason) where TensorRT is absent.

These are the only tests that execute the TensorRT calls in trt_api.py for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.backends.tensorrt import TensorRTBackend
from modeldeploy.config.sections import BackendConfigSection
from modeldeploy.core.components import ExportComponent
from modeldeploy.exporters.engine_cache import EngineCache
from modeldeploy.exporters.tensorrt import TensorRTExporter
from modeldeploy.tensorrt_api import tensorrt_available

pytestmark = pytest.mark.gpu

PROFILES = [
    {
        "input_shapes": {
            "input": {"min_shape": [1, 5, 32, 32], "opt_shape": [1, 5, 64, 64], "max_shape": [2, 5, 96, 128]}
        }
    },
    {
        "input_shapes": {
            "input": {"min_shape": [3, 5, 64, 64], "opt_shape": [4, 5, 64, 64], "max_shape": [8, 5, 64, 64]}
        }
    },
]


@pytest.fixture(scope="module", autouse=True)
def _need_tensorrt() -> None:
    if torch.cuda.is_available():
        ok, why = tensorrt_available()
        if not ok:
            pytest.skip(why)


def _build(onnx_path: Path, out: Path, policy: str, cache: Path) -> Path:
    cfg = BackendConfigSection.model_validate(
        {"common_config": {"precision_policy": policy, "max_workspace_size": 1 << 30}, "model_inputs": PROFILES}
    )
    return (
        TensorRTExporter(cfg, cache=EngineCache(cache))
        .build(onnx_path, out, component="model", output_names=["logits", "saliency"])
        .path
    )


@pytest.mark.parametrize("policy, tol", [("auto", 1e-2), ("fp16", 5e-2)])
def test_tensorrt_engine_matches_pytorch_cuda(
    small_onnx: Path, small_component: ExportComponent, tmp_path: Path, policy: str, tol: float
) -> None:
    engine = _build(small_onnx, tmp_path / "e", policy, tmp_path / "cache")
    ref = PyTorchBackend(small_component, "cuda")
    for cuda_graph in (False, True):
        be = TensorRTBackend(engine, "cuda", cuda_graph=cuda_graph)
        for shape in [(1, 5, 64, 64), (2, 5, 96, 128), (6, 5, 64, 64)]:
            x = torch.randn(*shape, device="cuda")
            got, want = be.infer({"input": x}), ref.infer({"input": x})
            assert list(got) == ["logits", "saliency"]
            for name in want:
                scale = max(want[name].abs().max().item(), 1e-3)
                diff = (got[name].float() - want[name].float()).abs().max().item()
                print(f"{policy} graph={cuda_graph} {shape} {name}: max diff {diff:.3e} (scale {scale:.3e})")
                assert diff <= tol * scale, (policy, cuda_graph, shape, name)
        be.close()


def test_second_identical_build_is_a_cache_hit(small_onnx: Path, tmp_path: Path) -> None:
    cfg = BackendConfigSection.model_validate({"model_inputs": PROFILES})
    first = TensorRTExporter(cfg, cache=EngineCache(tmp_path / "c")).build(
        small_onnx, tmp_path / "a", component="model"
    )
    second = TensorRTExporter(cfg, cache=EngineCache(tmp_path / "c")).build(
        small_onnx, tmp_path / "b", component="model"
    )
    assert first.info["cache_hit"] is False and second.info["cache_hit"] is True
    assert (tmp_path / "a" / "model.timing.cache").stat().st_size > 0
