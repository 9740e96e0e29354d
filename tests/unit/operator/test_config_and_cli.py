import pytest

from modeldeploy_operator.cli import main, parse_args
from modeldeploy_operator.config import DEFAULT_RUNTIME_IMAGE, OperatorConfig


def test_config_from_env_and_overrides():
    cfg = OperatorConfig.from_env(
        {
            "MODELDEPLOY_RUNTIME_IMAGE": "reg/rt:2",
            "MODELDEPLOY_UNSCHEDULABLE_AFTER_SECONDS": "5",
            "MODELDEPLOY_NAMESPACES": "a, b",
            "MODELDEPLOY_METRICS_PORT": "9100",
        },
        metrics_port=9200,
    )
    assert cfg.runtime_image == "reg/rt:2" and cfg.unschedulable_after_s == 5.0
    assert cfg.namespaces == ("a", "b") and cfg.metrics_port == 9200
    assert OperatorConfig.from_env({}).runtime_image == DEFAULT_RUNTIME_IMAGE


def test_bad_threshold_is_a_clear_error():
    with pytest.raises(ValueError, match="MODELDEPLOY_UNSCHEDULABLE_AFTER_SECONDS"):
        OperatorConfig.from_env({"MODELDEPLOY_UNSCHEDULABLE_AFTER_SECONDS": "soon"})


def test_cli_flags_and_scope_required(capsys, monkeypatch):
    monkeypatch.delenv("MODELDEPLOY_NAMESPACES", raising=False)
    monkeypatch.delenv("MODELDEPLOY_ALL_NAMESPACES", raising=False)
    args = parse_args(["-n", "a", "-n", "b", "--metrics-port", "0", "--log-format", "json"])
    assert args.namespaces == ["a", "b"] and args.metrics_port == 0 and args.log_format == "json"
    assert main([]) == 2
    assert "--namespace" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["-n", "a", "--all-namespaces"])
