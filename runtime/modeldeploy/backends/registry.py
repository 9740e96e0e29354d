"""The built-in backends' registrations (core/backend.py holds the table and ``BackendSpec``).

Each factory imports its backend lazily: ``onnxruntime`` and ``tensorrt`` are heavy or
absent on some nodes, and registering must not need them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from modeldeploy.core.backend import BaseBackend
from modeldeploy.core.backend_registry import BackendSpec, register_backend
from modeldeploy.core.components import ExportComponent


def _pytorch(component: ExportComponent, device: torch.device, precision: str, options: Any) -> BaseBackend:
    from modeldeploy.backends.pytorch import PyTorchBackend

    params = list(component.module.parameters())
    if params and params[0].device != device:  # never move the module other stages still use
        component = copy.copy(component)
        component.module = copy.deepcopy(component.module)
    return PyTorchBackend(
        component,
        device,
        "fp16" if precision == "fp16" else "fp32",
        channels_last=bool(getattr(options, "channels_last", False)),
        cuda_graph=bool(getattr(options, "cuda_graph", False)),
        compile_mode=getattr(options, "compile_mode", None),
        compile_cache_dir=getattr(options, "compile_cache_dir", None),
    )


def _onnxruntime(path: Path, device: torch.device, precision: str, options: Any) -> BaseBackend:
    from modeldeploy.backends.onnxruntime import ONNXRuntimeBackend

    return ONNXRuntimeBackend(
        path,
        device,
        precision,
        cuda_graph=bool(getattr(options, "cuda_graph", False)),
        channels_last=bool(getattr(options, "channels_last", False)),
    )


def _tensorrt(path: Path, device: torch.device, precision: str, options: Any) -> BaseBackend:
    from modeldeploy.backends.tensorrt import TensorRTBackend

    # the engine's own EngineInfo names its precision; the requested one is a label only
    return TensorRTBackend(path, device, cuda_graph=bool(getattr(options, "cuda_graph", False)))


PYTORCH = register_backend(BackendSpec("pytorch", "module", _pytorch))
ONNXRUNTIME = register_backend(
    BackendSpec(
        "onnxruntime",
        "onnx",
        _onnxruntime,
        variants={"int8": "onnx_int8", "fp16": "onnx_fp16"},  # fp16: this run's graph through convert_fp16
        file_suffix=".onnx",
    )
)
TENSORRT = register_backend(BackendSpec("tensorrt", "engine", _tensorrt, needs_cuda=True, file_suffix=".engine"))
