"""PyTorch backend: runs an export component's module eagerly (the reference).

Opt-in speed options (keyword-only; the defaults keep the reference behaviour — autocast
fp16 on NCHW, eager):

* ``channels_last``: module and 4-D inputs in NHWC memory, the layout cuDNN's fp16
  convolutions run fastest in (2.6× on CenterPoint's backbone on Hopper);
* ``cuda_graph``: each input signature (shapes, dtypes, strides) is captured once into a
  CUDA graph and replayed — launch overhead gone, for fixed-shape components;
* ``compile_mode``: ``torch.compile(mode=...)`` of the module (e.g.
  ``"max-autotune-no-cudagraphs"``), with Inductor's cache in ``compile_cache_dir`` so a
  second run reuses the compiled kernels; ``compile_seconds`` reports the first call
  (compilation included) apart from latency.

With any of them and ``precision="fp16"`` the module runs in real fp16 weights (``.half()``)
instead of autocast, which re-casts weights on every call.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent


class PyTorchBackend(BaseBackend):
    backend_name = "pytorch"

    def __init__(
        self,
        component: ExportComponent,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        *,
        channels_last: bool = False,
        cuda_graph: bool = False,
        compile_mode: str | None = None,
        compile_cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(device, precision)
        self.component = component
        self.module = component.module.to(self.device).eval()
        self._autocast = precision == "fp16"
        if self._autocast and self.device.type != "cuda":
            from modeldeploy.errors import ConfigError

            raise ConfigError("PyTorch fp16 (autocast) needs a CUDA device", hint="use precision fp32 on CPU")
        if cuda_graph and self.device.type != "cuda":
            from modeldeploy.errors import ConfigError

            raise ConfigError("PyTorch CUDA-graph capture needs a CUDA device", hint="drop cuda_graph on CPU")
        self.channels_last, self.cuda_graph, self.compile_mode = channels_last, cuda_graph, compile_mode
        self._half = self._autocast and (channels_last or cuda_graph or compile_mode is not None)
        if self._half or channels_last:
            # a converted copy: the component's module is shared (verification, other backends)
            self.module = copy.deepcopy(self.module)
        if self._half:
            self.module = self.module.half()
            self._autocast = False
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self._run: Any = self.module
        self.compile_seconds: float | None = None
        if compile_mode is not None:
            if compile_cache_dir is not None:
                # Inductor and Triton read these when they first compile: the compiled kernels
                # then live with the artifacts and a second run loads instead of compiling
                cache = Path(compile_cache_dir)
                cache.mkdir(parents=True, exist_ok=True)
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
                os.environ["TRITON_CACHE_DIR"] = str(cache / "triton")
            self._run = torch.compile(self.module, mode=compile_mode, dynamic=False)
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], Any]] = {}

    @property
    def input_names(self) -> list[str]:
        return list(self.component.input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self.component.output_names)

    def _prepare(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        if self._half and t.is_floating_point():
            t = t.half()
        if self.channels_last and t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _call(self, args: tuple[torch.Tensor, ...]) -> Any:
        with torch.autocast("cuda", dtype=torch.float16, enabled=self._autocast):
            if self.compile_mode is not None and self.compile_seconds is None:
                t0 = time.perf_counter()
                out = self._run(*args)
                self.synchronize()
                self.compile_seconds = time.perf_counter() - t0
                return out
            return self._run(*args)

    def _replay(self, args: tuple[torch.Tensor, ...]) -> Any:
        key = tuple((tuple(a.shape), a.dtype, a.stride()) for a in args)
        if key not in self._graphs:
            static = tuple(a.clone() for a in args)
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm-up (and compilation) outside the capture
                    self._call(static)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._call(static)
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        for s, a in zip(static, args):
            s.copy_(a)
        graph.replay()
        return out  # the graph's own buffers: infer() copies them out before the next replay

    @torch.inference_mode()
    def infer(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        args = tuple(self._prepare(inputs[n]) for n in self.input_names)
        out = self._replay(args) if self.cuda_graph else self._call(args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        if len(out) != len(self.output_names):
            from modeldeploy.errors import InferenceError

            raise InferenceError(
                f"{self.component.name}: module returned {len(out)} outputs, expected {self.output_names}",
                hint="the component's forward must return its outputs in output_names order",
            )
        to_float = self._autocast or self._half

        def fresh(t: torch.Tensor) -> torch.Tensor:
            if to_float and t.is_floating_point():
                return t.float() if t.dtype != torch.float32 else (t.clone() if self.cuda_graph else t)
            return t.clone() if self.cuda_graph else t

        return {n: fresh(t) for n, t in zip(self.output_names, out)}
