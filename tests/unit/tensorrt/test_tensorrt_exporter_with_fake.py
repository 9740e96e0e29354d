"""TensorRTExporter driven through RecordingFakeTensorRT (a test double of the tensorrt module)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from modeldeploy import tensorrt_api as trt_api
from modeldeploy.artifacts.local import LocalArtifactStore
from modeldeploy.config.sections import BackendConfigSection
from modeldeploy.errors import BackendUnavailableError, ConfigError, ExportError
from modeldeploy.exporters.engine_cache import EngineCache, onnx_digest, shared_tier
from modeldeploy.exporters.tensorrt import TensorRTExporter, plan_precision, profiles_for
from tests.unit.tensorrt.fake_trt import RecordingFakeTensorRT, engine_blob

PROFILES = [
    {
        "component": None,
        "input_shapes": {
            "input": {"min_shape": [1, 5, 16, 16], "opt_shape": [1, 5, 16, 16], "max_shape": [2, 5, 32, 32]}
        },
    },
    {
        "component": "model",
        "input_shapes": {
            "input": {"min_shape": [3, 5, 16, 16], "opt_shape": [4, 5, 16, 16], "max_shape": [8, 5, 16, 16]}
        },
    },
    {"component": "other", "input_shapes": {"x": {"min_shape": [1], "opt_shape": [1], "max_shape": [1]}}},
]


def _cfg(policy: str = "auto", profiles: list | None = None, **common: object) -> BackendConfigSection:
    return BackendConfigSection.model_validate(
        {
            "common_config": {"precision_policy": policy, "max_workspace_size": 1 << 28, **common},
            "model_inputs": PROFILES if profiles is None else profiles,
            "quantization": {"calibration_samples": 4},
        }
    )


def _exporter(fake: RecordingFakeTensorRT, cfg: BackendConfigSection, tmp_path: Path, **kw: object) -> TensorRTExporter:
    return TensorRTExporter(
        cfg, trt_module=fake, compute_capability="9.0", cache=EngineCache(tmp_path / "cache" / "engines"), **kw
    )


# ---------------------------------------------------------------- availability


def test_require_tensorrt_fails_fast_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    ok, why = trt_api.tensorrt_available()
    assert not ok and why.startswith("TensorRT is not installed (import tensorrt failed:")
    with pytest.raises(BackendUnavailableError) as exc:
        trt_api.require_tensorrt()
    line = exc.value.one_line()
    assert "\n" not in line and line.startswith("BackendUnavailable: TensorRT is not installed") and "fix:" in line
    assert exc.value.exit_code == 2
    with pytest.raises(BackendUnavailableError):
        TensorRTExporter(_cfg())  # constructing the exporter is the fail-fast point


# ---------------------------------------------------------------- precision planning


def test_capabilities_by_feature_detection_on_fake_trt10_and_trt11() -> None:
    c10 = trt_api.capabilities(RecordingFakeTensorRT.tensorrt10())
    c11 = trt_api.capabilities(RecordingFakeTensorRT.tensorrt11())
    assert c10.weakly_typed_precision and {"FP16", "INT8", "TF32"} <= c10.builder_flags
    assert (
        not c11.weakly_typed_precision and "FP16" not in c11.builder_flags and "EXPLICIT_BATCH" not in c11.network_flags
    )


@pytest.mark.parametrize(
    "policy, trt10, trt11",
    [
        ("auto", ((), "none"), ((), "none")),
        ("fp16", (("FP16",), "none"), ((), "fp16")),
        ("fp32_tf32", (("TF32",), "none"), (("TF32",), "none")),
        ("explicit_int8", (("INT8",), "qdq"), ((), "qdq")),
        ("strongly_typed", ((), "none"), ((), "none")),
    ],
)
def test_precision_plan_per_tensorrt_generation(policy: str, trt10: tuple, trt11: tuple) -> None:
    p10 = plan_precision(policy, trt_api.capabilities(RecordingFakeTensorRT.tensorrt10()))
    p11 = plan_precision(policy, trt_api.capabilities(RecordingFakeTensorRT.tensorrt11()))
    assert (p10.builder_flags, p10.graph_transform) == trt10
    assert (p11.builder_flags, p11.graph_transform) == trt11
    assert p11.strongly_typed and p10.strongly_typed == (policy == "strongly_typed")


def test_profiles_for_component_takes_matching_and_unscoped_entries() -> None:
    cfg = _cfg()
    assert len(profiles_for(cfg, "model")) == 2
    assert len(profiles_for(cfg, "other")) == 2
    assert profiles_for(cfg, "model")[1]["input"][2] == (8, 5, 16, 16)


# ---------------------------------------------------------------- build calls


def test_trt10_fp16_build_records_flags_profiles_workspace_and_writes_logs(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    out = _exporter(fake, _cfg("fp16", builder_optimization_level=4), tmp_path).build(
        small_onnx, tmp_path / "engines", component="model", output_names=["logits", "saliency"]
    )
    assert fake.flags_set() == ["FP16"]
    assert ("set_memory_pool_limit", "WORKSPACE", 1 << 28) in fake.calls
    assert ("builder_optimization_level", 4) in fake.calls
    explicit_bit = 1 << int(fake.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    assert ("create_network", explicit_bit) in fake.calls  # EXPLICIT_BATCH set because this TensorRT still has it
    assert ("parse_from_file", str(small_onnx)) in fake.calls  # the original graph: precision comes from the flag
    profiles = [c[1] for c in fake.calls if c[0] == "add_optimization_profile"]
    assert profiles == [
        {"input": [[1, 5, 16, 16], [1, 5, 16, 16], [2, 5, 32, 32]]},
        {"input": [[3, 5, 16, 16], [4, 5, 16, 16], [8, 5, 16, 16]]},
    ]
    assert out.path.is_file() and engine_blob(out.path)["flags"] == ["FP16"]
    assert out.info["cache_hit"] is False and out.info["precision"] == "fp16"
    log = (tmp_path / "engines" / "model.build.log").read_text()
    assert "fake builder: starting build" in log and '"builder_flags": ["FP16"]' in log
    assert (tmp_path / "engines" / "model.timing.cache").read_bytes() == b"tactic;"
    meta = json.loads((tmp_path / "engines" / "model.engine.json").read_text())
    assert (
        meta["tensorrt"] == "10.13.3.9"
        and meta["compute_capability"] == "9.0"
        and meta["output_names"] == ["logits", "saliency"]
    )


def test_trt11_fp16_builds_from_an_fp16_graph_without_builder_flags(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt11()
    out = _exporter(fake, _cfg("fp16"), tmp_path).build(small_onnx, tmp_path / "engines", component="model")
    assert fake.flags_set() == []
    parsed = Path([c[1] for c in fake.calls if c[0] == "parse_from_file"][0])
    assert parsed.name == "model.fp16.onnx" and parsed in out.extra_files
    graph = onnx.load(str(parsed))
    assert {i.data_type for i in graph.graph.initializer if i.data_type in (1, 10)} == {onnx.TensorProto.FLOAT16}
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    strongly = 1 << int(fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert ("create_network", strongly) in fake.calls


def test_timing_cache_seeds_the_next_build(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    exp = TensorRTExporter(_cfg(engine_cache=False), trt_module=fake, compute_capability="9.0")
    exp.build(small_onnx, tmp_path / "e", component="model")
    exp.build(small_onnx, tmp_path / "e", component="model")
    seeds = [c[1] for c in fake.calls if c[0] == "create_timing_cache"]
    assert seeds == [b"", b"tactic;"]
    assert (tmp_path / "e" / "model.timing.cache").read_bytes() == b"tactic;tactic;"


def _qdq(small_onnx: Path, tmp_path: Path, calibration_samples: list) -> Path:
    """The one INT8 path: the graph is quantized before the exporter sees it (as the runner does)."""
    from modeldeploy.exporters.quantization import quantize_qdq

    return quantize_qdq(small_onnx, iter(calibration_samples), tmp_path / "model.int8_qdq.onnx", _cfg().quantization)


def test_explicit_int8_on_trt11_parses_a_qdq_graph(small_onnx: Path, tmp_path: Path, calibration_samples: list) -> None:
    fake = RecordingFakeTensorRT.tensorrt11()
    out = _exporter(fake, _cfg("explicit_int8"), tmp_path).build(
        _qdq(small_onnx, tmp_path, calibration_samples), tmp_path / "e", component="model"
    )
    parsed = Path([c[1] for c in fake.calls if c[0] == "parse_from_file"][0])
    assert parsed.name == "model.int8_qdq.onnx"
    ops = {n.op_type for n in onnx.load(str(parsed)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert fake.flags_set() == [] and out.info["precision"] == "int8"


def test_explicit_int8_on_trt10_sets_int8_flag(small_onnx: Path, tmp_path: Path, calibration_samples: list) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    _exporter(fake, _cfg("explicit_int8"), tmp_path).build(
        _qdq(small_onnx, tmp_path, calibration_samples), tmp_path / "e", component="model"
    )
    assert fake.flags_set() == ["INT8"]


def test_explicit_int8_on_a_graph_without_qdq_is_a_config_error_not_a_second_quantizer(
    small_onnx: Path, tmp_path: Path
) -> None:
    fake = RecordingFakeTensorRT.tensorrt11()
    with pytest.raises(ConfigError, match="not a Q/DQ graph"):
        _exporter(fake, _cfg("explicit_int8"), tmp_path).build(small_onnx, tmp_path / "e", component="model")
    assert "build_serialized_network" not in fake.call_names()


# ---------------------------------------------------------------- config errors before TensorRT


@pytest.mark.parametrize(
    "profiles, match",
    [
        ([], "dynamic dims but backend_config.model_inputs has no profile"),
        (
            [
                {
                    "input_shapes": {
                        "images": {
                            "min_shape": [1, 5, 16, 16],
                            "opt_shape": [1, 5, 16, 16],
                            "max_shape": [1, 5, 16, 16],
                        }
                    }
                }
            ],
            "does not have",
        ),
        (
            [{"input_shapes": {"input": {"min_shape": [1, 5, 16], "opt_shape": [1, 5, 16], "max_shape": [1, 5, 16]}}}],
            "rank 3",
        ),
        (
            [
                {
                    "input_shapes": {
                        "input": {"min_shape": [1, 3, 16, 16], "opt_shape": [1, 3, 16, 16], "max_shape": [1, 3, 16, 16]}
                    }
                }
            ],
            "axis 1 is static",
        ),
    ],
)
def test_bad_profiles_are_config_errors_before_any_tensorrt_call(
    small_onnx: Path, tmp_path: Path, profiles: list, match: str
) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    with pytest.raises(ConfigError, match=match):
        _exporter(fake, _cfg(profiles=profiles), tmp_path).build(small_onnx, tmp_path / "e", component="model")
    assert fake.calls == []


def test_parser_errors_are_reported_per_node(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10(unsupported_ops=("Conv",))
    with pytest.raises(ExportError) as exc:
        _exporter(fake, _cfg(), tmp_path).build(small_onnx, tmp_path / "e", component="model")
    msg = exc.value.message
    assert (
        "could not parse model.onnx" in msg
        and "(Conv): [ErrorCode.UNSUPPORTED_NODE] No importer registered for op: Conv" in msg
    )
    log = (tmp_path / "e" / "model.build.log").read_text()
    assert log.count("[PARSER] node") == 2  # both Conv nodes, each with its index


def test_build_failure_names_tensorrts_error_and_keeps_the_log(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10(fail_build=True)
    with pytest.raises(ExportError, match="out of workspace memory"):
        _exporter(fake, _cfg(), tmp_path).build(small_onnx, tmp_path / "e", component="model")
    assert "[ERROR] fake builder: out of workspace memory" in (tmp_path / "e" / "model.build.log").read_text()
    assert not (tmp_path / "e" / "model.engine").exists()


# ---------------------------------------------------------------- engine cache


def test_identical_request_reuses_the_engine_and_any_change_rebuilds(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    first = _exporter(fake, _cfg(), tmp_path).build(small_onnx, tmp_path / "e1", component="model")
    fake.calls.clear()
    again = _exporter(fake, _cfg(), tmp_path).build(small_onnx, tmp_path / "e2", component="model")
    assert again.info["cache_hit"] is True and again.info["cache_source"] == "local"
    assert "Builder" not in fake.call_names()
    assert again.path.read_bytes() == first.path.read_bytes()
    changes = {
        "precision": dict(cfg=_cfg("fp16")),
        "workspace": dict(cfg=_cfg(max_workspace_size=1 << 29)),
        "opt level": dict(cfg=_cfg(builder_optimization_level=5)),
        "profiles": dict(cfg=_cfg(profiles=PROFILES[:1])),
        "gpu": dict(cfg=_cfg(), cc="8.9"),
    }
    keys = {first.info["cache_key"]}
    for what, change in changes.items():
        fake.calls.clear()
        exp = TensorRTExporter(
            change["cfg"],
            trt_module=fake,
            compute_capability=change.get("cc", "9.0"),
            cache=EngineCache(tmp_path / "cache" / "engines"),
        )
        out = exp.build(small_onnx, tmp_path / f"e-{what}", component="model")
        assert out.info["cache_hit"] is False and "build_serialized_network" in fake.call_names(), what
        keys.add(out.info["cache_key"])
    other_trt = RecordingFakeTensorRT("10.14.0.1", ["FP16", "INT8", "TF32"], ["EXPLICIT_BATCH", "STRONGLY_TYPED"])
    out = _exporter(other_trt, _cfg(), tmp_path).build(small_onnx, tmp_path / "e-trt", component="model")
    assert out.info["cache_hit"] is False
    keys.add(out.info["cache_key"])
    assert len(keys) == len(changes) + 2


def test_onnx_digest_covers_external_data(small_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(small_onnx))
    ext = tmp_path / "ext.onnx"
    onnx.save_model(model, str(ext), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    before = onnx_digest(ext)
    data = bytearray((tmp_path / "ext.onnx.data").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "ext.onnx.data").write_bytes(bytes(data))
    assert onnx_digest(ext) != before
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(ExportError, match="external data"):
        onnx_digest(ext)


def test_corrupt_cache_entry_is_a_miss_and_gets_rebuilt(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    first = _exporter(fake, _cfg(), tmp_path).build(small_onnx, tmp_path / "e1", component="model")
    entry = tmp_path / "cache" / "engines" / first.info["cache_key"] / "engine.plan"
    entry.write_bytes(b"garbage")
    again = _exporter(fake, _cfg(), tmp_path).build(small_onnx, tmp_path / "e2", component="model")
    assert again.info["cache_hit"] is False and again.path.read_bytes() == first.path.read_bytes()


def test_shared_tier_lets_another_node_reuse_the_engine(small_onnx: Path, tmp_path: Path) -> None:
    store = LocalArtifactStore(str(tmp_path / "store"), cas_uri=str(tmp_path / "cas"))
    shared = shared_tier(store)
    assert shared is not None
    fake = RecordingFakeTensorRT.tensorrt10()
    node_a = TensorRTExporter(
        _cfg(), trt_module=fake, compute_capability="9.0", cache=EngineCache(tmp_path / "a", shared)
    )
    node_a.build(small_onnx, tmp_path / "ea", component="model")
    fake.calls.clear()
    node_b = TensorRTExporter(
        _cfg(), trt_module=fake, compute_capability="9.0", cache=EngineCache(tmp_path / "b", shared)
    )
    out = node_b.build(small_onnx, tmp_path / "eb", component="model")
    assert out.info["cache_hit"] is True and out.info["cache_source"] == "shared" and fake.calls == []


def test_engine_cache_disabled_always_builds(small_onnx: Path, tmp_path: Path) -> None:
    fake = RecordingFakeTensorRT.tensorrt10()
    exp = TensorRTExporter(_cfg(engine_cache=False), trt_module=fake, compute_capability="9.0")
    assert exp.cache is None
    out = exp.build(small_onnx, tmp_path / "e", component="model")
    assert out.info["cache_source"] == "disabled" and "build_serialized_network" in fake.call_names()
    assert np.isfinite(out.info["build_seconds"])


def test_a_graph_that_is_already_qdq_is_not_quantized_again(
    small_onnx: Path, tmp_path: Path, calibration_samples: list
) -> None:
    from modeldeploy.exporters.base import ExportedModel
    from modeldeploy.exporters.quantization import quantize_qdq

    qdq = quantize_qdq(small_onnx, iter(calibration_samples), tmp_path / "model.int8_qdq.onnx", _cfg().quantization)
    fake = RecordingFakeTensorRT.tensorrt11()
    exp = _exporter(fake, _cfg("explicit_int8"), tmp_path)  # no calibration source: none needed
    out = exp.export_onnx(
        ExportedModel("model", qdq, input_names=["input"], output_names=["logits", "saliency"]), tmp_path / "e"
    )
    assert ("parse_from_file", str(qdq)) in fake.calls and out.output_names == ["logits", "saliency"]
    assert out.path == tmp_path / "e" / "model.engine"
