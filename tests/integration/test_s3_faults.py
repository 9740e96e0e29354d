"""Uploads/downloads through a fault-injecting proxy still end complete and verified.

The proxy (s3testkit/proxy.py) sits on 127.0.0.1 between the store and a real moto S3
server; botocore's per-request retries and our whole-transfer retries must absorb
throttling, 5xx, connection resets and stalls (read timeouts, MODELDEPLOY_S3_READ_TIMEOUT=3
in these tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from s3testkit.proxy import Fault, FaultProxy, is_get_object, is_upload_part

from modeldeploy.artifacts import LocalArtifact, open_store
from modeldeploy.artifacts.fetch import fetch

pytestmark = pytest.mark.integration
MB = 1024 * 1024


def _files(tmp_path: Path) -> list[LocalArtifact]:
    (tmp_path / "w").mkdir()
    big, small = tmp_path / "w" / "model.onnx", tmp_path / "w" / "results.json"
    big.write_bytes(os.urandom(12 * MB))
    small.write_bytes(b'{"ok": true}')
    return [LocalArtifact(small, "results.json", "results"), LocalArtifact(big, "onnx/model.onnx", "onnx")]


def _assert_published_and_verified(s3: Any, bucket: str, prefix: str, files: list[LocalArtifact]) -> None:
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read())
    assert [a["name"] for a in manifest["artifacts"]] == [f.name for f in files]
    for entry, f in zip(manifest["artifacts"], files):
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{entry['name']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] == hashlib.sha256(f.path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault("status", count=3, status=503, code="SlowDown")], id="503-slowdown-first-3"),
        pytest.param(
            [
                Fault("status", count=2, status=500, code="InternalError", match=is_upload_part),
                Fault("status", count=1, status=503, code="ServiceUnavailable"),
            ],
            id="500-on-parts",
        ),
        pytest.param([Fault("reset", count=2, match=is_upload_part), Fault("reset", count=1)], id="connection-resets"),
        pytest.param([Fault("stall", count=1, match=is_upload_part, stall_s=30)], id="stalled-part-read-timeout"),
    ],
)
def test_publish_survives_injected_faults(
    proxied_env: FaultProxy, bucket: str, s3_admin: Any, tmp_path: Path, faults: list[Fault]
) -> None:
    for f in faults:
        proxied_env.add(f)
    files = _files(tmp_path)
    t0 = time.monotonic()
    open_store(f"s3://{bucket}/run").publish(files, run_id="r")
    assert time.monotonic() - t0 < 60
    assert all(f.count == 0 for f in faults), "every injected fault must actually have been hit"
    _assert_published_and_verified(s3_admin, bucket, "run", files)


def test_download_survives_throttling_and_a_corrupted_body(
    proxied_env: FaultProxy, bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    data = os.urandom(7 * MB)
    store = open_store(f"s3://{bucket}/in")
    src = tmp_path / "ckpt.pth"
    src.write_bytes(data)
    store.put_file(LocalArtifact(src, "ckpt.pth", "other"))
    tamper = proxied_env.add(Fault("tamper", count=1, match=is_get_object))
    slow = proxied_env.add(Fault("status", count=2, status=503, code="SlowDown", match=lambda m, p: m == "GET"))
    path = fetch(f"s3://{bucket}/in/ckpt.pth", tmp_path / "cache")
    assert path.read_bytes() == data
    assert tamper.count == 0 and slow.count == 0


def test_corrupted_cache_file_is_detected_and_refetched(proxied_env: FaultProxy, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(MB)
    src = tmp_path / "model.pth"
    src.write_bytes(data)
    open_store(f"s3://{bucket}/ckpt").put_file(LocalArtifact(src, "model.pth", "other"))
    uri = f"s3://{bucket}/ckpt/model.pth"

    first = fetch(uri, tmp_path / "cache")
    proxied_env.clear()
    assert fetch(uri, tmp_path / "cache") == first
    assert not [e for e in proxied_env.log if e[0] == "GET"], "an intact cached file must be served without a GET"

    with open(first, "r+b") as f:  # same size, one byte flipped: only the sha256 check can notice
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 1]))
    again = fetch(uri, tmp_path / "cache")
    assert again.read_bytes() == data
    assert [e for e in proxied_env.log if e[0] == "GET"], "the corrupt cached file must be downloaded again"
