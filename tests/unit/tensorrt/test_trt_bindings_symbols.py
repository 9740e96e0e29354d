"""Every TensorRT name tensorrt_api.py uses must exist in the real TensorRT bindings.

The wheel's shared object stores pybind names as NUL-terminated strings; the linker
merges a string into a longer one ending the same way ("Builder" lives inside
"IExprBuilder"), so a name is present iff ``name + b"\\0"`` occurs in the bytes. That
catches typos and removed APIs; it cannot tell a removed name from one that is the tail
of a surviving longer name (``INT8`` is the tail of ``UINT8``).
"""

from __future__ import annotations

import re
from pathlib import Path

import modeldeploy.tensorrt_api as trt_api
from tests.unit.tensorrt.trt_symbols import extract

TRT_API_SOURCE = Path(trt_api.__file__).read_text()
RUNTIME_ROOT = Path(trt_api.__file__).parent


def _present(so: bytes, name: str) -> bool:
    return name.encode() + b"\0" in so


def _feature_detected_names() -> set[str]:
    names = extract(TRT_API_SOURCE).optional
    names |= set(trt_api._DTYPE_MEMBERS) | set(trt_api._BUILDER_FLAG_NAMES) | set(trt_api._NETWORK_FLAG_NAMES)
    return names


def test_extractor_finds_the_core_api_surface() -> None:
    names = extract(TRT_API_SOURCE)
    expected = {
        "Builder", "NetworkDefinitionCreationFlag", "BuilderFlag", "OnnxParser", "parse_from_file", "build_serialized_network",
        "set_memory_pool_limit", "WORKSPACE", "add_optimization_profile", "set_shape", "create_timing_cache", "set_timing_cache",
        "serialize", "deserialize_cuda_engine", "create_execution_context", "set_tensor_address", "set_input_shape",
        "execute_async_v3", "get_tensor_name", "num_io_tensors", "get_tensor_mode", "get_tensor_dtype", "get_tensor_shape",
        "get_tensor_profile_shape", "set_optimization_profile_async", "num_errors", "get_error", "node", "desc", "code",
        "builder_optimization_level", "ILogger", "log", "__version__",
    }  # fmt: skip
    assert expected <= names.required, sorted(expected - names.required)
    assert {"EXPLICIT_BATCH", "STRONGLY_TYPED", "node_name", "node_operator"} <= names.optional


def test_every_required_trt_name_exists_in_the_real_bindings(trt_bindings_so: bytes) -> None:
    required = extract(TRT_API_SOURCE).required
    missing = sorted(n for n in required if not _present(trt_bindings_so, n))
    assert not missing, f"tensorrt_api.py uses TensorRT names absent from the bindings: {missing}"


def test_feature_detection_covers_what_tensorrt11_lacks(trt_bindings_so: bytes) -> None:
    """The TensorRT 11 gaps (FP16 builder flag, EXPLICIT_BATCH) are only ever looked up optionally."""
    optional = _feature_detected_names()
    absent = sorted(n for n in optional if not _present(trt_bindings_so, n))
    print("feature-detected names absent in these bindings:", absent)
    assert "FP16" in absent and "EXPLICIT_BATCH" in absent, absent
    required = extract(TRT_API_SOURCE).required
    assert not (set(absent) & required), "a name TensorRT 11 lacks is used unconditionally"


def test_symbol_check_catches_a_typo(trt_bindings_so: bytes) -> None:
    typo = extract(TRT_API_SOURCE.replace("execute_async_v3", "execute_async_v4")).required
    assert "execute_async_v4" in typo and not _present(trt_bindings_so, "execute_async_v4")
    removed = extract(TRT_API_SOURCE.replace('getattr(net, "EXPLICIT_BATCH", None)', "net.EXPLICIT_BATCH")).required
    assert "EXPLICIT_BATCH" in removed and not _present(trt_bindings_so, "EXPLICIT_BATCH")


def test_dynamic_lookups_only_in_table_driven_functions() -> None:
    """getattr with a computed name is allowed only where the names come from a module table the checks above read."""
    assert extract(TRT_API_SOURCE).dynamic_in == {"capabilities", "create_config", "dtype_name"}


def test_only_trt_api_imports_tensorrt() -> None:
    pattern = re.compile(r"^\s*(import tensorrt|from tensorrt)", re.M)
    offenders = [str(p.relative_to(RUNTIME_ROOT)) for p in RUNTIME_ROOT.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == ["tensorrt_api.py"], offenders
