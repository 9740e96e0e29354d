"""CenterPoint with ``precision_policy='explicit_int8'`` through the real runner, on CPU.

Both graphs are quantized (ONNX Runtime static Q/DQ) with the inputs each really receives
— the voxel features for the voxel encoder, the scattered BEV canvas for the
backbone/neck/head (``CenterPointPipeline.component_inputs``) — and the Q/DQ pair is then
evaluated as ``onnxruntime-int8:cpu``. Before ``component_inputs`` existed the runner fed the
second graph the first graph's inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modeldeploy.artifacts.fetch import fetch
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.exporters import quantization
from modeldeploy.runners import DeploymentRunner


def test_explicit_int8_quantizes_and_evaluates_both_components_with_their_own_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    seen: dict[str, list[dict[str, tuple[tuple[int, ...], str]]]] = {}
    real = quantization.quantize_qdq

    def recording_quantize_qdq(
        onnx_path: Path, samples: Iterable[dict[str, np.ndarray]], out_path: Path, *a: Any, **kw: Any
    ) -> Path:
        batches = list(samples)
        seen[Path(onnx_path).stem] = [{k: (v.shape, str(v.dtype)) for k, v in b.items()} for b in batches]
        return real(onnx_path, batches, out_path, *a, **kw)

    monkeypatch.setattr(quantization, "quantize_qdq", recording_quantize_qdq)
    cfg = BaseDeploymentConfig.fromfile(
        fetch("builtin:centerpoint/deploy_tiny.py"),
        {
            "backend_config.common_config.precision_policy": "explicit_int8",
            "backend_config.quantization.calibration_samples": 2,
            "evaluation.num_samples": 2,
            "evaluation.warmup": 0,
            "verification.num_verify_samples": 1,
            "export.work_dir": str(tmp_path / "work"),
        },
    )
    out = DeploymentRunner(cfg, "builtin:centerpoint/centerpoint_tiny.py").run()
    assert out.exit_code == 0, out.results["failure"]

    # each graph was calibrated on what it receives in the pipeline
    assert set(seen) == {"pts_voxel_encoder", "pts_backbone_neck_head"}
    for batch in seen["pts_voxel_encoder"]:
        ((shape, dtype),) = batch.values()
        assert list(batch) == ["input_features"] and shape[1:] == (20, 10) and shape[0] > 0 and dtype == "float32"
    assert [list(b.items()) for b in seen["pts_backbone_neck_head"]] == [
        [("spatial_features", ((1, 16, 160, 160), "float32"))]
    ] * 2

    # both Q/DQ graphs are published and really quantized
    res = json.loads(out.results_path.read_text())
    qdq = {Path(a["uri"]).name for a in res["artifacts"] if a["kind"] == "onnx" and "int8_qdq" in a["name"]}
    assert qdq == {"pts_voxel_encoder.int8_qdq.onnx", "pts_backbone_neck_head.int8_qdq.onnx"}
    for name in qdq:
        counts = quantization.qdq_node_counts(tmp_path / "work" / "onnx" / name)
        assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > 0, (name, counts)

    # and evaluated as onnxruntime's int8 variant, next to fp32
    ev = res["evaluation"]
    assert {"pytorch:cpu", "onnxruntime:cpu", "onnxruntime-int8:cpu"} <= set(ev)
    int8 = ev["onnxruntime-int8:cpu"]
    assert int8["precision"] == "int8" and int8["headline_metric"] == "mAP" and np.isfinite(int8["metrics"]["mAP"])
    assert int8["accuracy_delta_vs_fp32"]["metric"] == "mAP"
