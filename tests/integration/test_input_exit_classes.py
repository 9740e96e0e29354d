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
