"""S3 artifact store: ``s3://bucket/prefix`` (AWS S3, MinIO, Ceph RGW, any S3 endpoint).

Maps artifact names to keys under the prefix; the transfer mechanics live in
``s3client.S3Objects``. Publishing follows base.py's protocol; on S3 specifically:

* ``invalidate_manifest`` deletes ``<prefix>/manifest.json`` and aborts multipart uploads a
  killed run left under the prefix, BEFORE any artifact is overwritten — so a reader never
  sees an old manifest next to new objects;
* ``put_file`` skips an object already present with the same sha256 and size, so re-running
  an interrupted publish only uploads what is missing, then writes the manifest last.

Configuration comes from the environment (see s3config.py); credentials only from
botocore's default chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from modeldeploy.artifacts.base import (
    MANIFEST_NAME,
    ArtifactRecord,
    ArtifactStore,
    IntegrityError,
    LocalArtifact,
    sha256_file,
)
from modeldeploy.artifacts.cas import validate_key
from modeldeploy.artifacts.s3client import SHA256_META, S3Objects, parse_s3_uri
from modeldeploy.artifacts.s3config import S3Settings
from modeldeploy.errors import ArtifactStoreError

log = logging.getLogger(__name__)


class S3ArtifactStore(ArtifactStore):
    def __init__(
        self, uri: str, *, settings: S3Settings | None = None, client: Any | None = None, cas_uri: str | None = None
    ) -> None:
        bucket, prefix = parse_s3_uri(uri)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        super().__init__(f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}", cas_uri=cas_uri)
        self.objects = S3Objects(settings, client)
        self.settings = self.objects.settings

    def _key(self, name: str) -> str:
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ArtifactStoreError(
                f"artifact name {name!r} is not a clean relative path", hint="use names like 'onnx/model.onnx'"
            )
        return f"{self.prefix}/{name}" if self.prefix else name

    def _same_object(self, bucket: str, key: str, sha256: str, size: int) -> bool:
        head = self.objects.head(bucket, key)
        if not head:
            return False
        return head.get("ContentLength") == size and (head.get("Metadata") or {}).get(SHA256_META) == sha256

    def put_file(self, local: LocalArtifact) -> ArtifactRecord:
        path = Path(local.path)
        if not path.is_file():
            raise ArtifactStoreError(
                f"artifact {local.name!r}: local file {path} does not exist",
                hint="the stage that writes it failed or the path is wrong",
            )
        key = self._key(local.name)
        digest, size = sha256_file(path), path.stat().st_size
        if self._same_object(self.bucket, key, digest, size):
            log.info(
                "s3://%s/%s already holds this content (sha256 %s); not uploading again", self.bucket, key, digest[:12]
            )
        else:
            self.objects.upload(path, self.bucket, key, digest)
            head = self.objects.head(self.bucket, key)
            if not head or head.get("ContentLength") != size:
                raise ArtifactStoreError(
                    f"upload of s3://{self.bucket}/{key} at {self.settings.endpoint_label} ended with "
                    f"{(head or {}).get('ContentLength')} bytes instead of {size}",
                    hint="the endpoint lost data; retry the run",
                )
        return ArtifactRecord(local.name, local.kind, f"s3://{self.bucket}/{key}", digest, size)

    def put_bytes(self, name: str, data: bytes, kind: str) -> ArtifactRecord:
        key = self._key(name)
        digest = hashlib.sha256(data).hexdigest()
        ctype = "application/json" if name.endswith(".json") else "application/octet-stream"
        self.objects.put_bytes(data, self.bucket, key, digest, ctype)
        return ArtifactRecord(name, kind, f"s3://{self.bucket}/{key}", digest, len(data))

    def get_file(self, name: str, dest: Path) -> Path:
        """Download ``name``; verified against the manifest entry, else the object's sha256 metadata."""
        self.objects.download(self.bucket, self._key(name), Path(dest), expected_sha256=self.manifest_sha256(name))
        return Path(dest)

    def exists(self, name: str) -> bool:
        return self.objects.head(self.bucket, self._key(name)) is not None

    def child(self, rel: str) -> S3ArtifactStore:
        store = S3ArtifactStore.__new__(S3ArtifactStore)
        store.bucket, store.prefix = self.bucket, self._key(rel)
        ArtifactStore.__init__(store, f"s3://{self.bucket}/{store.prefix}", cas_uri=self.cas_uri)
        store.objects, store.settings = self.objects, self.settings  # one client for the whole run
        return store

    def delete(self, name: str) -> None:
        self.objects.delete(self.bucket, self._key(name))

    def read_versioned(self, name: str) -> tuple[bytes | None, str | None]:
        return self.objects.get_bytes_versioned(self.bucket, self._key(name))

    def put_conditional(self, name: str, data: bytes, *, expected_version: str | None) -> bool:
        return self.objects.put_bytes_conditional(
            data, self.bucket, self._key(name), hashlib.sha256(data).hexdigest(), if_match=expected_version
        )

    def invalidate_manifest(self) -> None:
        self.objects.delete(self.bucket, self._key(MANIFEST_NAME))
        self.objects.abort_incomplete_uploads(self.bucket, f"{self.prefix}/" if self.prefix else "")

    def read_manifest(self) -> dict[str, Any] | None:
        data = self.objects.get_bytes(self.bucket, self._key(MANIFEST_NAME))
        if data is None:
            return None
        try:
            return dict(json.loads(data))
        except ValueError as exc:
            raise ArtifactStoreError(
                f"s3://{self.bucket}/{self._key(MANIFEST_NAME)} is not valid JSON",
                hint="re-run the publish to rewrite it",
            ) from exc

    # -- content-addressed blobs --------------------------------------------------------------

    def _cas_location(self, key: str) -> tuple[str, str]:
        if not self.cas_uri.startswith("s3://"):
            raise ArtifactStoreError(
                f"an S3 store cannot use the local blob area {self.cas_uri}",
                hint="set MODELDEPLOY_CAS_URI to an s3:// URI or unset it",
            )
        bucket, root = parse_s3_uri(self.cas_uri)
        root = root.strip("/")
        return bucket, f"{root}/{validate_key(key)}" if root else validate_key(key)

    def cas_put(self, key: str, path: Path) -> ArtifactRecord:
        bucket, obj = self._cas_location(key)
        path = Path(path)
        digest, size = sha256_file(path), path.stat().st_size
        if not self._same_object(bucket, obj, digest, size):
            self.objects.upload(path, bucket, obj, digest)
        return ArtifactRecord(key, "cas", f"s3://{bucket}/{obj}", digest, size)

    def cas_get(self, key: str, dest: Path) -> Path | None:
        bucket, obj = self._cas_location(key)
        head = self.objects.head(bucket, obj)
        if head is None or not (head.get("Metadata") or {}).get(SHA256_META):
            return None  # a blob without its sha256 cannot be verified: treat as a miss
        try:
            self.objects.download(bucket, obj, Path(dest), head=head)
        except IntegrityError as exc:
            log.warning("content-addressed blob s3://%s/%s is corrupt (%s); treating it as a miss", bucket, obj, exc)
            return None
        return Path(dest)
