"""`--device cpu` (what the operator passes for runtime.device=cpu) on a deploy config that
also lists TensorRT scenarios for other export modes: they stay on CUDA and the config loads.
Found by tests/e2e/test_e2e_centerpoint.py (the operator always passes --device)."""

from __future__ import annotations

import pytest

from modeldeploy.cli import _load_config, _with_backend_devices
from modeldeploy.errors import ConfigError


def test_device_cpu_keeps_tensorrt_scenarios_of_other_modes_on_cuda() -> None:
    cfg = _with_backend_devices(_load_config("builtin:centerpoint/deploy_tiny.py", {"export.device": "cpu"}), "cpu")
    assert cfg.export.mode == "onnx" and cfg.export.device == "cpu"
    (active,) = cfg.verification_scenarios()
    assert (active.ref_device, active.test_device) == ("cpu", "cpu")
    trt = cfg.verification.scenarios["trt"][0]
    assert (trt.ref_device, trt.test_backend, trt.test_device) == ("cpu", "tensorrt", "cuda:0")


def test_device_cuda_moves_every_backend() -> None:
    cfg = _with_backend_devices(
        _load_config("builtin:centerpoint/deploy_tiny.py", {"export.device": "cuda:1"}), "cuda:1"
    )
    assert {s.test_device for scen in cfg.verification.scenarios.values() for s in scen} == {"cuda:1"}
    assert {b.device for b in cfg.evaluation.backends.values()} == {"cuda:1"}


def test_device_cpu_with_a_tensorrt_mode_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="TensorRT needs a CUDA device"):
        _load_config("builtin:centerpoint/deploy_tiny.py", {"export.device": "cpu", "export.mode": "both"})
