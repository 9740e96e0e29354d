"""Read-only / full work and artifact dirs on REAL filesystems (tmpfs mounts, root only).

No doubles: a small tmpfs gives a real ENOSPC, ``mount -o remount,ro`` a real EROFS.
Each case must end with: non-zero exit of the right class, one clear line, results.json
``failed`` with the stage, no ``.partial`` left, the previous publication still current.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modeldeploy.artifacts import open_store
from modeldeploy.artifacts.publication import resolve_current_prefix
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyProject

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def _run(tmp: Path, toy_files: dict[str, Path], artifact_uri: str, run_id: str) -> tuple[DeploymentRunner, object]:
    cfg = BaseDeploymentConfig.from_dict(
        {
            "project": "toy",
            "export": {"mode": "onnx", "work_dir": str(tmp / f"work-{run_id}"), "artifact_uri": artifact_uri},
            "onnx_config": {"save_file": "toy.onnx"},
            "verification": {"num_verify_samples": 1, "tolerance": 1e-4},
            "evaluation": {"num_samples": 2, "warmup": 0},
        }
    )
    runner = DeploymentRunner(
        cfg,
        str(toy_files["model_cfg"]),
        str(toy_files["checkpoint"]),
        project=ToyProject(),
        resolve_fn=Path,
        run_id=run_id,
        termination_log=str(tmp / f"term-{run_id}.json"),
    )
    return runner, runner.run()


def _partials(root: Path) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if ".partial" in p.name or p.name.startswith(".probe-") or p.name.startswith(".preflight-")
    ]


def test_full_artifact_dir_enospc_on_publish(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    with tmpfs(tmp_path / "store", "512k") as store:
        _, good = _run(tmp_path, toy_files, str(store), "good")
        assert good.exit_code == 0, good.results["failure"]
        pointer = (store / "current.json").read_bytes()
        st = os.statvfs(store)
        (store / "filler").write_bytes(
            b"\0" * (st.f_bavail * st.f_frsize - 8192)
        )  # leave two pages: the probe fits, the artifacts do not

        _, out = _run(tmp_path, toy_files, str(store), "full")
        assert out.exit_code == 2, out.results["failure"]
        assert out.results["status"] == "failed"
        assert out.results["failure"]["stage"] == "upload" and out.results["failure"]["reason"] == "NoSpace", (
            out.results["failure"]
        )
        assert "no space left" in out.error.one_line() and "\n" not in out.error.one_line()
        local = json.loads((tmp_path / "work-full" / "results.json").read_text())
        assert local["status"] == "failed" and local["failure"]["stage"] == "upload"
        term = json.loads((tmp_path / "term-full.json").read_text())
        assert term["status"] == "failed" and term["published_current"] is False
        assert not _partials(store), _partials(store)
        assert (store / "current.json").read_bytes() == pointer
        assert resolve_current_prefix(open_store(str(store))).endswith("/runs/good")


def test_read_only_artifact_dir_fails_in_preflight_and_keeps_the_publication(
    tmp_path: Path, toy_files: dict[str, Path]
) -> None:
    with tmpfs(tmp_path / "store", "4m") as store:
        _, good = _run(tmp_path, toy_files, str(store), "good")
        assert good.exit_code == 0
        pointer = (store / "current.json").read_bytes()
        _remount(store, "ro")
        try:
            _, out = _run(tmp_path, toy_files, str(store), "ro")
        finally:
            _remount(store, "rw")
        assert out.exit_code == 2
        assert out.results["failure"]["stage"] == "preflight" and out.results["failure"]["reason"] == "ReadOnlyStorage"
        assert "read-only" in out.error.one_line()
        assert "load" not in out.results["durations_s"], "no heavy work after a failed preflight"
        assert json.loads((tmp_path / "work-ro" / "results.json").read_text())["status"] == "failed"
        assert (store / "current.json").read_bytes() == pointer and not _partials(store)


def test_read_only_work_dir_is_one_line_on_stderr_and_in_the_termination_log(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "work", "1m") as work:
        _remount(work, "ro")
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "modeldeploy",
                    "run",
                    "builtin:calibration/deploy_demo.py",
                    "builtin:calibration/resnet18_5ch_tiny.py",
                    "--work-dir",
                    str(work),
                    "--termination-log",
                    str(tmp_path / "term.json"),
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            _remount(work, "rw")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("modeldeploy: error:")]
    assert len(lines) == 1 and "read-only" in lines[0] and str(work) in lines[0] and "Traceback" not in proc.stderr
    term = json.loads((tmp_path / "term.json").read_text())
    assert (
        term["status"] == "failed"
        and term["failure"]["stage"] == "preflight"
        and term["failure"]["reason"] == "ReadOnlyStorage"
    )


@pytest.mark.parametrize(
    "uri", ["file:///etc", "/usr/lib/x", "/", "s3://bucket/../x", "s3://bucket/a/./b", "/tmp/a/../../etc"]
)
def test_dangerous_artifact_uris_are_refused_at_config_load(tmp_path: Path, uri: str) -> None:
    from modeldeploy.errors import ConfigError

    with pytest.raises(ConfigError) as info:  # export.artifact_uri, whether from the file or --artifact-uri
        BaseDeploymentConfig.from_dict(
            {"project": "toy", "export": {"work_dir": str(tmp_path / "w"), "artifact_uri": uri}}
        )
    assert info.value.exit_code == 2


def test_artifact_dir_outside_allowed_roots_needs_an_explicit_root(
    tmp_path: Path, toy_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeldeploy.artifacts.uri_policy import check_artifact_uri
    from modeldeploy.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="outside the allowed output roots"):
        check_artifact_uri("/opt/modeldeploy-out")
    monkeypatch.setenv("MODELDEPLOY_ALLOWED_ROOTS", "/opt")
    assert check_artifact_uri("/opt/modeldeploy-out") == "/opt/modeldeploy-out"
