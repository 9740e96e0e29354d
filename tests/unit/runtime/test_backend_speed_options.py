"""Backend speed options and the onnxruntime fp16 variant at the CPU-side boundary (issue #16).

Deploy-config keys (``evaluation.backends.<name>``: channels_last, cuda_graph, compile_mode,
compile_cache_dir, onnxruntime precision fp16, a scenario's test_precision) are validated per
backend with one-line refusals; ``BackendOptions`` carries them to the registered factories;
``convert_fp16`` makes the graph the fp16 variant runs. What needs CUDA (fp16 graph on the
CUDA EP against fp32, CUDA-graph replays, the CLI run) is in tests/gpu/test_onnxruntime_cuda.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import modeldeploy.backends  # noqa: F401  (registers the built-in backends)
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.config.sections import BackendEvalSection
from modeldeploy.core.backend_registry import BackendOptions, backend_spec
from modeldeploy.core.components import ExportComponent
from modeldeploy.errors import ConfigError


def _cfg(tmp_path: Path, text: str) -> BaseDeploymentConfig:
    p = tmp_path / "deploy.py"
    p.write_text("project='calibration'\nexport=dict(mode='onnx', device='cuda:0')\n" + text + "\n")
    return BaseDeploymentConfig.fromfile(p)


def test_speed_keys_parse_for_the_backends_that_read_them(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        "evaluation=dict(backends=dict("
        "pytorch=dict(precision='fp16', channels_last=True, cuda_graph=True, compile_mode='max-autotune-no-cudagraphs',"
        " compile_cache_dir='cc'),"
        "onnxruntime=dict(precision='fp16', cuda_graph=True, channels_last=True),"
        "tensorrt=dict(cuda_graph=True)))\n"
        "verification=dict(scenarios=dict(onnx=[dict(ref_backend='onnxruntime', ref_device='cuda:0',"
        " test_backend='onnxruntime', test_device='cuda:0', test_precision='fp16')]))",
    )
    be = cfg.evaluation_backends()
    assert be["pytorch"].compile_mode == "max-autotune-no-cudagraphs" and be["pytorch"].compile_cache_dir == "cc"
    assert be["onnxruntime"].precision == "fp16" and be["onnxruntime"].cuda_graph is True
    assert cfg.verification_scenarios()[0].test_precision == "fp16"


@pytest.mark.parametrize(
    "text,needle",
    [
        (
            "evaluation=dict(backends=dict(onnxruntime=dict(compile_mode='default')))",
            "'evaluation.backends.onnxruntime.compile_mode' = 'default': the onnxruntime backend does not read 'compile_mode' (only pytorch does)",
        ),
        (
            "evaluation=dict(backends=dict(tensorrt=dict(channels_last=True)))",
            "the tensorrt backend does not read 'channels_last'",
        ),
        ("evaluation=dict(backends=dict(onnxruntime=dict(precision='int8')))", "precision_policy='explicit_int8'"),
        ("evaluation=dict(backends=dict(onnxruntime=dict(precision='fp16', device='cpu')))", "CUDA execution provider"),
        ("evaluation=dict(backends=dict(onnxruntime=dict(channels_last=True, device='cpu')))", "NHWC kernels"),
        ("evaluation=dict(backends=dict(pytorch=dict(cuda_graph=True, device='cpu')))", "CUDA-graph capture needs"),
        (
            "evaluation=dict(backends=dict(pytorch=dict(compile_mode='reduce-overhead', cuda_graph=True)))",
            "would capture twice",
        ),
        ("evaluation=dict(backends=dict(pytorch=dict(compile_cache_dir='cc')))", "compile cache without torch.compile"),
        ("evaluation=dict(backends=dict(pytorch=dict(compile_mode='fastest')))", "compile_mode"),
        (
            "verification=dict(scenarios=dict(onnx=[dict(ref_backend='pytorch', ref_device='cpu',"
            " test_backend='onnxruntime', test_device='cpu', test_precision='fp16')]))",
            "'verification.scenarios.onnx[0].test_precision'",
        ),
    ],
)
def test_a_key_the_backend_would_ignore_or_cannot_run_is_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        _cfg(tmp_path, text)
    line = ei.value.one_line()
    assert needle in line, line
    assert "fix:" in line and "\n" not in line


def test_typo_in_a_speed_key_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        _cfg(tmp_path, "evaluation=dict(backends=dict(pytorch=dict(channel_last=True)))")
    assert "unknown key 'evaluation.backends.pytorch.channel_last'" in ei.value.one_line()


def test_backend_options_layer_backend_keys_over_common_config() -> None:
    common = SimpleNamespace(cuda_graph=False, max_workspace_size=7)
    section = BackendEvalSection(cuda_graph=True, compile_mode="default")
    opts = BackendOptions(section, common, compile_cache_dir=Path("/x"))
    assert opts.cuda_graph is True  # the backend's own key wins
    assert opts.max_workspace_size == 7  # falls through to common_config
    assert opts.compile_cache_dir == Path("/x")  # what the runner resolved
    assert getattr(BackendOptions(BackendEvalSection(), common), "cuda_graph", None) is False  # None falls through
    assert getattr(opts, "nothing_here", "default") == "default"
    assert getattr(BackendOptions(None, common), "compile_mode", None) is None


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def _component() -> ExportComponent:
    torch.manual_seed(0)
    return ExportComponent(
        name="net",
        module=_Net().eval(),
        input_names=["x"],
        output_names=["y"],
        sample_inputs={"x": torch.randn(1, 3, 8, 8)},
    )


def test_pytorch_factory_passes_the_section_keys_to_the_backend(tmp_path: Path) -> None:
    section = BackendEvalSection(channels_last=True, compile_mode="default")
    opts = BackendOptions(section, compile_cache_dir=tmp_path / "cc")
    be = backend_spec("pytorch").factory(_component(), torch.device("cpu"), "fp32", opts)
    assert be.channels_last is True and be.compile_mode == "default" and be.cuda_graph is False
    plain = backend_spec("pytorch").factory(_component(), torch.device("cpu"), "fp32", BackendOptions(None))
    assert plain.channels_last is False and plain.compile_mode is None


@pytest.fixture()
def small_onnx(tmp_path: Path) -> Path:
    from modeldeploy.config.sections import ONNXConfigSection
    from modeldeploy.exporters.onnx import ONNXExporter

    return ONNXExporter(ONNXConfigSection(opset_version=17)).export(_component(), tmp_path / "onnx").path


def test_onnxruntime_factory_refuses_cuda_options_on_the_cpu(small_onnx: Path) -> None:
    for key in ("cuda_graph", "channels_last"):
        opts = BackendOptions(BackendEvalSection(**{key: True}))
        with pytest.raises(ConfigError) as ei:
            backend_spec("onnxruntime").factory(small_onnx, torch.device("cpu"), "fp32", opts)
        assert f"onnxruntime {key} needs the CUDA execution provider" in ei.value.one_line()


def test_fp16_variant_is_a_converted_graph_with_float32_io(small_onnx: Path, tmp_path: Path) -> None:
    """The variant's artifact: convert_fp16 keeps float32 graph IO (callers see the fp32 graph's
    IO) while weights become fp16; the backend labels its results apart from fp32 and int8."""
    import onnx

    from modeldeploy.backends.onnxruntime import ONNXRuntimeBackend
    from modeldeploy.exporters.quantization import convert_fp16

    spec = backend_spec("onnxruntime")
    assert spec.artifact_for("fp16") == "onnx_fp16" and spec.artifact_for("int8") == "onnx_int8"
    assert spec.artifact_for("fp32") == "onnx"
    out = convert_fp16(small_onnx, tmp_path / "net.fp16.onnx")
    m = onnx.load(str(out))
    assert {i.type.tensor_type.elem_type for i in m.graph.input} == {onnx.TensorProto.FLOAT}
    assert {o.type.tensor_type.elem_type for o in m.graph.output} == {onnx.TensorProto.FLOAT}
    assert onnx.TensorProto.FLOAT16 in {t.data_type for t in m.graph.initializer}
    # it still runs (CPU EP here, for the IO contract only: the CUDA EP is what the variant is for)
    be = ONNXRuntimeBackend(out, "cpu", "fp16")
    assert be.label == "onnxruntime-fp16:cpu"
    x = torch.randn(1, 3, 8, 8)
    y16 = be.infer({"x": x})["y"]
    y32 = ONNXRuntimeBackend(small_onnx, "cpu").infer({"x": x})["y"]
    assert y16.dtype == torch.float32
    assert np.allclose(y16.numpy(), y32.numpy(), atol=1e-2)


def test_report_shows_compile_time_apart_from_latency() -> None:
    from modeldeploy.core.results import RunResults
    from modeldeploy.evaluation.latency import latency_stats
    from modeldeploy.runners.report import render_report_md

    lat = latency_stats([4.0, 4.1, 4.2])
    entry = {"precision": "fp16", "headline_metric": "mAP", "metrics": {"mAP": 0.5}, "num_samples": 3}
    results = RunResults.from_json(
        {
            "schema_version": 1,
            "project": "centerpoint",
            "status": "succeeded",
            "evaluation": {
                "pytorch:cuda": {**entry, "latency_ms": lat, "compile_seconds": {"pts_backbone_neck_head": 85.96}},
                "onnxruntime-fp16:cuda": {**entry, "latency_ms": lat},
            },
        }
    )
    text = render_report_md(results)
    assert "torch.compile, pytorch:cuda (first call, not in the latencies, s): pts_backbone_neck_head 86.0" in text
    assert "| onnxruntime-fp16:cuda | fp16 |" in text
    assert text.count("torch.compile,") == 1  # only the compiled backend
