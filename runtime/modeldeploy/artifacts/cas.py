"""Content-addressed blob keys and where the shared blob area lives.

Why: a TensorRT engine or an ONNX export is a pure function of its inputs (ONNX sha256,
TensorRT version, compute capability, precision, profiles). The exporter hashes those
inputs into a key; ``store.cas_get(key, dest)`` finds a blob another node already built,
``store.cas_put(key, path)`` shares a fresh one. Blobs live OUTSIDE a run's output prefix
so runs with different prefixes share them:

  S3 store ``s3://bucket/any/prefix``  -> ``s3://bucket/cas/<key>``
  local store                          -> ``${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/cas/<key>``
  ``MODELDEPLOY_CAS_URI`` (or the store's ``cas_uri=`` argument) overrides either root,
  with the same scheme as the store.

Each blob carries the sha256 of its CONTENT (S3 object metadata ``sha256``; a local
``<key>.sha256`` sidecar written after the blob as its commit marker), so a reader
verifies what it got; a blob that fails verification is a miss, not an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modeldeploy.errors import ArtifactStoreError

CAS_DIRNAME = "cas"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")


def validate_key(key: str) -> str:
    """Keys are relative, '/'-separated, no '..' or empty parts: safe as a path and an S3 key."""
    if not _KEY.match(key) or ".." in key.split("/") or len(key) > 512:
        raise ArtifactStoreError(
            f"invalid content-addressed key {key!r}",
            hint="use [A-Za-z0-9._-] parts joined by '/', e.g. 'trt/<sha256>.engine'",
        )
    return key


def cache_home() -> Path:
    """The node-local cache root (also used by fetch.py)."""
    return Path(os.environ.get("MODELDEPLOY_CACHE") or Path.home() / ".cache" / "modeldeploy").expanduser()


def default_cas_uri(store_uri: str) -> str:
    """Where blobs live for a store at ``store_uri`` unless overridden (see module docstring)."""
    override = os.environ.get("MODELDEPLOY_CAS_URI")
    if override:
        return override.rstrip("/")
    if store_uri.startswith("s3://"):
        bucket = store_uri[len("s3://") :].split("/", 1)[0]
        return f"s3://{bucket}/{CAS_DIRNAME}"
    return str(cache_home() / CAS_DIRNAME)
