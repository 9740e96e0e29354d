"""Issue #15 item 5: each error case a new user hit ends in one line, printed once, that blames
the right source (the flag, not the builtin file it was merged into), and never a traceback.

`run` cases go through the real CLI in a subprocess (what a user sees on a non-TTY); the
check-config cases call ``main`` in-process (same code path, no export)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modeldeploy.cli import _parse_cfg_options, main

CAL = "builtin:calibration"
DEPLOY = f"{CAL}/deploy_demo.py"
MODEL = f"{CAL}/resnet18_5ch_tiny.py"
FAST = ["evaluation.num_samples=2", "evaluation.warmup=0", "verification.num_verify_samples=1"]


def _run(
    tmp_path: Path, *args: str, work_dir: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy", "run", *args, "--work-dir", work_dir or str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def _one_error_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("modeldeploy: error:")]
    assert len(lines) == 1, out[-3000:]
    assert "Traceback" not in out and "InternalError" not in out, out[-3000:]
    return lines[0]


def test_load_stage_failure_prints_its_error_once_and_no_empty_table(tmp_path: Path) -> None:
    broken = tmp_path / "model.py"
    broken.write_text("model = dict(type='ImageClassifier'\n")  # unclosed: a ConfigError in the load stage
    proc = _run(tmp_path, DEPLOY, str(broken))
    assert proc.returncode == 2
    both = proc.stdout + proc.stderr
    line = _one_error_line(proc.stderr)
    assert line.startswith("modeldeploy: error: ConfigError:") and "syntax error" in line
    assert "ConfigError: ConfigError" not in both
    assert both.count("syntax error") == 1, both[-3000:]  # not also as a log record or a summary line
    assert "headline metric" not in both and "┏" not in both  # no empty evaluation table


def test_device_typo_is_blamed_on_the_flag(tmp_path: Path) -> None:
    proc = _run(tmp_path, DEPLOY, MODEL, "--device", "gpu")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "--device 'gpu'" in line and "deploy_demo.py" not in line and "cuda:N" in line


def test_cfg_options_with_a_space_instead_of_equals_is_one_line(tmp_path: Path) -> None:
    proc = _run(tmp_path, DEPLOY, MODEL, "--cfg-options", "export.mode", "onnx")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "'export.mode' has no '='" in line and "--cfg-options export.mode=onnx" in line
    assert not (tmp_path / "work").exists()  # refused before anything was written


def test_unwritable_work_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    proc = _run(tmp_path, DEPLOY, MODEL, "--cfg-options", *FAST, work_dir=str(blocker / "work"))
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert str(blocker / "work") in line and line.count("Not a directory") == 1


def test_mistyped_cfg_options_key_is_blamed_on_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", DEPLOY, "--cfg-options", "export.moode=onnx"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--cfg-options export.moode=onnx" in line and "did you mean 'export.mode'" in line
    assert "deploy_demo.py" not in line


def test_bad_cfg_options_value_is_blamed_on_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", DEPLOY, "--cfg-options", "evaluation.warmup=1", "evaluation.num_samples=abc"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--cfg-options evaluation.num_samples=abc" in line and "evaluation.warmup" not in line


def test_an_error_in_the_file_itself_still_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "deploy.py"
    cfg.write_text("project='calibration'\nexport=dict(mode='onnx', devcie='cpu')\n")
    assert main(["check-config", str(cfg), "--cfg-options", "evaluation.num_samples=4"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(cfg) in line and "export.devcie" in line and "--cfg-options" not in line


def test_swapped_deploy_and_model_configs_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", MODEL, DEPLOY]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "looks like a MODEL config" in line and "DEPLOY_CFG MODEL_CFG" in line and "model_io" not in line


def test_cfg_options_mode_none_is_the_string_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", DEPLOY, "--cfg-options", "export.mode=none"]) == 0
    assert "mode=none" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("none", "none"),
        ("null", "null"),
        ("None", None),
        ("onnx", "onnx"),
        ("'17'", "17"),
        ("17", 17),
        ("1e-4", 1e-4),
        ("True", True),
        ("false", False),
        ("[1,2]", [1, 2]),
        ("(1, 2)", (1, 2)),
        ("a,b", ["a", "b"]),
        ("[(1,2),[a,b],c]", [(1, 2), ["a", "b"], "c"]),
        ("s3://bucket/a,b", "s3://bucket/a,b"),
        (
            '[{"input_shapes": {"x": {"min_shape": [1]}}, "component": null}]',
            [{"input_shapes": {"x": {"min_shape": [1]}}, "component": None}],
        ),
    ],
)
def test_cfg_options_values_follow_mmengine_dictaction(raw: str, value: object) -> None:
    assert _parse_cfg_options([f"k.v={raw}"]) == {"k.v": value}


def test_cfg_options_unbalanced_brackets_are_a_config_error() -> None:
    from modeldeploy.errors import ConfigError

    with pytest.raises(ConfigError, match="unbalanced brackets"):
        _parse_cfg_options(["k=[1,(2]"])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_project_that_is_not_the_configs_is_refused_before_any_work(tmp_path: Path, how: str) -> None:
    """The operator sets MODELDEPLOY_EXPECTED_PROJECT to spec.project (--project's default): a CR saying
    yolox whose deployConfig is a calibration config must fail as a ConfigError (not retried), not
    run calibration under yolox's name; the termination log says so and nothing is written."""
    import json

    term = tmp_path / "termination-log"
    flag = ["--project", "yolox"] if how == "flag" else []
    env = {"MODELDEPLOY_EXPECTED_PROJECT": "yolox"} if how == "env" else {}
    proc = _run(tmp_path, DEPLOY, MODEL, *flag, "--termination-log", str(term), env=env)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "--project 'yolox'" in line and DEPLOY in line and "for project 'calibration'" in line
    assert "set spec.project to 'calibration'" in line
    summary = json.loads(term.read_text())
    assert summary["status"] == "failed" and summary["failure"]["reason"] == "ConfigError"
    assert not (tmp_path / "work").exists()


def test_check_config_checks_the_project_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", DEPLOY, "--project", "calibration"]) == 0
    assert main(["check-config", DEPLOY, "--project", "centerpoint"]) == 2
    assert "for project 'calibration'" in capsys.readouterr().err
