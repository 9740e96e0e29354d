"""fetch() of s3:// objects and prefixes: cache keyed by ETag, verified on every read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from s3testkit.proxy import FaultProxy

from modeldeploy.artifacts.fetch import fetch

pytestmark = pytest.mark.integration


def _put(s3: Any, bucket: str, key: str, data: bytes, with_sha: bool = True) -> None:
    meta = {"sha256": hashlib.sha256(data).hexdigest()} if with_sha else {}
    s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=meta)


def test_object_fetch_keeps_basename_and_follows_etag_changes(
    s3_env: str, bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _put(s3_admin, bucket, "cfg/deploy_config.py", b"a = 1\n")
    first = fetch(f"s3://{bucket}/cfg/deploy_config.py", cache)
    assert first.name == "deploy_config.py" and first.read_bytes() == b"a = 1\n"
    assert cache in first.parents

    _put(s3_admin, bucket, "cfg/deploy_config.py", b"a = 2\n")  # new content -> new ETag
    second = fetch(f"s3://{bucket}/cfg/deploy_config.py", cache)
    assert second.read_bytes() == b"a = 2\n"
    assert second != first and not first.exists(), "the older ETag's copy is pruned"


def test_object_without_sha256_metadata_is_checked_by_size(
    s3_env: str, bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    _put(s3_admin, bucket, "plain.bin", b"x" * 1000, with_sha=False)
    p = fetch(f"s3://{bucket}/plain.bin", tmp_path / "c")
    p.write_bytes(b"x" * 10)  # truncated cache file
    assert fetch(f"s3://{bucket}/plain.bin", tmp_path / "c").read_bytes() == b"x" * 1000


def test_prefix_fetch_mirrors_a_directory(proxied_env: FaultProxy, bucket: str, s3_admin: Any, tmp_path: Path) -> None:
    files = {"info.pkl": os.urandom(1000), "samples/0001.bin": os.urandom(3000), "samples/0002.bin": os.urandom(50)}
    for rel, data in files.items():
        _put(s3_admin, bucket, f"datasets/t4/{rel}", data, with_sha=rel != "info.pkl")
    cache = tmp_path / "cache"
    root = fetch(f"s3://{bucket}/datasets/t4/", cache)
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == set(files)
    assert all((root / rel).read_bytes() == data for rel, data in files.items())
    assert fetch(f"s3://{bucket}/datasets/t4", cache) == root, (
        "a prefix without the trailing slash means the directory too"
    )

    proxied_env.clear()
    assert fetch(f"s3://{bucket}/datasets/t4/", cache) == root
    assert not [e for e in proxied_env.log if e[0] == "GET" and "list-type" not in e[1]], "cache hits only LIST"

    (root / "samples" / "0001.bin").write_bytes(b"\0" * 3000)  # corrupt a cached file, same size
    s3_admin.delete_object(Bucket=bucket, Key="datasets/t4/samples/0002.bin")
    _put(s3_admin, bucket, "datasets/t4/new.txt", b"new")
    root = fetch(f"s3://{bucket}/datasets/t4/", cache)
    assert (root / "samples" / "0001.bin").read_bytes() == files["samples/0001.bin"]
    assert not (root / "samples" / "0002.bin").exists(), "objects deleted upstream disappear from the mirror"
    assert (root / "new.txt").read_bytes() == b"new"
    assert not list(root.rglob("*.partial"))


def test_unwritable_cache_is_one_clear_error(s3_env: str, bucket: str, s3_admin: Any, tmp_path: Path) -> None:
    from modeldeploy.errors import ArtifactStoreError

    _put(s3_admin, bucket, "m.pth", b"weights")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(ArtifactStoreError) as info:
        fetch(f"s3://{bucket}/m.pth", blocker / "cache")
    assert "MODELDEPLOY_CACHE" in info.value.one_line() and str(blocker) in info.value.one_line()
