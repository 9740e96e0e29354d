"""S3ArtifactStore against a real S3 HTTP endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.artifacts import IntegrityError, LocalArtifact, open_store
from modeldeploy.artifacts.s3 import S3ArtifactStore

pytestmark = pytest.mark.integration
MB = 1024 * 1024


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _object_sha(s3: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


@pytest.fixture
def work_files(tmp_path: Path) -> list[LocalArtifact]:
    big = _write(tmp_path / "w" / "model.onnx", os.urandom(20 * MB))
    return [
        LocalArtifact(_write(tmp_path / "w" / "results.json", b'{"status": "succeeded"}'), "results.json", "results"),
        LocalArtifact(_write(tmp_path / "w" / "report.md", b"# report\n"), "report.md", "report"),
        LocalArtifact(big, "onnx/model.onnx", "onnx"),
        LocalArtifact(
            _write(tmp_path / "w" / "model.engine", os.urandom(3 * MB + 17)), "engines/model.engine", "engine"
        ),
    ]


def test_publish_uploads_every_artifact_and_objects_match_manifest(
    s3_env: str, bucket: str, s3_admin: Any, work_files: list[LocalArtifact]
) -> None:
    store = open_store(f"s3://{bucket}/runs/r1")
    assert isinstance(store, S3ArtifactStore)
    records = store.publish(work_files, run_id="ns/name/g1/abc")

    manifest = json.loads(s3_admin.get_object(Bucket=bucket, Key="runs/r1/manifest.json")["Body"].read())
    assert manifest["run_id"] == "ns/name/g1/abc"
    assert {a["name"] for a in manifest["artifacts"]} == {f.name for f in work_files}
    for entry, local in zip(manifest["artifacts"], work_files):
        key = f"runs/r1/{entry['name']}"
        assert entry["sha256"] == hashlib.sha256(local.path.read_bytes()).hexdigest()
        assert _object_sha(s3_admin, bucket, key) == entry["sha256"]
        head = s3_admin.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["Metadata"]["sha256"] == entry["sha256"]  # x-amz-meta-sha256
        assert head["ContentLength"] == entry["bytes"]
        assert head.get("ChecksumCRC32"), "S3 additional checksum missing"
        assert entry["uri"] == f"s3://{bucket}/{key}"
    # 20 MB with 5 MB parts is a 4-part multipart upload (its ETag says how many parts)
    assert s3_admin.head_object(Bucket=bucket, Key="runs/r1/onnx/model.onnx")["ETag"].endswith('-4"')
    assert [r.name for r in records] == [f.name for f in work_files]
    assert store.read_manifest() == manifest


def test_get_file_round_trip_and_detects_a_tampered_object(
    s3_env: str, bucket: str, s3_admin: Any, work_files: list[LocalArtifact], tmp_path: Path
) -> None:
    store = open_store(f"s3://{bucket}/p")
    store.publish(work_files, run_id="r")
    out = store.get_file("onnx/model.onnx", tmp_path / "dl" / "model.onnx")
    assert out.read_bytes() == work_files[2].path.read_bytes()

    # Someone overwrites the object after the manifest was written (metadata claims the old sha256).
    meta = s3_admin.head_object(Bucket=bucket, Key="p/report.md")["Metadata"]
    s3_admin.put_object(Bucket=bucket, Key="p/report.md", Body=b"# forged\n", Metadata=meta)
    dest = tmp_path / "dl" / "report.md"
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.get_file("report.md", dest)
    assert not dest.exists(), "a file failing verification must not appear under the final name"
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".partial")]


def test_republish_removes_the_old_manifest_before_touching_objects(
    s3_env: str, bucket: str, s3_admin: Any, work_files: list[LocalArtifact], tmp_path: Path
) -> None:
    store = open_store(f"s3://{bucket}/p")
    store.publish(work_files, run_id="gen1")
    broken = work_files[:2] + [LocalArtifact(tmp_path / "missing.onnx", "onnx/model.onnx", "onnx")]
    with pytest.raises(Exception, match="does not exist"):
        store.publish(broken, run_id="gen2")
    assert store.read_manifest() is None, "an interrupted re-publish must not leave gen1's manifest over gen2's objects"

    store.publish(work_files, run_id="gen2")
    assert store.read_manifest()["run_id"] == "gen2"


def test_rerun_uploads_only_what_is_missing(proxied_env: Any, bucket: str, work_files: list[LocalArtifact]) -> None:
    store = open_store(f"s3://{bucket}/p")
    store.publish(work_files, run_id="one")
    proxied_env.clear()
    store.publish(work_files, run_id="two")
    puts = [p for m, p, _ in proxied_env.log if m in ("PUT", "POST")]
    assert puts == [f"/{bucket}/p/manifest.json"], puts
    assert store.read_manifest()["run_id"] == "two"


def test_cas_shares_blobs_between_stores_and_treats_corruption_as_a_miss(
    s3_env: str, bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    blob = _write(tmp_path / "model.engine", os.urandom(6 * MB))
    node_a = open_store(f"s3://{bucket}/runs/a")
    node_b = open_store(f"s3://{bucket}/runs/b")  # another run / node, different prefix
    key = "trt/" + "ab" * 32 + ".engine"

    assert node_b.cas_get(key, tmp_path / "b" / "x.engine") is None
    rec = node_a.cas_put(key, blob)
    assert rec.uri == f"s3://{bucket}/cas/{key}"
    got = node_b.cas_get(key, tmp_path / "b" / "x.engine")
    assert got is not None and got.read_bytes() == blob.read_bytes()

    modified = s3_admin.head_object(Bucket=bucket, Key=f"cas/{key}")["LastModified"]
    node_b.cas_put(key, blob)  # identical content: no new upload
    assert s3_admin.head_object(Bucket=bucket, Key=f"cas/{key}")["LastModified"] == modified

    meta = s3_admin.head_object(Bucket=bucket, Key=f"cas/{key}")["Metadata"]
    s3_admin.put_object(Bucket=bucket, Key=f"cas/{key}", Body=b"garbage", Metadata=meta)
    dest = tmp_path / "c" / "x.engine"
    assert node_b.cas_get(key, dest) is None
    assert not dest.exists()


def test_cas_root_is_configurable(
    s3_env: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_admin: Any
) -> None:
    monkeypatch.setenv("MODELDEPLOY_CAS_URI", f"s3://{bucket}/team/cache")
    blob = _write(tmp_path / "f.onnx", b"onnx bytes")
    open_store(f"s3://{bucket}/x").cas_put("onnx/k1.onnx", blob)
    assert (
        s3_admin.head_object(Bucket=bucket, Key="team/cache/onnx/k1.onnx")["Metadata"]["sha256"]
        == hashlib.sha256(b"onnx bytes").hexdigest()
    )
