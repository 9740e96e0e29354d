"""Input fetch failures against a real S3 endpoint (moto server): deterministic ones exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.artifacts.fetch import fetch
from modeldeploy.errors import ArtifactStoreError, ConfigError

pytestmark = pytest.mark.integration


def test_missing_input_object_is_input_not_found_exit_2(s3_env: str, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactStoreError) as info:
        fetch(f"s3://{bucket}/ckpt/missing.pth", tmp_path / "cache")
    assert info.value.exit_code == 2 and info.value.reason == "InputNotFound"
    assert f"s3://{bucket}/ckpt/missing.pth" in info.value.one_line()


@pytest.mark.parametrize("uri", ["s3://b/../x.pth", "s3://b/a/./x.pth"])
def test_input_uri_with_dot_segments_is_refused(s3_env: str, uri: str) -> None:
    with pytest.raises(ConfigError):
        fetch(uri)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_read_only_cache_exit_2(s3_env: str, s3_admin: Any, bucket: str, tmp_path: Path) -> None:
    s3_admin.put_object(Bucket=bucket, Key="m.pth", Body=b"weights")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(cache)], check=True)
    try:
        with pytest.raises(ArtifactStoreError) as info:
            fetch(f"s3://{bucket}/m.pth", cache)
    finally:
        subprocess.run(["umount", str(cache)], check=True)
    assert info.value.exit_code == 2 and info.value.reason == "ReadOnlyStorage", info.value.one_line()
    assert "MODELDEPLOY_CACHE" in info.value.one_line()


def test_cli_missing_checkpoint_object_exits_2_with_one_line(s3_env: str, bucket: str, tmp_path: Path) -> None:
    import json
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy",
            "run",
            "builtin:calibration/deploy_demo.py",
            "builtin:calibration/resnet18_5ch_tiny.py",
            f"s3://{bucket}/ckpt/absent.pth",
            "--work-dir",
            str(tmp_path / "work"),
            "--termination-log",
            str(tmp_path / "term.json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("modeldeploy: error:")]
    assert (
        len(lines) == 1 and "InputNotFound" in lines[0] and "absent.pth" in lines[0] and "Traceback" not in proc.stderr
    )
    term = json.loads((tmp_path / "term.json").read_text())
    assert term["failure"]["stage"] == "load" and term["failure"]["reason"] == "InputNotFound"
