"""TensorRT backend: a serialized engine behind the common ``infer()`` interface.

Why it is built this way:
* device buffers are torch CUDA tensors bound with ``set_tensor_address`` and the engine
  runs with ``execute_async_v3`` on torch's current stream, so there is no host round trip
  and torch work before/after is ordered with it (timings with CUDA events stay honest);
* one execution context per optimization profile, chosen by the input shapes, so several
  profiles (e.g. batch 1 and batch 8) are served from one engine;
* outputs are looked up by NAME and returned in ``output_names`` order — binding indices
  differ between TensorRT versions and builds;
* optional CUDA-graph capture per input-shape signature removes launch overhead for
  small models (one warm-up run first: TensorRT finishes lazy set-up on its first enqueue);
* an engine from another TensorRT version or GPU is refused with one line saying which,
  from the engine's ``EngineInfo`` the exporter writes, before TensorRT is asked.

Every TensorRT call goes through ``modeldeploy.tensorrt_api``; ``trt_module`` is
injectable so CI drives this class with a test double (on CPU tensors, which only a test
double can execute).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from modeldeploy import tensorrt_api as trt_api
from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.engine_info import read_engine_info
from modeldeploy.errors import BackendUnavailableError, ConfigError, InferenceError

log = logging.getLogger(__name__)

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}
if hasattr(torch, "float8_e4m3fn"):
    TORCH_DTYPES["float8_e4m3fn"] = torch.float8_e4m3fn

_MAX_GRAPHS = 8


class EngineIncompatibleError(BackendUnavailableError):
    reason = "EngineIncompatible"


class _GraphSlot:
    """A captured CUDA graph with the static buffers its kernels point at."""

    def __init__(self, graph: Any, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
        self.graph = graph
        self.inputs = inputs
        self.outputs = outputs


class TensorRTBackend(BaseBackend):
    backend_name = "tensorrt"

    def __init__(
        self,
        engine_path: str | Path,
        device: str | torch.device = "cuda",
        precision: str | None = None,
        *,
        output_names: list[str] | None = None,
        cuda_graph: bool = False,
        trt_module: ModuleType | None = None,
        compute_capability: str | None = None,
    ) -> None:
        self.engine_path = Path(engine_path)
        self.info = read_engine_info(self.engine_path)  # what the exporter built (core/engine_info.py)
        super().__init__(device, precision or (self.info.precision if self.info else "fp32"))
        if self.device.type != "cuda" and trt_module is None:
            raise BackendUnavailableError(
                f"TensorRT runs on CUDA devices only, got device {str(self.device)!r}",
                hint="use device 'cuda' for the tensorrt backend",
            )
        if cuda_graph and self.device.type != "cuda":
            raise ConfigError(
                "backend_config.common_config.cuda_graph=True needs a CUDA device",
                hint="set cuda_graph=False or run on a GPU",
            )
        self.trt = trt_module if trt_module is not None else trt_api.require_tensorrt()
        if not self.engine_path.is_file():
            raise InferenceError(
                f"TensorRT engine {self.engine_path} does not exist",
                hint="build it first (export.mode='trt' or 'both')",
            )
        self._cc = compute_capability
        self._check_compatibility()
        self.cuda_graph = cuda_graph
        self._records: list[trt_api.LogRecord] = []
        with self._device_ctx():
            self._logger = trt_api.make_logger(self.trt, self._records, "WARNING")
            self._runtime = trt_api.create_runtime(self.trt, self._logger)
            self._engine = trt_api.deserialize_engine(self._runtime, self.engine_path.read_bytes())
        if self._engine is None:
            raise self._load_error()
        io = trt_api.engine_io(self.trt, self._engine)
        unsupported = [f"{t.name}:{t.dtype}" for t in io if t.dtype not in TORCH_DTYPES]
        if unsupported:
            raise InferenceError(
                f"engine {self.engine_path.name} has tensors of types torch cannot hold: {unsupported}",
                hint="export with float32/float16/int32/int64/bool IO",
            )
        self._inputs = {t.name: t for t in io if t.is_input}
        self._outputs = {t.name: t for t in io if not t.is_input}
        wanted = list(output_names or (self.info.output_names if self.info else None) or list(self._outputs))
        unknown = [n for n in wanted if n not in self._outputs]
        if unknown:
            raise InferenceError(
                f"engine {self.engine_path.name} has no output(s) {unknown}; it has {sorted(self._outputs)}",
                hint="rebuild the engine from the current ONNX export",
            )
        self._output_order = wanted
        self._dynamic = any(d < 0 for t in self._inputs.values() for d in t.shape)
        self._num_profiles = max(1, trt_api.num_profiles(self._engine))
        self._profile_ranges = [self._ranges(k) for k in range(self._num_profiles)] if self._dynamic else []
        self._contexts: dict[int, Any] = {}
        self._graphs: OrderedDict[tuple, _GraphSlot] = OrderedDict()

    # ------------------------------------------------------------------ interface

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_order)

    @property
    def profiles(self) -> list[dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]:
        return list(self._profile_ranges)

    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        with self._device_ctx():
            feeds = {
                n: inputs[n].to(self.device, dtype=TORCH_DTYPES[t.dtype], non_blocking=True).contiguous()
                for n, t in self._inputs.items()
            }
            shapes = {n: tuple(v.shape) for n, v in feeds.items()}
            profile = self.select_profile(shapes)
            if self.cuda_graph:
                return self._infer_graph(profile, feeds)
            context = self._context(profile)
            outputs = self._bind(context, feeds, shapes)
            if not trt_api.execute_async(context, self._stream_handle()):
                raise InferenceError(f"TensorRT execute_async_v3 failed for shapes {shapes}", hint=self._log_tail())
            return {n: outputs[n] for n in self._output_order}

    def select_profile(self, shapes: Mapping[str, tuple[int, ...]]) -> int:
        """The first profile whose [min, max] ranges contain every input shape."""
        if not self._dynamic:
            for n, t in self._inputs.items():
                if tuple(shapes[n]) != t.shape:
                    raise InferenceError(
                        f"{self.label}: input {n} has shape {tuple(shapes[n])} but the engine is static {t.shape}",
                        hint="export with dynamic axes and add a profile",
                    )
            return 0
        for k, ranges in enumerate(self._profile_ranges):
            if all(_fits(shapes[n], lo, hi) for n, (lo, _opt, hi) in ranges.items()):
                return k
        described = "; ".join(
            f"#{k}: " + ", ".join(f"{n} {lo}..{hi}" for n, (lo, _o, hi) in r.items())
            for k, r in enumerate(self._profile_ranges)
        )
        raise InferenceError(
            f"{self.label}: input shapes {dict(shapes)} fit no optimization profile ({described})",
            hint="add a profile covering these shapes to backend_config.model_inputs and rebuild the engine",
        )

    def close(self) -> None:
        self._graphs.clear()
        self._contexts.clear()
        self._engine = None
        self._runtime = None

    # ------------------------------------------------------------------ internals

    def _device_ctx(self) -> Any:
        if self.device.type == "cuda":
            return torch.cuda.device(self.device)
        import contextlib

        return contextlib.nullcontext()

    def _stream_handle(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.current_stream(self.device).cuda_stream)
        return 0

    def _ranges(self, k: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        return {
            n: trt_api.profile_shape(self._engine, n, k) for n, t in self._inputs.items() if any(d < 0 for d in t.shape)
        }

    def _context(self, profile: int) -> Any:
        ctx = self._contexts.get(profile)
        if ctx is None:
            ctx = trt_api.create_context(self._engine)
            if ctx is None:
                raise InferenceError(
                    f"TensorRT could not create an execution context for {self.engine_path.name}",
                    hint="free GPU memory; " + self._log_tail(),
                )
            if (self._num_profiles > 1 or profile > 0) and not trt_api.activate_profile(
                ctx, profile, self._stream_handle()
            ):
                raise InferenceError(f"TensorRT refused optimization profile {profile}", hint=self._log_tail())
            self._contexts[profile] = ctx
        return ctx

    def _bind(
        self, context: Any, feeds: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]]
    ) -> dict[str, torch.Tensor]:
        """Set shapes and addresses; allocate outputs at the shapes TensorRT infers."""
        for n, v in feeds.items():
            if not trt_api.set_input_shape(context, n, shapes[n]):
                raise InferenceError(f"TensorRT rejected input shape {shapes[n]} for {n}", hint=self._log_tail())
            trt_api.set_tensor_address(context, n, _address(v))
        outputs: dict[str, torch.Tensor] = {}
        for n, t in self._outputs.items():
            shape = trt_api.context_tensor_shape(context, n)
            if any(d < 0 for d in shape):
                raise InferenceError(
                    f"output {n} has a data-dependent shape {shape}",
                    hint="make the output shape a function of the input shapes (e.g. pad NMS outputs)",
                )
            out = torch.empty(shape, dtype=TORCH_DTYPES[t.dtype], device=self.device)
            trt_api.set_tensor_address(context, n, _address(out))
            outputs[n] = out
        return outputs

    def _infer_graph(self, profile: int, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        key = (profile, tuple((n, tuple(v.shape)) for n, v in feeds.items()))
        slot = self._graphs.get(key)
        if slot is None:
            slot = self._capture(profile, feeds)
            self._graphs[key] = slot
            while len(self._graphs) > _MAX_GRAPHS:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
            for n, v in feeds.items():
                slot.inputs[n].copy_(v, non_blocking=True)
        slot.graph.replay()
        # Clones: the next replay overwrites the static output buffers.
        return {n: slot.outputs[n].clone() for n in self._output_order}

    def _capture(self, profile: int, feeds: dict[str, torch.Tensor]) -> _GraphSlot:
        context = self._context(profile)
        static_in = {n: v.clone() for n, v in feeds.items()}
        shapes = {n: tuple(v.shape) for n, v in static_in.items()}
        outputs = self._bind(context, static_in, shapes)
        current = torch.cuda.current_stream(self.device)
        if not trt_api.execute_async(context, current.cuda_stream):  # warm-up: TensorRT's lazy set-up
            raise InferenceError(
                f"TensorRT warm-up before CUDA-graph capture failed for {shapes}", hint=self._log_tail()
            )
        current.synchronize()
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.graph(graph, stream=side):
            ok = trt_api.execute_async(context, side.cuda_stream)
        current.wait_stream(side)
        if not ok:
            raise InferenceError(
                "TensorRT enqueue failed during CUDA-graph capture", hint="set cuda_graph=False; " + self._log_tail()
            )
        return _GraphSlot(graph, static_in, outputs)

    def _current_cc(self) -> str | None:
        if self._cc is not None:
            return self._cc
        if self.device.type == "cuda" and torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(self.device)
            return f"{major}.{minor}"
        return None

    def _check_compatibility(self) -> None:
        built_trt = self.info.tensorrt if self.info else None
        here_trt = trt_api.trt_version(self.trt)
        if built_trt and built_trt != here_trt:
            raise EngineIncompatibleError(
                f"engine {self.engine_path.name} was built with TensorRT {built_trt} but this node has TensorRT {here_trt}",
                hint="rebuild the engine on this node (export.mode='trt'); engines are not portable across TensorRT versions",
            )
        built_cc, here_cc = (self.info.compute_capability if self.info else None), self._current_cc()
        if built_cc and here_cc and built_cc != here_cc:
            raise EngineIncompatibleError(
                f"engine {self.engine_path.name} was built for GPU compute capability {built_cc} but this GPU is {here_cc}",
                hint="rebuild the engine on this GPU type; engines are not portable across GPU architectures",
            )

    def _load_error(self) -> BackendUnavailableError:
        text = " ".join(r.message for r in self._records)
        low = text.lower()
        if "version" in low:
            return EngineIncompatibleError(
                f"TensorRT {trt_api.trt_version(self.trt)} cannot load {self.engine_path.name}: built with another TensorRT version ({_first_error(self._records)})",
                hint="rebuild the engine with this TensorRT",
            )
        if "compute capability" in low or "device" in low or "platform" in low:
            return EngineIncompatibleError(
                f"TensorRT cannot load {self.engine_path.name} on this GPU ({_first_error(self._records)})",
                hint="rebuild the engine on this GPU type",
            )
        return EngineIncompatibleError(
            f"TensorRT could not deserialize {self.engine_path.name}: {_first_error(self._records)}",
            hint="the file may be truncated or not an engine; rebuild it",
        )

    def _log_tail(self) -> str:
        errors = [r.message for r in self._records if r.severity in ("ERROR", "INTERNAL_ERROR")]
        return f"TensorRT said: {errors[-1][:200]}" if errors else "no TensorRT error message"


def _fits(shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
    return len(shape) == len(lo) and all(a <= s <= b for s, a, b in zip(shape, lo, hi))


_PLACEHOLDERS: dict[torch.device, torch.Tensor] = {}


def _address(t: torch.Tensor) -> int:
    """TensorRT rejects null addresses: an empty tensor is bound to a small placeholder."""
    if t.numel() > 0:
        return int(t.data_ptr())
    holder = _PLACEHOLDERS.get(t.device)
    if holder is None:
        holder = _PLACEHOLDERS[t.device] = torch.empty(16, dtype=torch.uint8, device=t.device)
    return int(holder.data_ptr())


def _first_error(records: list[trt_api.LogRecord]) -> str:
    errors = [r.message for r in records if r.severity in ("ERROR", "INTERNAL_ERROR")]
    return errors[0][:200] if errors else "no error message"
