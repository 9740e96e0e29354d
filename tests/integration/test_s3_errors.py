"""Failures end with ONE clear ArtifactStoreError, fast, naming bucket, key, endpoint and fix."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3testkit import TEST_SECRET
from s3testkit.moto import MotoServer
from s3testkit.proxy import Fault, FaultProxy

from modeldeploy.artifacts import LocalArtifact, open_store
from modeldeploy.artifacts.fetch import fetch
from modeldeploy.artifacts.s3errors import S3StoreError
from modeldeploy.errors import ArtifactStoreError

pytestmark = pytest.mark.integration
BOUND_S = 60  # failure detection bound, not a performance assertion


@pytest.fixture(scope="module")
def auth_s3_server() -> Iterator[str]:
    """A second moto server that authenticates every request (unknown keys get 403 InvalidAccessKeyId)."""
    with MotoServer(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as server:
        yield server.endpoint


@pytest.fixture
def artifact(tmp_path: Path) -> list[LocalArtifact]:
    p = tmp_path / "report.md"
    p.write_text("# r\n")
    return [LocalArtifact(p, "report.md", "report")]


def _assert_one_clear_error(err: ArtifactStoreError, *must_contain: str, exit_code: int = 4) -> None:
    line = err.one_line()
    assert isinstance(err, S3StoreError)
    assert err.exit_code == exit_code
    assert "\n" not in line and len(line) < 600, line
    for text in must_contain:
        assert text in line, f"{text!r} missing from: {line}"
    assert TEST_SECRET not in line and TEST_SECRET not in repr(err.args)


def test_wrong_credentials_fail_fast_with_a_pointer_to_the_secret(
    auth_s3_server: str, s3_env: str, monkeypatch: pytest.MonkeyPatch, artifact: list[LocalArtifact], tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", auth_s3_server)
    t0 = time.monotonic()
    with pytest.raises(ArtifactStoreError) as info:
        open_store("s3://models/runs/r1").publish(artifact, run_id="r")
    assert time.monotonic() - t0 < BOUND_S
    _assert_one_clear_error(
        info.value, "InvalidAccessKeyId", "s3://models/runs/r1/", auth_s3_server, "credentialsSecretRef"
    )
    assert info.value.retryable is False

    with pytest.raises(ArtifactStoreError) as info:
        fetch("s3://models/ckpt/model.pth", tmp_path / "cache")
    _assert_one_clear_error(info.value, "s3://models/ckpt/model.pth", auth_s3_server, "credentialsSecretRef")


def test_access_denied_is_not_retried(proxied_env: FaultProxy, bucket: str, artifact: list[LocalArtifact]) -> None:
    proxied_env.add(Fault("status", count=100, status=403, code="AccessDenied"))
    with pytest.raises(ArtifactStoreError) as info:
        open_store(f"s3://{bucket}/p").publish(artifact, run_id="r")
    _assert_one_clear_error(
        info.value, "AccessDenied", f"s3://{bucket}/p/manifest.json", proxied_env.endpoint, "credentialsSecretRef"
    )
    assert len(proxied_env.log) == 1, f"AccessDenied must not be retried: {proxied_env.log}"


def test_missing_bucket(s3_env: str, artifact: list[LocalArtifact], tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ArtifactStoreError) as info:
        open_store("s3://no-such-bucket-md/p").publish(artifact, run_id="r")
    _assert_one_clear_error(info.value, "bucket 'no-such-bucket-md' does not exist", s3_env)
    with pytest.raises(ArtifactStoreError) as info:
        fetch("s3://no-such-bucket-md/ckpt.pth", tmp_path / "c")
    _assert_one_clear_error(info.value, "bucket 'no-such-bucket-md' does not exist", s3_env)
    assert time.monotonic() - t0 < BOUND_S


def test_missing_key(s3_env: str, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactStoreError) as info:
        fetch(f"s3://{bucket}/nothing/here.pth", tmp_path / "c")
    # a missing INPUT is the user's error: exit 2, not retried (docs/contracts.md exit codes)
    _assert_one_clear_error(info.value, f"s3://{bucket}/nothing/here.pth not found", s3_env, exit_code=2)
    assert not list((tmp_path / "c").rglob("*.pth")), "no file may appear for a failed download"


def test_unreachable_endpoint_fails_in_bounded_time(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, artifact: list[LocalArtifact]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.delenv("MODELDEPLOY_S3_MAX_ATTEMPTS", raising=False)  # production default attempts
    t0 = time.monotonic()
    with pytest.raises(ArtifactStoreError) as info:
        open_store("s3://models/p").publish(artifact, run_id="r")
    assert time.monotonic() - t0 < BOUND_S
    _assert_one_clear_error(info.value, "cannot connect", endpoint, "AWS_ENDPOINT_URL")


def test_persistent_throttling_gives_up_after_a_bounded_number_of_requests(
    proxied_env: FaultProxy, bucket: str, monkeypatch: pytest.MonkeyPatch, artifact: list[LocalArtifact]
) -> None:
    monkeypatch.setenv("MODELDEPLOY_S3_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("MODELDEPLOY_S3_TRANSFER_ATTEMPTS", "2")
    proxied_env.add(Fault("status", count=10_000, status=503, code="SlowDown"))
    t0 = time.monotonic()
    with pytest.raises(ArtifactStoreError) as info:
        open_store(f"s3://{bucket}/p").publish(artifact, run_id="r")
    assert time.monotonic() - t0 < BOUND_S
    _assert_one_clear_error(info.value, "SlowDown", "MODELDEPLOY_S3_CONCURRENCY")
    assert len(proxied_env.log) == 3 * 2, proxied_env.log  # botocore attempts x whole-operation attempts
