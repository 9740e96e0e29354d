"""Runnable models: PyTorch, ONNX Runtime (CPU/CUDA EP) and TensorRT behind one interface."""

from modeldeploy.backends import registry  # noqa: F401 - registers the built-in backends
from modeldeploy.backends.base import BaseBackend

__all__ = ["BaseBackend"]
