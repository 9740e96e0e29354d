"""Shared fixtures for integration tests.

S3: ``s3_server`` is a real moto S3 server process on 127.0.0.1 (session-scoped);
``s3_env`` points the standard AWS variables at it (and a per-test cache dir);
``bucket`` is a fresh bucket; ``fault_proxy`` puts a fault-injecting HTTP proxy in front of
the server and yields it; ``proxied_env`` is ``s3_env`` with the proxy as the endpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3testkit import TEST_KEY_ID, TEST_SECRET
from s3testkit.moto import MotoServer
from s3testkit.proxy import FaultProxy


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1 (one process for the session)."""
    with MotoServer() as server:
        yield server.endpoint


def _point_env_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, cache: Path) -> None:
    for name in (
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "MODELDEPLOY_CAS_URI",
        "AWS_CA_BUNDLE",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(cache))
    # Small parts so multipart paths run on test-sized files; short read timeout so stall tests end quickly.
    monkeypatch.setenv("MODELDEPLOY_S3_PART_SIZE_MB", "5")
    monkeypatch.setenv("MODELDEPLOY_S3_CONCURRENCY", "4")
    monkeypatch.setenv("MODELDEPLOY_S3_READ_TIMEOUT", "3")
    monkeypatch.setenv("MODELDEPLOY_S3_CONNECT_TIMEOUT", "3")


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The standard AWS variables point straight at the moto server; returns its endpoint."""
    _point_env_at(monkeypatch, s3_server, tmp_path / "cache")
    return s3_server


@pytest.fixture
def fault_proxy(s3_server: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the moto server (stopped after the test)."""
    proxy = FaultProxy(s3_server)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxied_env(fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FaultProxy:
    """Like ``s3_env`` but every request goes through ``fault_proxy``; returns the proxy."""
    _point_env_at(monkeypatch, fault_proxy.endpoint, tmp_path / "cache")
    return fault_proxy


@pytest.fixture
def s3_admin(s3_server: str) -> Any:
    """A plain boto3 client straight to the server, for arranging and asserting (not the code under test)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id=TEST_KEY_ID,
        aws_secret_access_key=TEST_SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(s3_admin: Any) -> str:
    name = f"md-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=name)
    return name
