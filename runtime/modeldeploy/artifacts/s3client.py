"""Object-level S3 operations shared by the store, fetch() and the blob area.

One job: move bytes between a local file and ``s3://bucket/key`` safely —
multipart + concurrency through boto3's transfer manager, sha256 in the object metadata
(``x-amz-meta-sha256``) plus S3's additional checksum (CRC32 by default) per part,
downloads to a temp file that is verified and then ``os.replace``d, whole-transfer retries
(retry.py) on top of botocore's per-request retries, and every failure translated into one
``S3StoreError`` (s3errors.py).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from modeldeploy.artifacts.base import IntegrityError, install_verified, temp_path_for
from modeldeploy.artifacts.retry import call_with_retries
from modeldeploy.artifacts.s3config import S3Settings
from modeldeploy.artifacts.s3errors import NOT_FOUND_CODES, S3StoreError, classify, is_retryable, translate
from modeldeploy.errors import ArtifactStoreError

T = TypeVar("T")
log = logging.getLogger(__name__)
SHA256_META = "sha256"  # stored as x-amz-meta-sha256


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ("bucket", "some/key"); the key part may be empty."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ArtifactStoreError(f"not an S3 URI: {uri!r}", hint="use s3://bucket/prefix")
    return parsed.netloc, parsed.path.lstrip("/")


class S3Objects:
    """A configured client plus the safe transfer primitives. Cheap to create; thread-safe."""

    def __init__(self, settings: S3Settings | None = None, client: Any | None = None) -> None:
        self.settings = settings or S3Settings.from_env()
        self.client = client if client is not None else self.settings.make_client()
        self.transfer_config = self.settings.transfer_config()

    # -- error handling -------------------------------------------------------------------

    def _run(
        self,
        op: str,
        bucket: str,
        key: str | None,
        fn: Callable[[], T],
        *,
        retry: bool = True,
        extra_retryable: Callable[[BaseException], bool] | None = None,
    ) -> T:
        def retryable(exc: BaseException) -> bool:
            return is_retryable(exc) or (extra_retryable is not None and extra_retryable(exc))

        try:
            if not retry:
                return fn()
            return call_with_retries(
                fn, policy=self.settings.transfer_retry, is_retryable=retryable, what=f"{op} s3://{bucket}/{key or ''}"
            )
        except IntegrityError:
            raise
        except S3StoreError:
            raise
        except Exception as exc:  # translated into one ArtifactStoreError with bucket/key/endpoint/fix
            raise translate(exc, op=op, bucket=bucket, key=key, endpoint=self.settings.endpoint_label) from exc

    # -- primitives -----------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """HeadObject, or None when the object does not exist (a missing bucket still raises)."""

        def call() -> dict[str, Any] | None:
            try:
                return dict(self.client.head_object(Bucket=bucket, Key=key))
            except Exception as exc:
                code, status = classify(exc)
                if code in NOT_FOUND_CODES or status == 404:
                    self._require_bucket(bucket)  # HEAD cannot tell a missing key from a missing bucket
                    return None
                raise

        return self._run("HeadObject", bucket, key, call, retry=False)

    def _require_bucket(self, bucket: str) -> None:
        """HeadBucket; its body-less 404 is re-raised as NoSuchBucket so the message says so."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except Exception as exc:
            code, status = classify(exc)
            if code in NOT_FOUND_CODES or status == 404:
                raise _client_error("NoSuchBucket", "HeadBucket") from exc
            raise

    def upload(self, path: Path, bucket: str, key: str, sha256: str) -> None:
        """Multipart (above the part size) and concurrent; atomic: S3 shows the object only when complete."""
        extra: dict[str, Any] = {"Metadata": {SHA256_META: sha256}}
        if self.settings.checksum_algorithm:
            extra["ChecksumAlgorithm"] = self.settings.checksum_algorithm
        ctype = mimetypes.guess_type(str(path))[0]
        if ctype:
            extra["ContentType"] = ctype

        def call() -> None:
            self.client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=self.transfer_config)

        self._run("upload", bucket, key, call)

    def put_bytes(
        self, data: bytes, bucket: str, key: str, sha256: str, content_type: str = "application/octet-stream"
    ) -> None:
        extra: dict[str, Any] = {"Metadata": {SHA256_META: sha256}, "ContentType": content_type}
        if self.settings.checksum_algorithm:
            extra["ChecksumAlgorithm"] = self.settings.checksum_algorithm
        self._run("PutObject", bucket, key, lambda: self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra))

    def put_bytes_conditional(
        self,
        data: bytes,
        bucket: str,
        key: str,
        sha256: str,
        *,
        if_match: str | None,
        content_type: str = "application/json",
    ) -> bool:
        """PutObject with If-Match (``if_match``) or If-None-Match: * (``if_match`` None).

        Returns False on 412 PreconditionFailed / 409 ConditionalRequestConflict: another
        writer changed the object since it was read. Why conditional: S3 has no rename, so a
        compare-and-swap on the ETag is the only way two finishing runs cannot both "win".
        """
        extra: dict[str, Any] = {"Metadata": {SHA256_META: sha256}, "ContentType": content_type}
        if if_match is None:
            extra["IfNoneMatch"] = "*"
        else:
            extra["IfMatch"] = if_match

        def call() -> bool:
            try:
                self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
            except Exception as exc:
                code, status = classify(exc)
                if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                    return False
                if code == "NotImplemented" or status == 501:
                    return read_then_write()
                raise
            return True

        def read_then_write() -> bool:
            # An endpoint without conditional writes: compare, then write (docs/contracts.md §5 race window).
            log.warning(
                "s3://%s/%s: the endpoint does not support conditional writes; falling back to read-then-write",
                bucket,
                key,
            )
            _, etag = self.get_bytes_versioned(bucket, key)
            if etag != if_match:
                return False
            plain = {k: v for k, v in extra.items() if k not in ("IfMatch", "IfNoneMatch")}
            self.client.put_object(Bucket=bucket, Key=key, Body=data, **plain)
            return True

        return self._run("PutObject (conditional)", bucket, key, call)

    def get_bytes_versioned(self, bucket: str, key: str) -> tuple[bytes | None, str | None]:
        """(body, ETag) of a small object; (None, None) when missing."""

        def call() -> tuple[bytes | None, str | None]:
            try:
                resp = self.client.get_object(Bucket=bucket, Key=key)
            except Exception as exc:
                code, status = classify(exc)
                if code in NOT_FOUND_CODES or status == 404:
                    return None, None
                raise
            return bytes(resp["Body"].read()), str(resp.get("ETag"))

        return self._run("GetObject", bucket, key, call)

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """Small objects (manifests); None when missing."""

        def call() -> bytes | None:
            try:
                resp = self.client.get_object(Bucket=bucket, Key=key)
            except Exception as exc:
                code, status = classify(exc)
                if code in NOT_FOUND_CODES or status == 404:
                    return None
                raise
            return bytes(resp["Body"].read())

        return self._run("GetObject", bucket, key, call)

    def download(
        self,
        bucket: str,
        key: str,
        dest: Path,
        *,
        expected_sha256: str | None = None,
        head: dict[str, Any] | None = None,
    ) -> str:
        """Download to a temp file, verify, then os.replace onto ``dest``; returns the sha256.

        ``expected_sha256`` defaults to the object's sha256 metadata. A mismatch is retried
        (the corruption may have been in transit) and then raised as IntegrityError.
        """
        if head is None:
            head = self.head(bucket, key)
            if head is None:
                raise self.not_found(bucket, key)
        expected = expected_sha256 or (head.get("Metadata") or {}).get(SHA256_META)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> str:
            tmp = temp_path_for(dest)
            try:
                self.client.download_file(bucket, key, str(tmp), Config=self.transfer_config)
                return install_verified(tmp, dest, expected)
            finally:
                tmp.unlink(missing_ok=True)

        return self._run("download", bucket, key, attempt, extra_retryable=lambda e: isinstance(e, IntegrityError))

    def not_found(self, bucket: str, key: str, op: str = "download") -> S3StoreError:
        """The error for a missing object (HEAD gives no code of its own)."""
        return translate(
            _client_error("NoSuchKey", "HeadObject"),
            op=op,
            bucket=bucket,
            key=key,
            endpoint=self.settings.endpoint_label,
        )

    def delete(self, bucket: str, key: str) -> None:
        self._run("DeleteObject", bucket, key, lambda: self.client.delete_object(Bucket=bucket, Key=key))

    def list(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under ``prefix`` (Key, Size, ETag), paginated."""

        def pages() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                out.extend(page.get("Contents", []))
            return out

        yield from self._run("ListObjectsV2", bucket, prefix, pages)

    def abort_incomplete_uploads(self, bucket: str, prefix: str) -> int:
        """Abort multipart uploads left under ``prefix`` by a killed run (they cost storage, never show as objects)."""

        def call() -> int:
            n = 0
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
                for up in page.get("Uploads", []):
                    self.client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                    n += 1
            return n

        n = self._run("AbortMultipartUpload", bucket, prefix, call)
        if n:
            log.info("aborted %d incomplete multipart upload(s) under s3://%s/%s", n, bucket, prefix)
        return n


def _client_error(code: str, op: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "Not Found"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, op
    )
