"""ArtifactStore: where a run's outputs are published, chosen by URI.

Publishing protocol (the same for every store): upload every artifact, then write
``manifest.json`` (name, kind, bytes, sha256 of each) LAST as the commit marker. A prefix
without a manifest is incomplete by definition; consumers must read the manifest first.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
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

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

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

    def invalidate_manifest(self) -> None:
        """Remove a previous generation's manifest before overwriting its files."""

    def read_manifest(self) -> dict[str, Any] | None:
        import tempfile

        if not self.exists(MANIFEST_NAME):
            return None
        with tempfile.TemporaryDirectory() as d:
            p = self.get_file(MANIFEST_NAME, Path(d) / MANIFEST_NAME)
            return json.loads(p.read_text())
