"""s3errors.py: classification and messages, on botocore exception objects built by hand (no server)."""

from __future__ import annotations

import pytest

botocore = pytest.importorskip("botocore")
from boto3.exceptions import S3UploadFailedError  # noqa: E402
from botocore.exceptions import (  # noqa: E402
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from modeldeploy.artifacts.s3errors import S3StoreError, classify, is_retryable, translate  # noqa: E402

EP = "http://127.0.0.1:9000"


def client_error(code: str, status: int, op: str = "PutObject", message: str = "server says") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )


def wrapped_in_upload_failure(inner: Exception) -> Exception:
    """boto3.upload_file raises S3UploadFailedError while handling the ClientError (implicit __context__)."""
    try:
        raise inner
    except Exception:
        try:
            raise S3UploadFailedError("Failed to upload f to b/k: ...")
        except S3UploadFailedError as outer:
            return outer
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc,retryable",
    [
        (client_error("SlowDown", 503), True),
        (client_error("RequestLimitExceeded", 400), True),
        (client_error("InternalError", 500), True),
        (client_error("SomethingNew", 502), True),
        (client_error("AccessDenied", 403), False),
        (client_error("InvalidAccessKeyId", 403), False),
        (client_error("SignatureDoesNotMatch", 403), False),
        (client_error("NoSuchBucket", 404), False),
        (client_error("NoSuchKey", 404), False),
        (client_error("404", 404, op="HeadObject"), False),
        (client_error("InvalidArgument", 400), False),
        (ReadTimeoutError(endpoint_url=EP), True),
        (ConnectionClosedError(endpoint_url=EP), True),
        (EndpointConnectionError(endpoint_url=EP), False),  # botocore already retried the connect
        (wrapped_in_upload_failure(client_error("SlowDown", 503, "UploadPart")), True),
        (wrapped_in_upload_failure(client_error("AccessDenied", 403, "UploadPart")), False),
    ],
)
def test_retry_classification(exc: Exception, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_classify_digs_through_wrappers() -> None:
    assert classify(wrapped_in_upload_failure(client_error("AccessDenied", 403))) == ("AccessDenied", 403)


def test_auth_error_message_names_location_and_fix_but_drops_server_text() -> None:
    exc = client_error("SignatureDoesNotMatch", 403, message="StringToSign AKIASECRETISH canonical request ...")
    err = translate(exc, op="upload", bucket="b", key="runs/x/model.onnx", endpoint=EP)
    line = err.one_line()
    assert isinstance(err, S3StoreError) and err.exit_code == 4 and err.code == "SignatureDoesNotMatch"
    assert "s3://b/runs/x/model.onnx" in line and EP in line and "credentialsSecretRef" in line
    assert "AKIASECRETISH" not in line and "StringToSign" not in line


@pytest.mark.parametrize(
    "exc,expected",
    [
        (client_error("NoSuchBucket", 404), "bucket 'b' does not exist"),
        (client_error("NoSuchKey", 404, "GetObject"), "s3://b/k not found"),
        (EndpointConnectionError(endpoint_url=EP), "cannot connect"),
        (ReadTimeoutError(endpoint_url=EP), "read timeout"),
        (client_error("SlowDown", 503), "kept throttling"),
        (client_error("InternalError", 500), "server error InternalError (HTTP 500)"),
        (NoCredentialsError(), "no S3 credentials"),
        (SSLError(endpoint_url=EP, error="cert verify failed"), "AWS_CA_BUNDLE"),
        (
            client_error("InvalidArgument", 400, message="bad   thing"),
            "InvalidArgument for s3://b/k at http://127.0.0.1:9000: bad thing",
        ),
    ],
)
def test_messages(exc: Exception, expected: str) -> None:
    err = translate(exc, op="op", bucket="b", key="k", endpoint=EP)
    assert expected in err.one_line()
    assert "\n" not in err.one_line()
