"""ONNX Runtime backend: CPU execution provider, or CUDA EP with IO binding on torch tensors.

On CUDA the inputs are bound straight from torch CUDA tensors and the outputs come back as
torch CUDA tensors (DLPack), so no host round trip happens inside the timed region.

Variants and options (deploy config ``evaluation.backends.onnxruntime``):

* ``precision='fp16'``: the runner hands this backend the fp16 graph it converted from the
  run's ONNX (``exporters/quantization.convert_fp16``, float32 IO kept), the ``onnx_fp16``
  variant; ``'int8'`` is the Q/DQ graph. The precision only labels results here: the graph
  file decides what runs.
* ``cuda_graph=True``: the CUDA EP's ``enable_cuda_graph``. ONNX Runtime replays a captured
  graph on the *same device addresses*, so each input signature (shapes) gets its own
  torch input/output buffers bound once and its own ``gpu_graph_id``; a call copies the
  inputs into them and clones the outputs out. Shapes the graph leaves dynamic still work
  (one capture per shape seen), which is what fixed-shape pipelines need.
* ``channels_last=True``: the CUDA EP's ``prefer_nhwc`` (NHWC convolutions, as PyTorch's
  channels_last), the layout cuDNN's fp16 convolutions are fastest in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.errors import BackendUnavailableError, ConfigError, InferenceError

_ORT_TO_TORCH = {
    "tensor(float)": torch.float32,
    "tensor(float16)": torch.float16,
    "tensor(int64)": torch.int64,
    "tensor(int32)": torch.int32,
    "tensor(bool)": torch.bool,
    "tensor(uint8)": torch.uint8,
    "tensor(int8)": torch.int8,
}


def cuda_ep_available() -> tuple[bool, str]:
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return (
            False,
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: {providers}); install onnxruntime-gpu instead of onnxruntime",
        )
    if not torch.cuda.is_available():
        return False, "no CUDA device is visible to torch"
    return True, ""


class ONNXRuntimeBackend(BaseBackend):
    backend_name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        *,
        cuda_graph: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(device, precision)
        import onnxruntime as ort

        for opt, on in (("cuda_graph", cuda_graph), ("channels_last", channels_last)):
            if on and self.device.type != "cuda":
                raise ConfigError(
                    f"onnxruntime {opt} needs the CUDA execution provider",
                    hint=f"set evaluation.backends.onnxruntime.device='cuda:0' or drop {opt}",
                )
        self.cuda_graph = cuda_graph
        self._static: dict[tuple, _StaticBinding] = {}

        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise InferenceError(
                f"ONNX file {self.onnx_path} does not exist",
                hint="export first (export.mode='onnx') or fix evaluation.backends.onnxruntime.model_dir",
            )
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        # Spinning ORT worker threads steal the CPU from the pipeline's own pre/post-processing
        # between calls, which inflates those stages' latency; block instead.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if self.device.type == "cuda":
            ok, why = cuda_ep_available()
            if not ok:
                raise BackendUnavailableError(
                    f"onnxruntime:cuda requested but {why}",
                    hint="use device 'cpu' for onnxruntime or install onnxruntime-gpu",
                )
            cuda_opts = {"device_id": str(self.device.index or 0)}
            if cuda_graph:
                cuda_opts["enable_cuda_graph"] = "1"
            if channels_last:  # the CUDA EP's NHWC kernels: cuDNN's fast fp16 convolution layout
                cuda_opts["prefer_nhwc"] = "1"
            providers: list = [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), sess_options=so, providers=providers)
        except Exception as exc:
            raise InferenceError(
                f"onnxruntime could not load {self.onnx_path}: {str(exc).splitlines()[0][:300]}",
                hint="drop cuda_graph: every node must run on the CUDA EP to capture a graph"
                if cuda_graph
                else "re-export the model; check opset and external data files",
            ) from exc
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._out_types = {o.name: o.type for o in self.session.get_outputs()}

    @property
    def label(self) -> str:
        """The INT8 (Q/DQ) variant keeps its historical results.json key ``onnxruntime-int8:<dev>``;
        the fp16 graph is ``onnxruntime-fp16:<dev>`` so both can sit beside the fp32 one."""
        if self.precision in ("int8", "fp16"):
            return f"{self.backend_name}-{self.precision}:{self.device.type}"
        return super().label

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        if self.device.type == "cuda":
            return self._infer_cuda(inputs)
        feeds = {n: _to_numpy(inputs[n], self._inputs[n].type) for n in self.input_names}
        try:
            outs = self.session.run(self._outputs, feeds)
        except Exception as exc:
            shapes = {n: tuple(v.shape) for n, v in feeds.items()}
            raise InferenceError(
                f"onnxruntime failed on inputs {shapes}: {str(exc).splitlines()[0][:300]}",
                hint="check input shapes against model_io / dynamic_axes",
            ) from exc
        return {n: torch.from_numpy(np.ascontiguousarray(o)) for n, o in zip(self._outputs, outs)}

    def _infer_cuda(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.cuda_graph:
            return self._infer_graph(inputs)
        return self._run_bound(inputs, None)

    def _run_bound(self, inputs: Mapping[str, torch.Tensor], run_options: Any) -> dict[str, torch.Tensor]:
        """One run with inputs bound from torch and outputs allocated by ORT on the device."""
        binding = self.session.io_binding()
        keep = []
        for n in self.input_names:
            want = _ORT_TO_TORCH.get(self._inputs[n].type, torch.float32)
            t = inputs[n].to(self.device, dtype=want).contiguous()
            keep.append(t)
            binding.bind_input(n, "cuda", self.device.index or 0, _np_dtype(want), tuple(t.shape), t.data_ptr())
        for n in self._outputs:
            binding.bind_output(n, "cuda", self.device.index or 0)
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        self.session.run_with_iobinding(binding, run_options)
        outs = binding.get_outputs()
        result = {}
        for n, ov in zip(self._outputs, outs):
            result[n] = _ortvalue_to_torch(ov, self.device)
        del keep
        return result

    def _infer_graph(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        key = tuple(tuple(inputs[n].shape) for n in self.input_names)
        static = self._static.get(key)
        if static is None:
            static = self._bind_static(inputs, graph_id=len(self._static))
            self._static[key] = static
        for n in self.input_names:
            static.inputs[n].copy_(inputs[n])
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(static.binding, static.run_options)  # captures on a first run, then replays
        return {n: t.clone() for n, t in static.outputs.items()}  # the next replay overwrites the buffers

    def _bind_static(self, inputs: Mapping[str, torch.Tensor], graph_id: int) -> _StaticBinding:
        """Fixed torch buffers for one input signature, bound once; the output shapes come from
        one uncaptured run (``gpu_graph_id=-1``)."""
        import onnxruntime as ort

        skip = ort.RunOptions()
        skip.add_run_config_entry("gpu_graph_id", "-1")
        first = self._run_bound(inputs, skip)
        idx = self.device.index or 0
        binding = self.session.io_binding()
        bufs_in = {}
        for n in self.input_names:
            want = _ORT_TO_TORCH.get(self._inputs[n].type, torch.float32)
            t = torch.empty(tuple(inputs[n].shape), dtype=want, device=self.device)
            bufs_in[n] = t
            binding.bind_input(n, "cuda", idx, _np_dtype(want), tuple(t.shape), t.data_ptr())
        bufs_out = {}
        for n in self._outputs:
            t = torch.empty_like(first[n], memory_format=torch.contiguous_format)
            bufs_out[n] = t
            binding.bind_output(n, "cuda", idx, _np_dtype(t.dtype), tuple(t.shape), t.data_ptr())
        opts = ort.RunOptions()
        opts.add_run_config_entry("gpu_graph_id", str(graph_id))
        return _StaticBinding(binding, bufs_in, bufs_out, opts)


@dataclass
class _StaticBinding:
    """One captured input signature: its bound buffers and the run options naming its graph."""

    binding: Any
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    run_options: Any


def _np_dtype(t: torch.dtype) -> type:
    return {
        torch.float32: np.float32,
        torch.float16: np.float16,
        torch.int64: np.int64,
        torch.int32: np.int32,
        torch.bool: np.bool_,
        torch.uint8: np.uint8,
        torch.int8: np.int8,
    }[t]


def _to_numpy(t: torch.Tensor, ort_type: str) -> np.ndarray:
    want = _ORT_TO_TORCH.get(ort_type, torch.float32)
    return t.detach().to("cpu", dtype=want).contiguous().numpy()


def _ortvalue_to_torch(ov: object, device: torch.device) -> torch.Tensor:
    """Zero-copy through DLPack where this onnxruntime build exports it, else one device→host→device copy."""
    to_dlpack = getattr(getattr(ov, "_ortvalue", None), "to_dlpack", None)
    if to_dlpack is not None:
        return torch.utils.dlpack.from_dlpack(to_dlpack())
    return torch.from_numpy(ov.numpy()).to(device)  # type: ignore[attr-defined]
