"""A publish SIGKILLed in the middle of a multipart upload leaves no manifest; re-running completes it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from s3testkit.proxy import Fault, FaultProxy

from modeldeploy.artifacts import LocalArtifact, open_store

pytestmark = pytest.mark.integration
MB = 1024 * 1024

PUBLISHER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from modeldeploy.artifacts import LocalArtifact, open_store
    files = [LocalArtifact(Path(p), n, k) for p, n, k in json.loads(sys.argv[2])]
    open_store(sys.argv[1]).publish(files, run_id="killed")
    """
)


def test_killed_publish_leaves_no_manifest_and_rerun_completes(
    fault_proxy: FaultProxy, s3_env: str, bucket: str, s3_admin: Any, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    for name, size in (("results.json", 100), ("model.onnx", 20 * MB), ("report.md", 200)):
        (work / name).write_bytes(os.urandom(size))
    files = [
        LocalArtifact(work / "results.json", "results.json", "results"),
        LocalArtifact(work / "model.onnx", "onnx/model.onnx", "onnx"),
        LocalArtifact(work / "report.md", "report.md", "report"),
    ]
    uri = f"s3://{bucket}/runs/r1"
    open_store(uri).publish(files[:1], run_id="previous-generation")  # an older manifest must not survive

    # Part 2 of the big file hangs in the proxy, so the child is provably mid-multipart when killed.
    fault_proxy.add(Fault("stall", count=1, match=lambda m, p: m == "PUT" and "partNumber=2" in p, stall_s=60))
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=fault_proxy.endpoint,
        MODELDEPLOY_S3_READ_TIMEOUT="60",
        MODELDEPLOY_S3_CONCURRENCY="1",
    )
    child = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, uri, json.dumps([[str(f.path), f.name, f.kind] for f in files])], env=env
    )
    try:
        assert fault_proxy.stalled.wait(60), "the child never reached part 2"
        uploads = s3_admin.list_multipart_uploads(Bucket=bucket, Prefix="runs/r1/").get("Uploads", [])
        assert [u["Key"] for u in uploads] == ["runs/r1/onnx/model.onnx"]
    finally:
        os.kill(child.pid, signal.SIGKILL)  # only the child this test started
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    listed = {o["Key"] for o in s3_admin.list_objects_v2(Bucket=bucket, Prefix="runs/r1/").get("Contents", [])}
    assert "runs/r1/manifest.json" not in listed, "an interrupted publish must leave the prefix without a manifest"
    assert "runs/r1/onnx/model.onnx" not in listed, "a multipart object must not appear before it completes"
    assert open_store(uri).read_manifest() is None

    records = open_store(uri).publish(files, run_id="rerun")  # straight to the server this time
    manifest = json.loads(s3_admin.get_object(Bucket=bucket, Key="runs/r1/manifest.json")["Body"].read())
    assert manifest["run_id"] == "rerun"
    assert [a["name"] for a in manifest["artifacts"]] == [f.name for f in files] == [r.name for r in records]
    for entry in manifest["artifacts"]:
        body = s3_admin.get_object(Bucket=bucket, Key=f"runs/r1/{entry['name']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    assert s3_admin.list_multipart_uploads(Bucket=bucket, Prefix="runs/r1/").get("Uploads", []) == [], (
        "the re-run must abort the multipart upload the killed run left behind"
    )
