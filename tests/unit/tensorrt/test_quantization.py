"""explicit_int8 and fp16 graph transforms, measured in ONNX Runtime on the CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from modeldeploy.backends.registry import ONNXRUNTIME
from modeldeploy.config.sections import QuantizationSection
from modeldeploy.errors import ConfigError, DataError
from modeldeploy.exporters.quantization import convert_fp16, qdq_node_counts, quantize_qdq


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})


@pytest.fixture(scope="module")
def qdq_model(small_onnx: Path, tmp_path_factory: pytest.TempPathFactory, calibration_samples: list) -> Path:
    out = tmp_path_factory.mktemp("qdq") / "model.int8.qdq.onnx"
    return quantize_qdq(small_onnx, iter(calibration_samples), out, QuantizationSection(calibration_samples=16))


def test_qdq_model_has_symmetric_int8_quantize_dequantize_pairs(qdq_model: Path) -> None:
    counts = qdq_node_counts(qdq_model)
    assert counts["QuantizeLinear"] >= 4 and counts["DequantizeLinear"] >= counts["QuantizeLinear"]
    model = onnx.load(str(qdq_model))
    by_name = {i.name: i for i in model.graph.initializer}
    qnodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    for node in qnodes:  # TensorRT: signed int8, zero point 0
        zp = by_name[node.input[2]]
        assert zp.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(zp).any(), node.name
    conv_weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and numpy_helper.to_array(by_name[n.input[1]]).size > 1
    ]
    assert conv_weight_dq, "per_channel=True should give per-output-channel weight scales"


def test_qdq_model_stays_close_to_fp32_in_onnx_runtime(small_onnx: Path, qdq_model: Path) -> None:
    x = np.random.default_rng(1).standard_normal((64, 5, 16, 16)).astype(np.float32)
    ref, q = _run(small_onnx, x), _run(qdq_model, x)
    for k, name in enumerate(["logits", "saliency"]):
        rel_rms = float(np.sqrt(((ref[k] - q[k]) ** 2).mean()) / np.sqrt((ref[k] ** 2).mean()))
        print(f"{name}: relative RMS error int8 vs fp32 = {rel_rms:.4f}")
        assert 0 < rel_rms < 0.2, name  # > 0: it really is quantized; < 0.2: calibration worked
    margin = np.abs(ref[0][:, 0] - ref[0][:, 1])
    confident = margin > np.median(margin)
    agree = float((ref[0].argmax(1) == q[0].argmax(1))[confident].mean())
    assert agree >= 0.9, agree


def test_calibration_reads_at_most_the_configured_number_of_samples(
    small_onnx: Path, tmp_path: Path, calibration_samples: list
) -> None:
    consumed = []

    def samples() -> Iterator[dict[str, np.ndarray]]:
        for i, s in enumerate(calibration_samples):
            consumed.append(i)
            yield s

    quantize_qdq(
        small_onnx,
        samples(),
        tmp_path / "q.onnx",
        QuantizationSection(calibration_samples=3, calibrate_method="Percentile"),
    )
    assert consumed == [0, 1, 2]


def test_bad_calibration_data_and_unsupported_tool_are_clear_errors(small_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"lacks graph input\(s\) \['input'\]"):
        quantize_qdq(
            small_onnx,
            iter([{"images": np.zeros((1, 5, 16, 16), np.float32)}]),
            tmp_path / "q.onnx",
            QuantizationSection(),
        )
    with pytest.raises(DataError, match="no calibration samples"):
        quantize_qdq(small_onnx, iter([]), tmp_path / "q.onnx", QuantizationSection())
    with pytest.raises(ConfigError, match="modelopt"):
        quantize_qdq(small_onnx, iter([]), tmp_path / "q.onnx", QuantizationSection(tool="modelopt"))
    assert not (tmp_path / "q.onnx").exists()


def test_fp16_graph_keeps_fp32_io_and_matches_fp32(small_onnx: Path, tmp_path: Path) -> None:
    f16 = convert_fp16(small_onnx, tmp_path / "model.fp16.onnx")
    model = onnx.load(str(f16))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    x = np.random.default_rng(2).standard_normal((4, 5, 16, 16)).astype(np.float32)
    ref, half = _run(small_onnx, x), _run(f16, x)
    assert half[0].dtype == np.float32
    np.testing.assert_allclose(half[0], ref[0], atol=2e-3, rtol=2e-2)


def test_int8_is_a_variant_of_onnxruntime_with_its_own_results_key(qdq_model: Path, small_net: torch.nn.Module) -> None:
    assert ONNXRUNTIME.artifact_for("int8") == "onnx_int8" and ONNXRUNTIME.artifact_for("fp32") == "onnx"
    be = ONNXRUNTIME.factory(qdq_model, torch.device("cpu"), "int8", None)
    assert be.label == "onnxruntime-int8:cpu" and be.precision == "int8"
    out = be.infer({"input": torch.randn(2, 5, 16, 16)})
    assert list(out) == ["logits", "saliency"] and out["logits"].shape == (2, 2)
