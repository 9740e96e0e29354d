"""PyTorch on CUDA against PyTorch on CPU (fp32, TF32 and fp16 autocast)."""

from __future__ import annotations

import copy

import pytest
import torch

from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.core.components import ExportComponent

pytestmark = pytest.mark.gpu


def _backend(component: ExportComponent, device: str, precision: str = "fp32") -> PyTorchBackend:
    comp = copy.copy(component)
    comp.module = copy.deepcopy(component.module)
    return PyTorchBackend(comp, device, precision)


def test_pytorch_cuda_fp32_matches_cpu(small_component: ExportComponent, no_tf32: object) -> None:
    x = torch.randn(4, 5, 64, 64)
    cpu = _backend(small_component, "cpu").infer({"input": x})
    gpu = _backend(small_component, "cuda").infer({"input": x})
    for name in ("logits", "saliency"):
        assert gpu[name].device.type == "cuda"
        diff = (gpu[name].cpu() - cpu[name]).abs().max().item()
        print(f"{name}: max |cuda fp32 - cpu| = {diff:.3e}")
        assert diff < 1e-4, name


def test_pytorch_cuda_fp16_autocast_is_close_to_fp32(small_component: ExportComponent) -> None:
    x = torch.randn(4, 5, 64, 64)
    ref = _backend(small_component, "cpu").infer({"input": x})
    half = _backend(small_component, "cuda", "fp16").infer({"input": x})
    for name in ("logits", "saliency"):
        scale = ref[name].abs().max().item()
        diff = (half[name].float().cpu() - ref[name]).abs().max().item()
        print(f"{name}: max |cuda fp16 - cpu fp32| = {diff:.3e} (scale {scale:.3e})")
        assert diff <= 2e-2 * max(scale, 1e-3), name


def test_calibration_resnet18_cuda_matches_cpu(no_tf32: object) -> None:
    pytest.importorskip("mmengine", reason="mmengine not installed (ship it with scripts/gpu_session.sh)")
    from pathlib import Path

    from mmengine.config import Config

    from modeldeploy.projects import get_project

    project = get_project("calibration")
    cfg_file = (
        Path(__import__("modeldeploy").__file__).parent / "projects" / "calibration" / "configs" / "resnet18_5ch.py"
    )
    torch.manual_seed(0)
    model = project.build_model(Config.fromfile(str(cfg_file))).eval()
    x = torch.randn(2, 5, 96, 160)
    with torch.no_grad():
        cpu = model(x)
        gpu = copy.deepcopy(model).cuda()(x.cuda())
    cpu_t = cpu if isinstance(cpu, torch.Tensor) else cpu[0]
    gpu_t = gpu if isinstance(gpu, torch.Tensor) else gpu[0]
    diff = (gpu_t.cpu() - cpu_t).abs().max().item()
    print(f"resnet18_5ch: max |cuda - cpu| = {diff:.3e}")
    assert diff < 1e-3


def test_pytorch_cuda_fp16_channels_last_cuda_graph_matches_autocast(small_component) -> None:
    """The opt-in fast path (real fp16 weights, NHWC, CUDA-graph replay) computes what the
    reference autocast path computes, and a replay with new inputs gives new outputs."""
    import copy

    from modeldeploy.backends.pytorch import PyTorchBackend

    ref = PyTorchBackend(copy.copy(small_component), "cuda", "fp16")
    fast = PyTorchBackend(copy.copy(small_component), "cuda", "fp16", channels_last=True, cuda_graph=True)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        x = torch.randn(2, 5, 64, 64, generator=g)
        a, b = ref.infer({"input": x}), fast.infer({"input": x})
        for k in a:
            assert b[k].dtype == torch.float32
            scale = a[k].abs().max().clamp(min=1e-3)
            assert float((b[k] - a[k]).abs().max() / scale) < 2e-2, k
    assert len(fast._graphs) == 1  # one signature, captured once
