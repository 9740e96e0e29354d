from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "deploy.py"
    p.write_text(text)
    return p


def test_valid_file_parses_into_typed_sections(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "project='calibration'\nexport=dict(mode='onnx', device='cpu')\nonnx_config=dict(opset_version=17, save_file='m.onnx')\n_helper=3\n",
    )
    cfg = BaseDeploymentConfig.fromfile(p)
    assert cfg.export.mode == "onnx" and cfg.onnx_config.opset_version == 17
    assert [(s.ref_backend, s.test_backend) for s in cfg.verification_scenarios()] == [("pytorch", "onnxruntime")]
    assert set(cfg.evaluation_backends()) == {"pytorch", "onnxruntime"}


@pytest.mark.parametrize(
    "text,needle",
    [
        ("export=dict(mdoe='onnx')", "unknown key 'export.mdoe'"),
        ("exprot=dict()", "unknown top-level key 'exprot'"),
        ("export=dict(mode='trt', device='cpu')", "TensorRT needs a CUDA device"),
        ("onnx_config=dict(opset_version=99)", "'onnx_config.opset_version': 99"),
        ("onnx_config=dict(save_file='model.pt')", "save_file must be a file name ending in .onnx"),
        ("verification=dict(tolerance=-1)", "'verification.tolerance'"),
        ("backend_config=dict(common_config=dict(precision_policy='int4'))", "precision_policy"),
        ("model_io=dict(batch_size=2, dynamic_axes={'input': {0: 'b'}})", "not both"),
        ("evaluation=dict(backends=dict(tensorrt=dict(enabled=True, device='cpu')))", "TensorRT runs only on CUDA"),
        ("export='onnx'", "'export' must be a dict"),
        ("export=dict(device='gpu')", "device must be"),
    ],
)
def test_bad_configs_name_file_key_and_fix(tmp_path: Path, text: str, needle: str) -> None:
    p = _write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as ei:
        BaseDeploymentConfig.fromfile(p)
    line = ei.value.one_line()
    assert needle in line
    assert str(p) in line
    assert "fix:" in line and "\n" not in line


def test_typo_suggests_the_right_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        BaseDeploymentConfig.fromfile(_write(tmp_path, "verification=dict(num_verify_sample=3)\n"))
    assert "did you mean 'verification.num_verify_samples'" in ei.value.one_line()


def test_typo_under_a_named_backend_suggests_the_right_key(tmp_path: Path) -> None:
    """evaluation.backends is a dict of sections: the backend's name sits in the error's location,
    and the suggestion still comes from the backend section's own keys."""
    with pytest.raises(ConfigError) as ei:
        BaseDeploymentConfig.fromfile(
            _write(tmp_path, "evaluation=dict(backends=dict(onnxruntime=dict(devce='cpu')))\n")
        )
    line = ei.value.one_line()
    assert "unknown key 'evaluation.backends.onnxruntime.devce'" in line
    assert "did you mean 'evaluation.backends.onnxruntime.device'" in line and "precision" in line


def test_misspelt_backend_name_suggests_the_known_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        BaseDeploymentConfig.fromfile(
            _write(tmp_path, "evaluation=dict(backends=dict(onxruntime=dict(device='cpu')))\n")
        )
    line = ei.value.one_line()
    assert "did you mean 'onnxruntime'?" in line and "[key]" not in line


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="syntax error at line 1"):
        BaseDeploymentConfig.fromfile(_write(tmp_path, "export = dict(\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        BaseDeploymentConfig.fromfile(tmp_path / "nope.py")


def test_cfg_options_are_validated_like_the_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "export=dict(mode='onnx')\n")
    cfg = BaseDeploymentConfig.fromfile(p, {"onnx_config.opset_version": 13})
    assert cfg.onnx_config.opset_version == 13
    with pytest.raises(ConfigError, match="onnx_config.opset_versoin"):
        BaseDeploymentConfig.fromfile(p, {"onnx_config.opset_versoin": 13})


def test_trt_profiles_validated() -> None:
    shapes = {"input": {"min_shape": [1, 5, 8, 8], "opt_shape": [4, 5, 8, 8], "max_shape": [2, 5, 8, 8]}}
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        BaseDeploymentConfig.from_dict({"backend_config": {"model_inputs": [{"input_shapes": shapes}]}})


def test_cli_cfg_options_accept_json_profiles_from_the_operator(tmp_path: Path) -> None:
    from modeldeploy.cli import _parse_cfg_options

    opts = _parse_cfg_options(
        [
            'backend_config.model_inputs=[{"input_shapes": {"input": {"min_shape": [1, 5, 8, 8], "opt_shape": [2, 5, 8, 8], "max_shape": [4, 5, 8, 8]}}}]',
            "verification.tolerance=0.0001",
            "export.verify=false",
            "onnx_config.save_file=m.onnx",
        ]
    )
    cfg = BaseDeploymentConfig.fromfile(_write(tmp_path, "export=dict(mode='onnx')\n"), opts)
    assert cfg.backend_config.model_inputs[0].input_shapes["input"].max_shape == (4, 5, 8, 8)
    assert cfg.verification.tolerance == 1e-4 and cfg.export.verify is False
