"""What ran: library versions and the GPU, recorded in every results.json."""

from __future__ import annotations

from modeldeploy.core.results import Environment


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", None)


def collect_environment() -> Environment:
    import torch

    gpu = cuda = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        cuda = torch.version.cuda
    return Environment(
        torch=torch.__version__,
        onnx=_version("onnx"),
        onnxruntime=_version("onnxruntime"),
        tensorrt=_version("tensorrt"),
        gpu=gpu,
        cuda=cuda,
    )
