"""GPU tests: marked ``gpu``; skipped with a visible reason where torch sees no CUDA device.

Run on the GPU machine with ``scripts/gpu_session.sh`` (installs onnxruntime-gpu and the
runtime's extra wheels into /tmp/site first).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modeldeploy.config.sections import ONNXConfigSection
from modeldeploy.core.components import ExportComponent
from modeldeploy.exporters.onnx import ONNXExporter
from tests.unit.tensorrt.nets import SmallConvNet, trained_like_net


def _no_gpu_reason() -> str | None:
    if not torch.cuda.is_available():
        return f"no CUDA device visible to torch {torch.__version__} (CUDA build {torch.version.cuda}); GPU tests run via scripts/gpu_session.sh"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _no_gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def small_net() -> SmallConvNet:
    return trained_like_net()


@pytest.fixture(scope="session")
def small_component(small_net: SmallConvNet) -> ExportComponent:
    return ExportComponent(
        name="model",
        module=small_net,
        input_names=["input"],
        output_names=["logits", "saliency"],
        sample_inputs={"input": torch.randn(1, 5, 64, 64)},
        dynamic_axes={
            "input": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch"},
            "saliency": {0: "batch", 2: "h2", 3: "w2"},
        },
    )


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory, small_component: ExportComponent) -> Path:
    return (
        ONNXExporter(ONNXConfigSection(opset_version=17))
        .export(small_component, tmp_path_factory.mktemp("gpu_onnx"))
        .path
    )


@pytest.fixture()
def no_tf32() -> object:
    """Full fp32 math in torch for parity checks (TF32 is a separate, looser comparison)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield None
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
