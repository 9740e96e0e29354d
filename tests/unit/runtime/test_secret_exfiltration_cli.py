"""The exfiltration from issue #12, through the real CLI: a config raises an exception whose
message is a credential. No secret value may reach stdout/stderr (the pod log), the
termination message (→ CR status), results.json, report.md, run.log or the published files."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzzSECRET"
TEAM = "team-b-credential-77"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"AWS_SECRET_ACCESS_KEY": SECRET, "TEAM_KEY": TEAM, "MODELDEPLOY_SECRET_ENV": "TEAM_KEY,AWS_SECRET_ACCESS_KEY"}
    )
    return env


def _leaks(text: str) -> list[str]:
    forms = [SECRET, TEAM, base64.b64encode(SECRET.encode()).decode(), SECRET.encode().hex()]
    return [f for f in forms if f in text]


def _run(tmp_path: Path, deploy: str, model: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            deploy,
            model,
            "--work-dir",
            str(tmp_path / "work"),
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
            "--termination-log",
            str(tmp_path / "term.json"),
            "--run-id",
            "exfil",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )


def _everything_written(tmp_path: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    out = {"stdout": proc.stdout, "stderr": proc.stderr}
    for p in tmp_path.rglob("*"):
        if p.is_file() and p.suffix != ".py":  # the attacker's own config file is input, not output
            out[str(p)] = p.read_text(errors="replace")
    return out


@pytest.mark.parametrize("env_name", ["AWS_SECRET_ACCESS_KEY", "TEAM_KEY"])
def test_secret_raised_by_the_model_config_is_nowhere(tmp_path: Path, env_name: str) -> None:
    model = tmp_path / "model.py"
    model.write_text(
        f"value = __import__('os').environ[{env_name!r}]\nprint('stdout leak', value)\n"
        "__import__('warnings').warn('warning leak ' + value)\n"
        "__import__('logging').getLogger('mmengine').warning('mmengine leak ' + value)\n"
        "raise ValueError('leak: ' + value)\n"
    )
    proc = _run(tmp_path, "builtin:calibration/deploy_demo.py", str(model))
    assert proc.returncode == 2, proc.stderr[-2000:]
    written = _everything_written(tmp_path, proc)
    assert str(tmp_path / "work" / "results.json") in written and str(tmp_path / "term.json") in written
    assert any(k.endswith("run.log") for k in written), sorted(written)
    assert "ValueError" in written[str(tmp_path / "term.json")], (
        "the failure is still explained (with the value redacted)"
    )
    assert "stdout leak [redacted]" in proc.stdout, "the config's print() ran and was scrubbed"
    leaks = {k: _leaks(v) for k, v in written.items() if _leaks(v)}
    assert not leaks, leaks


def test_secret_raised_by_the_deploy_config_is_nowhere(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy.py"
    deploy.write_text("project = 'calibration'\nraise ValueError(__import__('os').environ['AWS_SECRET_ACCESS_KEY'])\n")
    proc = _run(tmp_path, str(deploy), "builtin:calibration/resnet18_5ch_tiny.py")
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.splitlines() if x.startswith("modeldeploy: error:")]
    assert len(lines) == 1 and "line 2" in lines[0] and "[redacted]" in lines[0]
    leaks = {k: _leaks(v) for k, v in _everything_written(tmp_path, proc).items() if _leaks(v)}
    assert not leaks, leaks
