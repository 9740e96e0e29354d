"""Fixtures: small ONNX conv nets (exported once per session) and the TensorRT bindings .so.

The bindings wheel (``tensorrt-cu13-bindings``, 1.3 MB, the real pybind module) is
downloaded once into a cache directory and reused across sessions; set
``MODELDEPLOY_TRT_BINDINGS_WHEEL`` to a local wheel to run fully offline. Without the
wheel and without network the check FAILS (a skipped symbol check would let a typo
through CI) unless ``MODELDEPLOY_OFFLINE=1`` says so explicitly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeploy.config.sections import ONNXConfigSection
from modeldeploy.core.components import ExportComponent
from modeldeploy.exporters.onnx import ONNXExporter
from tests.unit.tensorrt.nets import SmallConvNet, trained_like_net

BINDINGS_PACKAGE = "tensorrt-cu13-bindings"


@pytest.fixture(scope="session")
def small_net() -> SmallConvNet:
    return trained_like_net()


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory, small_net: SmallConvNet) -> Path:
    """Dynamic batch/H/W ONNX export with inputs ``input``, outputs ``logits``, ``saliency``."""
    out = tmp_path_factory.mktemp("onnx")
    comp = ExportComponent(
        name="model",
        module=small_net,
        input_names=["input"],
        output_names=["logits", "saliency"],
        sample_inputs={"input": torch.randn(1, 5, 16, 16)},
        dynamic_axes={
            "input": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch"},
            "saliency": {0: "batch", 2: "h2", 3: "w2"},
        },
    )
    return ONNXExporter(ONNXConfigSection(opset_version=17)).export(comp, out).path


@pytest.fixture(scope="session")
def static_onnx(tmp_path_factory: pytest.TempPathFactory, small_net: SmallConvNet) -> Path:
    out = tmp_path_factory.mktemp("onnx_static")
    comp = ExportComponent(
        name="static",
        module=small_net,
        input_names=["input"],
        output_names=["logits", "saliency"],
        sample_inputs={"input": torch.randn(2, 5, 16, 16)},
    )
    return ONNXExporter(ONNXConfigSection(opset_version=17)).export(comp, out).path


@pytest.fixture(scope="session")
def calibration_samples() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"input": rng.standard_normal((2, 5, 16, 16)).astype(np.float32)} for _ in range(16)]


def _cache_dir() -> Path:
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root).expanduser() / "test-downloads" / BINDINGS_PACKAGE


@pytest.fixture(scope="session")
def trt_bindings_so() -> bytes:
    """The bytes of the real bindings' shared object (downloaded once, then cached)."""
    wheel_env = os.environ.get("MODELDEPLOY_TRT_BINDINGS_WHEEL")
    if wheel_env:
        wheels = [Path(wheel_env)]
    else:
        cache = _cache_dir()
        wheels = sorted(cache.glob("tensorrt_cu13_bindings-*.whl"))
        if not wheels:
            cache.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                    str(cache),
                    BINDINGS_PACKAGE,
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            wheels = sorted(cache.glob("tensorrt_cu13_bindings-*.whl"))
            if not wheels:
                if os.environ.get("MODELDEPLOY_OFFLINE") == "1":
                    pytest.skip(
                        f"MODELDEPLOY_OFFLINE=1 and no cached {BINDINGS_PACKAGE} wheel in {cache}: TensorRT symbol check NOT run"
                    )
                pytest.fail(
                    f"could not download {BINDINGS_PACKAGE} (needs PyPI once, then cached in {cache}): {proc.stderr.strip()[-400:]}"
                )
    with zipfile.ZipFile(wheels[-1]) as zf:
        sos = [n for n in zf.namelist() if n.endswith(".so") and "tensorrt" in n.rsplit("/", 1)[-1]]
        assert sos, f"no tensorrt*.so in {wheels[-1].name}: {zf.namelist()[:20]}"
        return zf.read(sos[0])
