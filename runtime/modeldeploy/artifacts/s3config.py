"""S3 client settings from the standard AWS environment variables (plus a few tunables).

Why its own module: the operator injects the Secret's keys as the standard AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``), and every S3 user in the runtime (store,
fetch, CAS) must build the client the same way: bounded timeouts, botocore's standard
retry mode, and path-style addressing when a custom endpoint (MinIO, Ceph, on-prem) is set.

Credentials are never read here: botocore's default chain reads them, so they never pass
through our code, logs or error messages.

Tunables (all optional):
  MODELDEPLOY_S3_CONNECT_TIMEOUT   seconds, default 5
  MODELDEPLOY_S3_READ_TIMEOUT      seconds, default 60
  MODELDEPLOY_S3_MAX_ATTEMPTS      botocore attempts per HTTP request incl. the first, default 5 (AWS_MAX_ATTEMPTS too)
  MODELDEPLOY_S3_RETRY_MODE        standard | adaptive, default standard (AWS_RETRY_MODE too)
  MODELDEPLOY_S3_TRANSFER_ATTEMPTS whole-transfer attempts (retry.py), default 3
  MODELDEPLOY_S3_PART_SIZE_MB      multipart part size and threshold, default 16
  MODELDEPLOY_S3_CONCURRENCY       parallel parts per transfer, default 16
  MODELDEPLOY_S3_ADDRESSING_STYLE  path | virtual | auto (default: path with an endpoint, else auto)
  MODELDEPLOY_S3_CHECKSUM          additional checksum algorithm: CRC32 (default), CRC32C, SHA1, SHA256, none
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.artifacts.retry import RetryPolicy
from modeldeploy.errors import ConfigError

_MB = 1024 * 1024


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    region: str = "us-east-1"
    ca_bundle: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_attempts: int = 5
    retry_mode: str = "standard"
    addressing_style: str = "auto"
    part_size: int = 16 * _MB
    concurrency: int = 16
    checksum_algorithm: str | None = "CRC32"
    transfer_retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def endpoint_label(self) -> str:
        """What error messages call the endpoint (never contains credentials)."""
        return self.endpoint_url or f"AWS S3 ({self.region})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        style = env.get("MODELDEPLOY_S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto")
        if style not in ("path", "virtual", "auto"):
            raise ConfigError(f"MODELDEPLOY_S3_ADDRESSING_STYLE={style!r} is not one of path, virtual, auto")
        mode = env.get("MODELDEPLOY_S3_RETRY_MODE") or env.get("AWS_RETRY_MODE") or "standard"
        if mode not in ("standard", "adaptive"):
            raise ConfigError(
                f"S3 retry mode {mode!r} is not one of standard, adaptive", hint="set MODELDEPLOY_S3_RETRY_MODE"
            )
        checksum = (env.get("MODELDEPLOY_S3_CHECKSUM") or "CRC32").upper()
        if checksum not in ("CRC32", "CRC32C", "SHA1", "SHA256", "NONE"):
            raise ConfigError(f"MODELDEPLOY_S3_CHECKSUM={checksum!r} is not one of CRC32, CRC32C, SHA1, SHA256, none")
        part_mb = _num(env, "MODELDEPLOY_S3_PART_SIZE_MB", 16.0)
        if part_mb < 5:
            raise ConfigError(f"MODELDEPLOY_S3_PART_SIZE_MB={part_mb} is below S3's 5 MB minimum part size")
        return cls(
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=region,
            ca_bundle=env.get("AWS_CA_BUNDLE") or None,
            connect_timeout_s=_num(env, "MODELDEPLOY_S3_CONNECT_TIMEOUT", 5.0),
            read_timeout_s=_num(env, "MODELDEPLOY_S3_READ_TIMEOUT", 60.0),
            max_attempts=int(_num(env, "MODELDEPLOY_S3_MAX_ATTEMPTS", _num(env, "AWS_MAX_ATTEMPTS", 5))),
            retry_mode=mode,
            addressing_style=style,
            part_size=int(part_mb * _MB),
            concurrency=int(_num(env, "MODELDEPLOY_S3_CONCURRENCY", 16)),
            checksum_algorithm=None if checksum == "NONE" else checksum,
            transfer_retry=RetryPolicy(attempts=int(_num(env, "MODELDEPLOY_S3_TRANSFER_ATTEMPTS", 3))),
        )

    def botocore_config(self) -> Any:
        from botocore.config import Config

        return Config(
            region_name=self.region,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            s3={"addressing_style": self.addressing_style},
            max_pool_connections=max(10, self.concurrency + 2),
            request_checksum_calculation="when_supported",
            response_checksum_validation="when_supported",
        )

    def transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.concurrency,
            use_threads=True,
        )

    def make_client(self) -> Any:
        """A boto3 S3 client; credentials come from botocore's default chain (env, profile, IRSA)."""
        import boto3

        session = boto3.session.Session(region_name=self.region)
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            verify=self.ca_bundle if self.ca_bundle else None,
            config=self.botocore_config(),
        )


def _num(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"environment variable {name}={raw!r} must be positive")
    return value
