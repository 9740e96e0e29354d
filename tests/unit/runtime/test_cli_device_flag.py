"""`--device cpu` (what the operator passes for runtime.device=cpu) on a deploy config that
also lists TensorRT scenarios for other export modes: they stay on CUDA and the config loads.
Found by tests/e2e/test_e2e_centerpoint.py (the operator always passes --device).

`--device` is one of the command line's overrides (cli_options.Overrides): it is merged into
the deploy config with the other flags and --cfg-options and validated once, the way `run`
loads it (the parser below is the real one)."""

from __future__ import annotations

import pytest

from modeldeploy.cli import _load_config, _overrides, build_parser
from modeldeploy.errors import ConfigError


def _run_cfg(*flags: str):  # -> BaseDeploymentConfig, as `modeldeploy run` loads it
    args = build_parser().parse_args(["run", "builtin:centerpoint/deploy_tiny.py", "m.py", *flags])
    return _load_config(args.deploy_cfg, _overrides(args))


def test_device_cpu_keeps_tensorrt_scenarios_of_other_modes_on_cuda() -> None:
    cfg = _run_cfg("--device", "cpu")
    assert cfg.export.mode == "onnx" and cfg.export.device == "cpu"
    (active,) = cfg.verification_scenarios()
    assert (active.ref_device, active.test_device) == ("cpu", "cpu")
    trt = cfg.verification.scenarios["trt"][0]
    assert (trt.ref_device, trt.test_backend, trt.test_device) == ("cpu", "tensorrt", "cuda:0")


def test_device_cuda_moves_every_backend() -> None:
    cfg = _run_cfg("--device", "cuda:1")
    assert {s.test_device for scen in cfg.verification.scenarios.values() for s in scen} == {"cuda:1"}
    assert {b.device for b in cfg.evaluation.backends.values()} == {"cuda:1"}


def test_device_flag_wins_over_cfg_options_for_the_same_key() -> None:
    cfg = _run_cfg("--cfg-options", "export.device=cuda:0", "--device", "cpu")
    assert cfg.export.device == "cpu"


def test_device_cpu_with_a_tensorrt_mode_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="TensorRT needs a CUDA device"):
        _load_config("builtin:centerpoint/deploy_tiny.py", {"export.device": "cpu", "export.mode": "both"})


def test_every_config_flag_is_one_override_and_a_bad_one_is_blamed_on_the_flag(tmp_path) -> None:
    cfg = _run_cfg("--work-dir", str(tmp_path / "w"), "--artifact-uri", str(tmp_path / "pub"))
    assert cfg.export.output_dir == (tmp_path / "w").resolve()
    assert cfg.export.publish_uri == str(tmp_path / "pub")  # the flag; without it, the work dir
    assert _run_cfg("--work-dir", str(tmp_path / "w")).export.publish_uri == str((tmp_path / "w").resolve())
    with pytest.raises(ConfigError) as info:
        _run_cfg("--work-dir", str(tmp_path / "w"), "--artifact-uri", "s3://bucket/../x")
    assert info.value.message.startswith("--artifact-uri s3://bucket/../x: "), info.value.message
