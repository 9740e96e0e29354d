"""Every call into the ``tensorrt`` Python module, and nothing else.

Why one small module: TensorRT cannot be installed on the build machines, so this code
is exercised in CI only through a recording test double, and the attribute names it uses
are checked by AST against the strings of the real ``tensorrt-cu13-bindings`` wheel
(tests/unit/tensorrt/test_trt_bindings_symbols.py). Keeping every TensorRT name here is
what makes that check complete.

Conventions the symbol check relies on (keep them when editing):
* the TensorRT module is always a parameter or local called ``trt``;
* a TensorRT object received as a parameter is annotated ``TRTHandle``;
* a name that may be absent in some TensorRT version is looked up with
  ``getattr(x, "NAME", None)`` / ``hasattr(x, "NAME")`` — that is the feature detection
  (never version parsing), and such names are reported as optional by the check.

TensorRT 10 vs 11, as read in the 11.4 bindings: 11 has no ``BuilderFlag.FP16`` (nor
``INT8`` as a builder flag) and no ``EXPLICIT_BATCH``; ``STRONGLY_TYPED`` is accepted but
ignored because networks are always strongly typed. So precision on 11 comes from the
graph's own types (fp16 ONNX, Q/DQ ONNX), while 10 still takes builder flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from modeldeploy.errors import BackendUnavailableError

TRTHandle = Any  # a TensorRT object (Builder, network, config, engine, context, ...)

INSTALL_HINT = (
    "run on the GPU runtime image (it ships TensorRT), or pip install tensorrt on a CUDA host; "
    "otherwise choose export.mode='onnx' and evaluate onnxruntime"
)

# TensorRT data type member name -> numpy/torch-style dtype name. Members that only some
# TensorRT versions have are looked up with getattr (feature detection).
_DTYPE_MEMBERS = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FP8": "float8_e4m3fn",
}


def load_tensorrt() -> ModuleType:
    """Import the real ``tensorrt`` module or raise one clear BackendUnavailableError."""
    try:
        import tensorrt as trt
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailableError(
            f"TensorRT is not installed (import tensorrt failed: {first})", hint=INSTALL_HINT
        ) from exc
    return trt


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) or (False, why) without raising: for reports and config checks."""
    try:
        trt = load_tensorrt()
    except BackendUnavailableError as exc:
        return False, exc.message
    return True, trt_version(trt)


def require_tensorrt() -> ModuleType:
    """Call BEFORE any export work so a missing TensorRT fails in the first second."""
    return load_tensorrt()


def trt_version(trt: ModuleType) -> str:
    return str(trt.__version__)


# ----------------------------------------------------------------------------- logging


@dataclass
class LogRecord:
    severity: str
    message: str


def make_logger(trt: ModuleType, records: list[LogRecord], min_severity: str = "VERBOSE") -> TRTHandle:
    """A ``trt.ILogger`` that appends every message to ``records`` (written to a build log)."""
    sev = trt.ILogger.Severity
    ranked = [
        (sev.INTERNAL_ERROR, "INTERNAL_ERROR"),
        (sev.ERROR, "ERROR"),
        (sev.WARNING, "WARNING"),
        (sev.INFO, "INFO"),
        (sev.VERBOSE, "VERBOSE"),
    ]
    rank = {value: i for i, (value, _name) in enumerate(ranked)}
    names = {value: name for value, name in ranked}
    limit = [name for _v, name in ranked].index(min_severity)

    # trt is a ModuleType parameter (tensorrt ships no stubs): mypy cannot resolve a base class from it
    class CollectingLogger(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:  # called by TensorRT
            if rank.get(severity, 0) <= limit:
                records.append(LogRecord(names.get(severity, str(severity)), str(msg)))

    return CollectingLogger()


# ----------------------------------------------------------------------------- features


@dataclass(frozen=True)
class Capabilities:
    """What this TensorRT offers, found by looking, never by parsing the version."""

    version: str
    builder_flags: frozenset[str] = field(default_factory=frozenset)
    network_flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def weakly_typed_precision(self) -> bool:
        """TensorRT 10: FP16/INT8 builder flags pick precisions. TensorRT 11: absent."""
        return "FP16" in self.builder_flags


_BUILDER_FLAG_NAMES = ("FP16", "INT8", "TF32", "BF16", "FP8", "INT4", "OBEY_PRECISION_CONSTRAINTS")
_NETWORK_FLAG_NAMES = ("EXPLICIT_BATCH", "STRONGLY_TYPED")


def capabilities(trt: ModuleType) -> Capabilities:
    flags = trt.BuilderFlag
    net = trt.NetworkDefinitionCreationFlag
    return Capabilities(
        version=trt_version(trt),
        builder_flags=frozenset(n for n in _BUILDER_FLAG_NAMES if hasattr(flags, n)),
        network_flags=frozenset(n for n in _NETWORK_FLAG_NAMES if hasattr(net, n)),
    )


# ----------------------------------------------------------------------------- build


@dataclass(frozen=True)
class ParserIssue:
    node_index: int
    node_name: str
    node_operator: str
    code: str
    description: str

    def one_line(self) -> str:
        where = f"node {self.node_index}"
        if self.node_name:
            where += f" '{self.node_name}'"
        if self.node_operator:
            where += f" ({self.node_operator})"
        return f"{where}: [{self.code}] {self.description}"


def create_builder(trt: ModuleType, logger: TRTHandle) -> TRTHandle:
    return trt.Builder(logger)


def create_network(trt: ModuleType, builder: TRTHandle, *, strongly_typed: bool) -> TRTHandle:
    """Explicit batch is the only mode in 10/11; set the flag only where it still exists."""
    net = trt.NetworkDefinitionCreationFlag
    flags = 0
    explicit = getattr(net, "EXPLICIT_BATCH", None)
    if explicit is not None:
        flags |= 1 << int(explicit)
    if strongly_typed:
        st = getattr(net, "STRONGLY_TYPED", None)
        if st is not None:
            flags |= 1 << int(st)
    return builder.create_network(flags)


def parse_onnx(
    trt: ModuleType, network: TRTHandle, logger: TRTHandle, onnx_path: Path
) -> tuple[TRTHandle, list[ParserIssue]]:
    """Parse from the file path so external data files next to the graph resolve.

    Returns the parser too: it owns the weights the network refers to, so the caller must
    keep it alive until the engine is built.
    """
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return parser, []
    issues = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node_name = getattr(err, "node_name", None)
        node_op = getattr(err, "node_operator", None)
        issues.append(
            ParserIssue(
                node_index=int(err.node()),
                node_name=str(node_name()) if node_name is not None else "",
                node_operator=str(node_op()) if node_op is not None else "",
                code=str(err.code()),
                description=str(err.desc()),
            )
        )
    return parser, issues


def network_inputs(network: TRTHandle) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape with -1 for dynamic dims) for each network input."""
    result = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        result.append((str(tensor.name), tuple(int(d) for d in tensor.shape)))
    return result


def network_outputs(network: TRTHandle) -> list[str]:
    return [str(network.get_output(i).name) for i in range(network.num_outputs)]


def create_config(
    trt: ModuleType,
    builder: TRTHandle,
    *,
    workspace_bytes: int,
    optimization_level: int | None,
    builder_flags: tuple[str, ...],
) -> TRTHandle:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    for name in builder_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise BackendUnavailableError(
                f"TensorRT {trt_version(trt)} has no BuilderFlag.{name}",
                hint="this precision must come from the graph's types on this TensorRT (report a bug: the planner should not ask for it)",
            )
        config.set_flag(flag)
    return config


def add_profile(
    builder: TRTHandle, config: TRTHandle, shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
) -> int:
    """One optimization profile: input name -> (min, opt, max). Returns its index."""
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    return int(config.add_optimization_profile(profile))


def attach_timing_cache(config: TRTHandle, data: bytes) -> TRTHandle:
    """Seed the build with a previous timing cache (empty bytes: a fresh one)."""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)
    return cache


def serialize_timing_cache(cache: TRTHandle) -> bytes:
    return bytes(memoryview(cache.serialize()))


def build_serialized(builder: TRTHandle, network: TRTHandle, config: TRTHandle) -> bytes | None:
    """The engine bytes, or None when TensorRT refused (the reason is in the log)."""
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        return None
    return bytes(memoryview(blob))


# ----------------------------------------------------------------------------- run


@dataclass(frozen=True)
class IOTensor:
    name: str
    is_input: bool
    dtype: str  # numpy-style name: float32, float16, int32, ...
    shape: tuple[int, ...]  # -1 for dynamic dims


def create_runtime(trt: ModuleType, logger: TRTHandle) -> TRTHandle:
    return trt.Runtime(logger)


def deserialize_engine(runtime: TRTHandle, data: bytes) -> TRTHandle:
    """The engine, or None when TensorRT refused it (version/GPU reason in the log)."""
    return runtime.deserialize_cuda_engine(data)


def dtype_name(trt: ModuleType, dt: TRTHandle) -> str:
    for member, name in _DTYPE_MEMBERS.items():
        value = getattr(trt.DataType, member, None)
        if value is not None and value == dt:
            return name
    return f"unsupported:{dt}"


def engine_io(trt: ModuleType, engine: TRTHandle) -> list[IOTensor]:
    tensors = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        tensors.append(
            IOTensor(
                name=str(name),
                is_input=mode == trt.TensorIOMode.INPUT,
                dtype=dtype_name(trt, engine.get_tensor_dtype(name)),
                shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
            )
        )
    return tensors


def num_profiles(engine: TRTHandle) -> int:
    return int(engine.num_optimization_profiles)


def profile_shape(
    engine: TRTHandle, name: str, profile: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    lo, opt, hi = engine.get_tensor_profile_shape(name, profile)
    return tuple(int(d) for d in lo), tuple(int(d) for d in opt), tuple(int(d) for d in hi)


def create_context(engine: TRTHandle) -> TRTHandle:
    return engine.create_execution_context()


def activate_profile(context: TRTHandle, profile: int, stream: int) -> bool:
    return bool(context.set_optimization_profile_async(profile, stream))


def set_input_shape(context: TRTHandle, name: str, shape: tuple[int, ...]) -> bool:
    return bool(context.set_input_shape(name, tuple(shape)))


def context_tensor_shape(context: TRTHandle, name: str) -> tuple[int, ...]:
    return tuple(int(d) for d in context.get_tensor_shape(name))


def set_tensor_address(context: TRTHandle, name: str, address: int) -> bool:
    return bool(context.set_tensor_address(name, int(address)))


def execute_async(context: TRTHandle, stream: int) -> bool:
    return bool(context.execute_async_v3(int(stream)))
