"""docs/adding-a-project.md: its step block runs as written (the external tiny_classifier
project registered through MODELDEPLOY_PROJECTS, checked, exported, verified, evaluated,
published), and the project list can be extended — and a typo in it is one clear error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "adding-a-project.md"


def _steps() -> str:
    text = DOC.read_text()
    block = re.search(r"<!-- steps:begin -->\s*```bash\n(.*?)```\s*<!-- steps:end -->", text, re.S)
    assert block, "docs/adding-a-project.md lost its tested step block"
    return block.group(1)


def test_documented_steps_run_end_to_end(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WORK": str(tmp_path),
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("MODELDEPLOY_PROJECTS", None)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _steps()], cwd=ROOT, env=env, capture_output=True, text=True, timeout=480
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["status"] == "succeeded" and res["project"] == "tiny_classifier"
    assert res["verification"]["passed"] is True
    assert set(res["evaluation"]) == {"pytorch:cpu", "onnxruntime:cpu"}
    assert {a["name"] for a in res["artifacts"]} >= {"onnx/tiny_classifier.onnx"}
    assert (tmp_path / "out" / "current.json").is_file()


def test_projects_lists_builtins_with_files_that_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    from modeldeploy.artifacts.fetch import fetch
    from modeldeploy.cli import main

    assert main(["projects", "--json"]) == 0
    infos = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert {"calibration", "yolox", "centerpoint"} <= set(infos)
    assert infos["yolox"]["task_type"] == "detection2d" and infos["centerpoint"]["task_type"] == "detection3d"
    for name in ("calibration", "yolox", "centerpoint"):
        kinds = {f["kind"] for f in infos[name]["files"]}
        assert {"deploy config", "model config", "checkpoint"} <= kinds, infos[name]
        for f in infos[name]["files"]:
            assert f["uri"].startswith(f"builtin:{name}/") and fetch(f["uri"]).is_file()
    demo = next(f for f in infos["calibration"]["files"] if f["uri"] == "builtin:calibration/deploy_demo.py")
    assert demo["kind"] == "deploy config"


def test_a_module_named_in_modeldeploy_projects_that_does_not_exist_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modeldeploy.errors import ConfigError
    from modeldeploy.projects import load_external

    monkeypatch.setenv("MODELDEPLOY_PROJECTS", "no_such_pkg.project")
    with pytest.raises(ConfigError, match="no_such_pkg.project"):
        load_external()
