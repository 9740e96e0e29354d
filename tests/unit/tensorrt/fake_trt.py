"""RecordingFakeTensorRT: a test double of the ``tensorrt`` module surface trt_api uses.

It records every call (``fake.calls``) so tests assert WHAT would be asked of TensorRT,
and it behaves enough like TensorRT to test what is around the calls: the ONNX parser
reads the real graph (names, dynamic dims, dtypes, unsupported ops → per-node errors),
the "engine" is a JSON blob holding the graph path and profiles, and ``execute_async_v3``
runs the graph in ONNX Runtime reading/writing the bound addresses (CPU tensors only),
so the backend's shape/profile/address/ordering logic is checked against real numbers.

Only names that exist in the real bindings are used for the public surface; the symbol
test checks that too (test_trt_bindings_symbols.py).
"""

from __future__ import annotations

import ctypes
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np


class FakeEnumValue:
    def __init__(self, owner: str, name: str, value: int) -> None:
        self.owner, self.name, self.value = owner, name, value

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeEnumValue) and (other.owner, other.value) == (self.owner, self.value)

    def __hash__(self) -> int:
        return hash((self.owner, self.value))

    def __repr__(self) -> str:
        return f"{self.owner}.{self.name}"


def fake_enum(owner: str, names: list[str]) -> type:
    return type(owner, (), {n: FakeEnumValue(owner, n, i) for i, n in enumerate(names)})


_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 7: "INT64", 6: "INT32", 9: "BOOL", 2: "UINT8", 3: "INT8", 16: "BF16"}
_TRT_TO_NP = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT8": np.int8,
}


class FakeTensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: str) -> None:
        self.name, self.shape, self.dtype_name = name, shape, dtype


class FakeParserError:
    def __init__(self, index: int, name: str, op: str, desc: str) -> None:
        self._index, self._name, self._op, self._desc = index, name, op, desc

    def node(self) -> int:
        return self._index

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def code(self) -> str:
        return "ErrorCode.UNSUPPORTED_NODE"

    def desc(self) -> str:
        return self._desc


class FakeNetwork:
    def __init__(self, fake: RecordingFakeTensorRT, flags: int) -> None:
        self.fake, self.flags = fake, flags
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []
        self.onnx_path: str | None = None
        self.parser_ref: weakref.ref | None = None

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> FakeTensor:
        return self.inputs[i]

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, i: int) -> FakeTensor:
        return self.outputs[i]


class FakeOnnxParser:
    def __init__(self, fake: RecordingFakeTensorRT, network: FakeNetwork, logger: Any) -> None:
        self.fake, self.network, self.logger = fake, network, logger
        self.errors: list[FakeParserError] = []
        network.parser_ref = weakref.ref(self)  # like TensorRT: the parser owns the network's weights

    def parse_from_file(self, path: str) -> bool:
        import onnx

        self.fake.calls.append(("parse_from_file", path))
        model = onnx.load(path)  # loads external data: fails like TensorRT if a .data file is missing
        inits = {i.name for i in model.graph.initializer}
        for k, node in enumerate(model.graph.node):
            if node.op_type in self.fake.unsupported_ops:
                self.errors.append(
                    FakeParserError(k, node.name, node.op_type, f"No importer registered for op: {node.op_type}")
                )
        if self.errors:
            return False
        for inp in model.graph.input:
            if inp.name in inits:
                continue
            dims = tuple(
                d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                for d in inp.type.tensor_type.shape.dim
            )
            self.network.inputs.append(FakeTensor(inp.name, dims, _ONNX_TO_TRT[inp.type.tensor_type.elem_type]))
        for out in model.graph.output:
            self.network.outputs.append(FakeTensor(out.name, (), _ONNX_TO_TRT[out.type.tensor_type.elem_type]))
        self.network.onnx_path = path
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> FakeParserError:
        return self.errors[i]


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name: str, lo: tuple[int, ...], opt: tuple[int, ...], hi: tuple[int, ...]) -> None:
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def serialize(self) -> bytes:
        return self.data + b"tactic;"


class FakeBuilderConfig:
    def __init__(self, fake: RecordingFakeTensorRT) -> None:
        self.fake = fake
        self.flags: list[str] = []
        self.profiles: list[FakeProfile] = []
        self.pool_limits: dict[str, int] = {}
        self._level: int | None = None
        self.timing_cache: FakeTimingCache | None = None

    def set_memory_pool_limit(self, pool: FakeEnumValue, size: int) -> None:
        self.fake.calls.append(("set_memory_pool_limit", pool.name, size))
        self.pool_limits[pool.name] = size

    @property
    def builder_optimization_level(self) -> int | None:
        return self._level

    @builder_optimization_level.setter
    def builder_optimization_level(self, level: int) -> None:
        self.fake.calls.append(("builder_optimization_level", level))
        self._level = level

    def set_flag(self, flag: FakeEnumValue) -> None:
        self.fake.calls.append(("set_flag", flag.name))
        self.flags.append(flag.name)

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.fake.calls.append(("add_optimization_profile", dict(profile.shapes)))
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        self.fake.calls.append(("create_timing_cache", bytes(data)))
        return FakeTimingCache(data)

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.fake.calls.append(("set_timing_cache", ignore_mismatch))
        self.timing_cache = cache
        return True


class FakeBuilder:
    def __init__(self, fake: RecordingFakeTensorRT, logger: Any) -> None:
        fake.calls.append(("Builder",))
        self.fake, self.logger = fake, logger

    def create_network(self, flags: int = 0) -> FakeNetwork:
        self.fake.calls.append(("create_network", flags))
        return FakeNetwork(self.fake, flags)

    def create_builder_config(self) -> FakeBuilderConfig:
        return FakeBuilderConfig(self.fake)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork, config: FakeBuilderConfig) -> bytes | None:
        self.fake.calls.append(("build_serialized_network",))
        sev = self.fake.ILogger.Severity
        self.logger.log(sev.INFO, "fake builder: starting build")
        if self.fake.fail_build:
            self.logger.log(sev.ERROR, "fake builder: out of workspace memory for tactic")
            return None
        if network.parser_ref is not None and network.parser_ref() is None:
            self.logger.log(sev.ERROR, "fake builder: network weights were freed with the ONNX parser (use after free)")
            return None
        dynamic = [t.name for t in network.inputs if any(d < 0 for d in t.shape)]
        if dynamic and not config.profiles:
            self.logger.log(
                sev.ERROR,
                f"Network has dynamic or shape inputs, but no optimization profile has been defined ({dynamic})",
            )
            return None
        engine = {
            "version": self.fake.__version__,
            "onnx": network.onnx_path,
            "inputs": [[t.name, list(t.shape), t.dtype_name] for t in network.inputs],
            "outputs": [[t.name, t.dtype_name] for t in network.outputs],
            "profiles": [p.shapes for p in config.profiles],
            "flags": config.flags,
            "network_flags": network.flags,
        }
        return json.dumps(engine).encode()


class FakeRuntime:
    def __init__(self, fake: RecordingFakeTensorRT, logger: Any) -> None:
        fake.calls.append(("Runtime",))
        self.fake, self.logger = fake, logger

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        self.fake.calls.append(("deserialize_cuda_engine", len(data)))
        try:
            blob = json.loads(bytes(data))
        except ValueError:
            self.logger.log(
                self.fake.ILogger.Severity.ERROR,
                "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)",
            )
            return None
        if blob["version"] != self.fake.__version__:
            self.logger.log(
                self.fake.ILogger.Severity.ERROR,
                f"IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match. built with {blob['version']})",
            )
            return None
        return FakeEngine(self.fake, blob)


class FakeEngine:
    def __init__(self, fake: RecordingFakeTensorRT, blob: dict) -> None:
        self.fake, self.blob = fake, blob
        self.names = [n for n, _s, _d in blob["inputs"]] + [n for n, _d in blob["outputs"]]
        self.dtypes = {n: d for n, _s, d in blob["inputs"]} | {n: d for n, d in blob["outputs"]}
        self.shapes = {n: tuple(s) for n, s, _d in blob["inputs"]}
        self.input_set = {n for n, _s, _d in blob["inputs"]}
        self._session = None

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> FakeEnumValue:
        return self.fake.TensorIOMode.INPUT if name in self.input_set else self.fake.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> FakeEnumValue:
        return getattr(self.fake.DataType, self.dtypes[name])

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name, (-1,))

    @property
    def num_optimization_profiles(self) -> int:
        return max(1, len(self.blob["profiles"]))

    def get_tensor_profile_shape(self, name: str, k: int) -> list[tuple[int, ...]]:
        lo, opt, hi = self.blob["profiles"][k][name]
        return [tuple(lo), tuple(opt), tuple(hi)]

    def create_execution_context(self) -> FakeContext:
        self.fake.calls.append(("create_execution_context",))
        return FakeContext(self)

    def session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(self.blob["onnx"], providers=["CPUExecutionProvider"])
        return self._session


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.fake = engine, engine.fake
        self.profile = 0
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self._out_shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}

    def set_optimization_profile_async(self, k: int, stream: int) -> bool:
        self.fake.calls.append(("set_optimization_profile_async", k, stream))
        self.profile = k
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.fake.calls.append(("set_input_shape", name, tuple(shape)))
        profiles = self.engine.blob["profiles"]
        if profiles and name in profiles[self.profile]:
            lo, _opt, hi = profiles[self.profile][name]
            if not all(a <= s <= b for s, a, b in zip(shape, lo, hi)):
                return False
        self.input_shapes[name] = tuple(shape)
        return True

    def _feeds_zero(self) -> dict[str, np.ndarray]:
        return {n: np.zeros(s, dtype=_TRT_TO_NP[self.engine.dtypes[n]]) for n, s in self.input_shapes.items()}

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self.engine.input_set:
            return self.input_shapes.get(name, self.engine.shapes[name])
        key = tuple(sorted(self.input_shapes.items()))
        if key not in self._out_shapes:
            sess = self.engine.session()
            outs = sess.run(None, self._feeds_zero())
            self._out_shapes[key] = {o.name: tuple(v.shape) for o, v in zip(sess.get_outputs(), outs)}
        return self._out_shapes[key][name]

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.fake.calls.append(("set_tensor_address", name))
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.fake.calls.append(("execute_async_v3", stream_handle))
        feeds = {
            n: _view(self.addresses[n], s, _TRT_TO_NP[self.engine.dtypes[n]]).copy()
            for n, s in self.input_shapes.items()
        }
        sess = self.engine.session()
        for o, value in zip(sess.get_outputs(), sess.run(None, feeds)):
            dst = _view(self.addresses[o.name], value.shape, _TRT_TO_NP[self.engine.dtypes[o.name]])
            dst[...] = value
        return True


def _view(address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    count = int(np.prod(shape)) if len(shape) else 1
    buf = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


class _FakeILoggerBase:
    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:  # overridden by trt_api's logger
        raise NotImplementedError


class RecordingFakeTensorRT:
    """Stands in for ``import tensorrt``; ``tensorrt10()`` / ``tensorrt11()`` pick the flag sets."""

    def __init__(
        self,
        version: str,
        builder_flags: list[str],
        network_flags: list[str],
        *,
        unsupported_ops: tuple[str, ...] = (),
        fail_build: bool = False,
    ) -> None:
        self.__version__ = version
        self.calls: list[tuple] = []
        self.unsupported_ops = set(unsupported_ops)
        self.fail_build = fail_build
        self.BuilderFlag = fake_enum("BuilderFlag", builder_flags)
        self.NetworkDefinitionCreationFlag = fake_enum("NetworkDefinitionCreationFlag", network_flags)
        self.MemoryPoolType = fake_enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "TACTIC_SHARED_MEMORY"])
        self.DataType = fake_enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "INT64", "BF16"])
        self.TensorIOMode = fake_enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
        severity = fake_enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])
        self.ILogger = type("ILogger", (_FakeILoggerBase,), {"Severity": severity})
        fake = self
        self.Builder = lambda logger: FakeBuilder(fake, logger)
        self.OnnxParser = lambda network, logger: FakeOnnxParser(fake, network, logger)
        self.Runtime = lambda logger: FakeRuntime(fake, logger)

    @classmethod
    def tensorrt10(cls, **kw: Any) -> RecordingFakeTensorRT:
        """TensorRT 10.x: weakly typed builder flags, deprecated EXPLICIT_BATCH still present."""
        return cls(
            "10.13.3.9",
            ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "TF32", "BF16", "FP8"],
            [
                "EXPLICIT_BATCH",
                "EXPLICIT_PRECISION",
                "PREFER_AOT_PYTHON_PLUGINS",
                "PREFER_JIT_PYTHON_PLUGINS",
                "STRONGLY_TYPED",
            ],
            **kw,
        )

    @classmethod
    def tensorrt11(cls, **kw: Any) -> RecordingFakeTensorRT:
        """TensorRT 11.4 as read in the bindings: no FP16/INT8 builder flag, no EXPLICIT_BATCH."""
        return cls("11.4.0.106", ["DEBUG", "GPU_FALLBACK", "TF32", "BF16"], ["STRONGLY_TYPED"], **kw)

    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def flags_set(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "set_flag"]


def engine_blob(path: Path) -> dict:
    return json.loads(Path(path).read_bytes())
