"""PyTorchBackend's opt-in speed options on the CPU: same outputs, clear refusals, compile cache on disk.

(CUDA graphs and fp16 channels_last run in tests/gpu/test_pytorch_cuda.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.errors import ConfigError


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, y.mean(dim=(2, 3))


def _component() -> ExportComponent:
    torch.manual_seed(0)
    net = _Net().eval()
    return ExportComponent(
        name="net",
        module=net,
        input_names=["x"],
        output_names=["map", "pooled"],
        sample_inputs={"x": torch.randn(1, 3, 16, 16)},
    )


def test_channels_last_gives_the_default_outputs_on_cpu() -> None:
    x = torch.randn(2, 3, 16, 16)
    ref = PyTorchBackend(_component()).infer({"x": x})
    got = PyTorchBackend(_component(), channels_last=True).infer({"x": x})
    assert set(got) == {"map", "pooled"}
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-5, rtol=1e-5)


def test_cuda_graph_and_fp16_on_cpu_are_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="CUDA-graph capture needs a CUDA device"):
        PyTorchBackend(_component(), cuda_graph=True)
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        PyTorchBackend(_component(), precision="fp16", channels_last=True)


@pytest.mark.slow
def test_compile_reports_compile_time_and_fills_its_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    x = torch.randn(1, 3, 16, 16)
    ref = PyTorchBackend(_component()).infer({"x": x})
    be = PyTorchBackend(_component(), compile_mode="default", compile_cache_dir=tmp_path / "cache")
    got = be.infer({"x": x})
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-4, rtol=1e-4)
    assert be.compile_seconds is not None and be.compile_seconds > 0
    assert any((tmp_path / "cache" / "inductor").rglob("*")), "Inductor wrote nothing into the artifact cache dir"
