"""modeldeploy runtime: PyTorch checkpoint -> ONNX/TensorRT, verified and benchmarked.

Import-light on purpose: heavy modules (torch, onnx, onnxruntime) are imported by the
sub-packages that need them, so ``modeldeploy --help`` and config validation stay fast.
"""

__version__ = "0.1.0"
