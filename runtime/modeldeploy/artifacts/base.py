"""ArtifactStore: where a run's outputs are published, chosen by URI.

Publishing protocol (the same for every store): delete the previous manifest, upload
every artifact, then write ``manifest.json`` (name, kind, bytes, sha256 of each) LAST as
the commit marker. Semantics a consumer can rely on:

* a prefix without ``manifest.json`` is incomplete (a run is uploading, or died);
* a prefix with a manifest holds exactly the listed files at the listed sha256 — objects
  not listed (left from an older generation) are not part of it and must be ignored;
* re-running a publish after an interruption completes it (the S3 store skips objects
  already present with the same sha256) or replaces it with the new generation.

Content-addressed blobs (``cas_get``/``cas_put``) share built engines/exports between
runs and nodes; see ``cas.py``.

The runner never publishes into a prefix another run uses: each run gets its own
``<uri>/runs/<run key>/`` and only a verified run moves the ``<uri>/current.json`` pointer
(``publication.py``), through ``put_conditional`` (a compare-and-swap on the store).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modeldeploy.errors import ArtifactStoreError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
POINTER_NAME = "current.json"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ArtifactRecord:
    name: str  # path relative to the store prefix, e.g. "onnx/model.onnx"
    kind: str  # onnx | onnx_data | engine | report | results | log | predictions | other
    uri: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LocalArtifact:
    """A file in the work dir that should be published under ``name``."""

    path: Path
    name: str
    kind: str


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def install_verified(tmp: Path, dest: Path, expected_sha256: str | None) -> str:
    """Move a finished download ``tmp`` to ``dest`` iff its sha256 matches; return the digest.

    Why: readers must never see a partial or corrupt file under the final name, so the
    check happens on the temp file and ``os.replace`` (atomic on one filesystem) publishes it.
    On mismatch the temp file is removed and ``IntegrityError`` is raised.
    """
    digest = sha256_file(tmp)
    if expected_sha256 is not None and digest != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(dest, expected_sha256, digest)
    os.replace(tmp, dest)
    return digest


def temp_path_for(dest: Path) -> Path:
    """A unique sibling of ``dest`` (same filesystem, so os.replace is atomic)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{os.urandom(4).hex()}.partial")


class IntegrityError(ArtifactStoreError):
    """A downloaded/cached file whose sha256 differs from the recorded one (callers refetch or report)."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}",
            hint="the stored object was modified or corrupted after it was recorded; publish/fetch it again",
        )
        self.path, self.expected, self.actual = path, expected, actual


def build_manifest(records: list[ArtifactRecord], *, run_id: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "run_id": run_id,
        "artifacts": [
            {"name": r.name, "kind": r.kind, "bytes": r.bytes, "sha256": r.sha256, "uri": r.uri} for r in records
        ],
    }


class ArtifactStore(ABC):
    """Publish files under a prefix; read files back by URI, verified."""

    def __init__(self, uri: str, *, cas_uri: str | None = None) -> None:
        from modeldeploy.artifacts.cas import default_cas_uri

        self.uri = uri.rstrip("/")
        self.cas_uri = (cas_uri or default_cas_uri(self.uri)).rstrip("/")

    def uri_for(self, name: str) -> str:
        return f"{self.uri}/{name}"

    @abstractmethod
    def put_file(self, local: LocalArtifact) -> ArtifactRecord:
        """Upload one file (atomically: never a partial object under the final name)."""

    @abstractmethod
    def put_bytes(self, name: str, data: bytes, kind: str) -> ArtifactRecord: ...

    @abstractmethod
    def get_file(self, name: str, dest: Path) -> Path:
        """Download ``name`` under this prefix to ``dest``; verify against the manifest when present."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    def publish(self, files: list[LocalArtifact], *, run_id: str) -> list[ArtifactRecord]:
        """Upload all files, then the manifest last (the commit marker)."""
        self.invalidate_manifest()
        records = [self.put_file(f) for f in files]
        manifest = build_manifest(records, run_id=run_id)
        self.put_bytes(MANIFEST_NAME, json.dumps(manifest, indent=2).encode(), "manifest")
        return records

    def invalidate_manifest(self) -> None:  # noqa: B027 - optional hook: a store without manifests has nothing to remove
        """Remove a previous generation's manifest before overwriting its files."""

    @abstractmethod
    def child(self, rel: str) -> ArtifactStore:
        """The store at ``<this prefix>/<rel>`` (same settings and blob area)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name`` under this prefix (missing is fine)."""

    @abstractmethod
    def read_versioned(self, name: str) -> tuple[bytes | None, str | None]:
        """(content, version token) of a small object; (None, None) when it does not exist.

        The token is what ``put_conditional`` compares against (S3: the ETag; local: sha256).
        """

    @abstractmethod
    def put_conditional(self, name: str, data: bytes, *, expected_version: str | None) -> bool:
        """Replace ``name`` only if it still has ``expected_version`` (None: only if absent).

        Returns False when another writer changed it first (the caller re-reads and decides).
        Why: two runs finishing together must not both believe they moved the pointer.
        """

    def preflight(self) -> None:
        """Write and delete a probe object: fails fast (before any GPU work) on an unwritable
        store or bad credentials, with the store's own one-line error."""
        name = f".preflight-{os.getpid()}-{os.urandom(4).hex()}"
        self.put_bytes(name, b"modeldeploy preflight probe\n", "probe")
        self.delete(name)

    def cas_get(self, key: str, dest: Path) -> Path | None:
        """Fetch the content-addressed blob ``key`` to ``dest`` (verified); None on a miss."""
        raise NotImplementedError(f"{type(self).__name__} has no content-addressed blob area")

    def cas_put(self, key: str, path: Path) -> ArtifactRecord:
        """Share ``path`` under ``key`` (idempotent: an identical blob is not uploaded again)."""
        raise NotImplementedError(f"{type(self).__name__} has no content-addressed blob area")

    def manifest_sha256(self, name: str) -> str | None:
        """The sha256 the current manifest records for ``name`` (None: no manifest or not listed)."""
        if name == MANIFEST_NAME:
            return None
        manifest = self.read_manifest()
        for entry in (manifest or {}).get("artifacts", []):
            if entry.get("name") == name:
                return str(entry["sha256"])
        return None

    def read_manifest(self) -> dict[str, Any] | None:
        import tempfile

        if not self.exists(MANIFEST_NAME):
            return None
        with tempfile.TemporaryDirectory() as d:
            p = self.get_file(MANIFEST_NAME, Path(d) / MANIFEST_NAME)
            return json.loads(p.read_text())
