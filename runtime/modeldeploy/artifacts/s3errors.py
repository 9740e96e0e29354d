"""Turn botocore/s3transfer failures into ONE clear ``ArtifactStoreError``.

Why: a raw botocore traceback names neither the bucket nor the fix, and some of its
messages echo request details. Every S3 failure in the runtime goes through ``translate``
so the user reads one line naming the operation, ``s3://bucket/key``, the endpoint, and
the likely fix — and never a credential (we never format the access key or the secret;
for auth failures even the server's message is dropped).

``is_retryable`` is the classification the whole-transfer retry loop uses: throttling,
5xx and broken/stalled connections are retried; auth errors, missing bucket/key and
client errors are not (retrying cannot fix them). Connection *refused* / connect
timeouts are not retried at this layer because botocore already retried them per request.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.errors import ArtifactStoreError

THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "503",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
    }
)
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
        "Forbidden",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
SECRET_HINT = "check the credentials in the Secret referenced by credentialsSecretRef (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy"


class S3StoreError(ArtifactStoreError):
    """An ``ArtifactStoreError`` (exit code 4) that also says what failed where."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None,
        code: str,
        bucket: str | None,
        key: str | None,
        endpoint: str,
        retryable: bool,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.bucket = bucket
        self.key = key
        self.endpoint = endpoint
        self.retryable = retryable


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        nxt = getattr(cur, "last_exception", None)  # s3transfer.RetriesExceededError
        cur = nxt if isinstance(nxt, BaseException) else (cur.__cause__ or cur.__context__)
    return seen


def classify(exc: BaseException) -> tuple[str, int | None]:
    """Return (code, http status) of the most specific cause; code is the S3 error code or exception name."""
    from botocore.exceptions import BotoCoreError, ClientError

    for e in _chain(exc):
        if isinstance(e, ClientError):
            err = e.response.get("Error", {}) or {}
            status = (e.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
            return str(err.get("Code") or status or "ClientError"), status
        if isinstance(e, BotoCoreError):
            return type(e).__name__, None
    return type(exc).__name__, None


def is_retryable(exc: BaseException) -> bool:
    """True for errors a whole-operation retry can cure (see module docstring)."""
    if isinstance(exc, S3StoreError):
        return exc.retryable
    from botocore.exceptions import (
        ChecksumError,
        ConnectionClosedError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    code, status = classify(exc)
    if code in AUTH_CODES or code in NOT_FOUND_CODES or code == "NoSuchBucket":
        return False
    if code in THROTTLE_CODES or code in TRANSIENT_CODES or (status is not None and status >= 500):
        return True
    retry_types = (ReadTimeoutError, ConnectionClosedError, ResponseStreamingError, IncompleteReadError, ChecksumError)
    if any(isinstance(e, retry_types) for e in _chain(exc)):
        return True
    try:
        from s3transfer.exceptions import RetriesExceededError
    except ImportError:  # pragma: no cover - s3transfer ships with boto3
        return False
    return isinstance(exc, RetriesExceededError)


def translate(exc: BaseException, *, op: str, bucket: str | None, key: str | None, endpoint: str) -> S3StoreError:
    """Map any failure of ``op`` on s3://bucket/key to one S3StoreError with a fix."""
    from botocore.exceptions import (
        BotoCoreError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
        SSLError,
    )

    if isinstance(exc, S3StoreError):
        return exc
    code, status = classify(exc)
    where = f"s3://{bucket}/{key or ''}" if bucket else "S3"
    at = f"{where} at {endpoint}"
    chain = _chain(exc)

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    retryable = is_retryable(exc)
    if has(NoCredentialsError, PartialCredentialsError):
        msg, hint, code = (
            f"{op}: no S3 credentials found for {at}",
            "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY via credentialsSecretRef (or an IAM role)",
            "NoCredentials",
        )
    elif code in AUTH_CODES:
        msg, hint = f"{op}: {code} for {at}", SECRET_HINT
        if code == "SignatureDoesNotMatch":
            hint = "the secret access key does not match the key id: " + SECRET_HINT
        elif code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
            hint = "the session token expired or is invalid: refresh AWS_SESSION_TOKEN in the Secret"
    elif code == "NoSuchBucket":
        msg, hint = (
            f"{op}: bucket {bucket!r} does not exist at {endpoint}",
            "create the bucket or fix the bucket name in the URI (spec.output.uri / the input URI)",
        )
    elif code in NOT_FOUND_CODES:
        msg, hint = f"{op}: {where} not found at {endpoint}", "check the key in the URI; a prefix must end with '/'"
    elif has(SSLError):
        msg, hint, code = (
            f"{op}: TLS verification failed for {at}",
            "set AWS_CA_BUNDLE to the endpoint's CA certificate (mounted into the pod)",
            "SSLError",
        )
    elif has(EndpointConnectionError, ConnectTimeoutError):
        msg, hint = (
            f"{op}: cannot connect to the S3 endpoint for {at}",
            "check AWS_ENDPOINT_URL, DNS, network policies and that the endpoint is up",
        )
    elif has(ReadTimeoutError):
        msg, hint = (
            f"{op}: the S3 endpoint stopped answering (read timeout) for {at}",
            "the endpoint is overloaded or a proxy stalls; raise MODELDEPLOY_S3_READ_TIMEOUT or retry later",
        )
    elif code in THROTTLE_CODES:
        msg, hint = (
            f"{op}: S3 kept throttling ({code}) for {at} after retries",
            "lower MODELDEPLOY_S3_CONCURRENCY or retry later",
        )
    elif status is not None and status >= 500:
        msg, hint = (
            f"{op}: S3 server error {code} (HTTP {status}) for {at} after retries",
            "the endpoint is failing; check its health and retry",
        )
    elif isinstance(exc, OSError) and not isinstance(exc, BotoCoreError):
        msg = f"{op}: local file error for {at}: {exc.strerror or exc} ({exc.filename or 'no file name'})"
        hint, code = "check free disk space and that MODELDEPLOY_CACHE and the work dir are writable", "LocalIOError"
    elif retryable:
        msg, hint = (
            f"{op}: connection to the S3 endpoint broke ({code}) for {at} after retries",
            "check the network path to AWS_ENDPOINT_URL",
        )
    else:
        msg, hint = f"{op}: {code} for {at}: {_server_message(exc)}", "see the S3 error code above"
    return S3StoreError(msg, hint=hint, code=code, bucket=bucket, key=key, endpoint=endpoint, retryable=retryable)


def _server_message(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    for e in _chain(exc):
        if isinstance(e, ClientError):
            err: dict[str, Any] = e.response.get("Error", {}) or {}
            return " ".join(str(err.get("Message") or "").split())[:200]
    return " ".join(str(exc).split())[:200]
