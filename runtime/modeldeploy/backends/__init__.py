"""Runnable models: PyTorch, ONNX Runtime (CPU/CUDA EP) and TensorRT behind one interface."""

from modeldeploy.backends.base import BaseBackend

__all__ = ["BaseBackend"]
