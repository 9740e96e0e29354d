"""s3config.py: settings from the standard AWS variables (pure parsing, no network)."""

from __future__ import annotations

import pytest

from modeldeploy.artifacts.s3config import S3Settings
from modeldeploy.errors import ConfigError


def test_defaults_without_endpoint_use_aws_addressing() -> None:
    s = S3Settings.from_env({})
    assert s.endpoint_url is None and s.addressing_style == "auto" and s.region == "us-east-1"
    assert s.endpoint_label == "AWS S3 (us-east-1)"


def test_custom_endpoint_switches_to_path_style_and_reads_aws_variables() -> None:
    s = S3Settings.from_env(
        {
            "AWS_ENDPOINT_URL": "https://minio.local:9000/",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_REGION": "ap-northeast-1",
            "AWS_CA_BUNDLE": "/etc/ca.pem",
            "AWS_MAX_ATTEMPTS": "7",
        }
    )
    assert s.endpoint_url == "https://minio.local:9000"
    assert s.addressing_style == "path"
    assert s.region == "ap-northeast-1"  # AWS_REGION wins over AWS_DEFAULT_REGION, as in the AWS SDKs
    assert s.ca_bundle == "/etc/ca.pem" and s.max_attempts == 7


def test_s3_specific_endpoint_wins() -> None:
    s = S3Settings.from_env({"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_S3": "http://b"})
    assert s.endpoint_url == "http://b"


def test_botocore_config_is_bounded() -> None:
    pytest.importorskip("botocore")
    cfg = S3Settings.from_env(
        {
            "MODELDEPLOY_S3_CONNECT_TIMEOUT": "2",
            "MODELDEPLOY_S3_READ_TIMEOUT": "9",
            "MODELDEPLOY_S3_MAX_ATTEMPTS": "4",
            "MODELDEPLOY_S3_CONCURRENCY": "32",
        }
    ).botocore_config()
    assert cfg.connect_timeout == 2 and cfg.read_timeout == 9
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 4}
    assert cfg.max_pool_connections >= 32


@pytest.mark.parametrize(
    "env,match",
    [
        ({"MODELDEPLOY_S3_PART_SIZE_MB": "1"}, "5 MB minimum"),
        ({"MODELDEPLOY_S3_READ_TIMEOUT": "soon"}, "not a number"),
        ({"MODELDEPLOY_S3_CONCURRENCY": "0"}, "must be positive"),
        ({"MODELDEPLOY_S3_ADDRESSING_STYLE": "dns"}, "path, virtual, auto"),
        ({"AWS_RETRY_MODE": "legacy"}, "standard, adaptive"),
        ({"MODELDEPLOY_S3_CHECKSUM": "md5"}, "CRC32"),
    ],
)
def test_bad_values_are_config_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        S3Settings.from_env(env)
