"""TensorRTBackend driven through RecordingFakeTensorRT on CPU tensors.

The test double "executes" an engine by running its ONNX graph in ONNX Runtime on the
memory behind the addresses the backend bound, so wrong shapes, addresses, profile
choice or output ordering show up as wrong numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modeldeploy.backends.tensorrt import EngineIncompatibleError, TensorRTBackend
from modeldeploy.config.sections import BackendConfigSection
from modeldeploy.errors import BackendUnavailableError, ConfigError, InferenceError
from modeldeploy.exporters.tensorrt import TensorRTExporter
from tests.unit.tensorrt.fake_trt import RecordingFakeTensorRT

PROFILES = [
    {
        "input_shapes": {
            "input": {"min_shape": [1, 5, 16, 16], "opt_shape": [1, 5, 16, 16], "max_shape": [2, 5, 32, 32]}
        }
    },
    {
        "input_shapes": {
            "input": {"min_shape": [3, 5, 16, 16], "opt_shape": [4, 5, 16, 16], "max_shape": [8, 5, 16, 16]}
        }
    },
]


def _build(onnx_path: Path, out: Path, fake: RecordingFakeTensorRT, profiles: list | None = None) -> Path:
    cfg = BackendConfigSection.model_validate(
        {"common_config": {"engine_cache": False}, "model_inputs": PROFILES if profiles is None else profiles}
    )
    exp = TensorRTExporter(cfg, trt_module=fake, compute_capability="9.0")
    return exp.build(onnx_path, out, component="model", output_names=["logits", "saliency"]).path


@pytest.fixture()
def engine(small_onnx: Path, tmp_path: Path) -> Path:
    return _build(small_onnx, tmp_path / "engines", RecordingFakeTensorRT.tensorrt10())


def test_fake_engine_matches_pytorch_and_picks_the_profile_by_shape(engine: Path, small_net: torch.nn.Module) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    be = TensorRTBackend(engine, device="cpu", trt_module=fake, compute_capability="9.0")
    assert be.input_names == ["input"] and be.output_names == ["logits", "saliency"] and be.label == "tensorrt:cpu"
    for batch, hw, profile in [(1, 16, 0), (2, 32, 0), (5, 16, 1)]:
        x = torch.randn(batch, 5, hw, hw)
        assert be.select_profile({"input": tuple(x.shape)}) == profile
        out = be.infer({"input": x})
        with torch.no_grad():
            ref_logits, ref_sal = small_net(x)
        assert list(out) == ["logits", "saliency"]
        torch.testing.assert_close(out["logits"], ref_logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out["saliency"], ref_sal, atol=1e-4, rtol=1e-4)
    assert ("set_optimization_profile_async", 1, 0) in fake.calls
    assert fake.call_names().count("create_execution_context") == 2  # one context per profile, reused
    assert ("set_input_shape", "input", (5, 5, 16, 16)) in fake.calls


def test_outputs_come_back_in_requested_name_order(engine: Path) -> None:
    be = TensorRTBackend(
        engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt10(), output_names=["saliency", "logits"]
    )
    out = be.infer({"input": torch.randn(1, 5, 16, 16)})
    assert (
        list(out) == ["saliency", "logits"] and out["saliency"].shape == (1, 1, 8, 8) and out["logits"].shape == (1, 2)
    )
    with pytest.raises(InferenceError, match="no output"):
        TensorRTBackend(engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt10(), output_names=["scores"])


def test_shapes_outside_every_profile_name_the_profiles(engine: Path) -> None:
    be = TensorRTBackend(engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt10())
    with pytest.raises(
        InferenceError, match=r"fit no optimization profile .*#0: input \(1, 5, 16, 16\)\.\.\(2, 5, 32, 32\)"
    ):
        be.infer({"input": torch.randn(9, 5, 16, 16)})
    with pytest.raises(InferenceError, match="missing input"):
        be.infer({"images": torch.randn(1, 5, 16, 16)})


def test_static_engine_checks_exact_shapes(static_onnx: Path, tmp_path: Path) -> None:
    path = _build(static_onnx, tmp_path / "s", RecordingFakeTensorRT.tensorrt11(), profiles=[])
    be = TensorRTBackend(path, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt11())
    assert be.infer({"input": torch.randn(2, 5, 16, 16)})["logits"].shape == (2, 2)
    with pytest.raises(InferenceError, match="engine is static"):
        be.infer({"input": torch.randn(1, 5, 16, 16)})


def test_engine_from_another_tensorrt_version_is_refused_with_both_versions(engine: Path) -> None:
    with pytest.raises(
        EngineIncompatibleError, match=r"built with TensorRT 10\.13\.3\.9 but this node has TensorRT 11\.4\.0\.106"
    ):
        TensorRTBackend(engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt11())
    Path(str(engine) + ".json").unlink()  # without the sidecar, TensorRT's own message decides
    with pytest.raises(EngineIncompatibleError, match="built with another TensorRT version"):
        TensorRTBackend(engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt11())


def test_engine_for_another_gpu_is_refused(engine: Path) -> None:
    with pytest.raises(EngineIncompatibleError, match="compute capability 9.0 but this GPU is 8.9"):
        TensorRTBackend(engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt10(), compute_capability="8.9")


def test_garbage_engine_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\x00not an engine")
    with pytest.raises(EngineIncompatibleError, match="could not deserialize bad.engine: .*Magic tag"):
        TensorRTBackend(bad, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt10())


def test_cpu_device_without_test_double_and_cuda_graph_on_cpu_are_refused(engine: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="CUDA devices only"):
        TensorRTBackend(engine, device="cpu")
    with pytest.raises(ConfigError, match="cuda_graph"):
        TensorRTBackend(engine, device="cpu", cuda_graph=True, trt_module=RecordingFakeTensorRT.tensorrt10())


def test_precision_defaults_to_what_the_exporter_recorded(engine: Path) -> None:
    meta = json.loads(Path(str(engine) + ".json").read_text())
    be = TensorRTBackend(engine, device="cpu", trt_module=RecordingFakeTensorRT.tensorrt10())
    assert be.precision == meta["precision"] == "fp32"
