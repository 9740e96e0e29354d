"""Local-directory artifact store (the embedded default; ``file://`` URIs too)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from modeldeploy.artifacts.base import MANIFEST_NAME, ArtifactRecord, ArtifactStore, LocalArtifact, sha256_file
from modeldeploy.errors import ArtifactStoreError


def _path_of(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    return Path(uri)


class LocalArtifactStore(ArtifactStore):
    def __init__(self, uri: str) -> None:
        root = _path_of(uri).resolve()
        super().__init__(root.as_uri())
        self.root = root
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot create artifact directory {self.root}: {exc.strerror}", hint="choose a writable --artifact-uri") from exc

    def _dest(self, name: str) -> Path:
        dest = (self.root / name).resolve()
        if self.root not in dest.parents and dest != self.root:
            raise ArtifactStoreError(f"artifact name {name!r} escapes the store root", hint="use a relative name")
        return dest

    def put_file(self, local: LocalArtifact) -> ArtifactRecord:
        src = Path(local.path)
        dest = self._dest(local.name)
        digest = sha256_file(src)
        if src.resolve() != dest:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.partial")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)  # atomic rename: never a half-written file under the final name
        return ArtifactRecord(local.name, local.kind, dest.as_uri(), digest, dest.stat().st_size)

    def put_bytes(self, name: str, data: bytes, kind: str) -> ArtifactRecord:
        import hashlib

        dest = self._dest(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return ArtifactRecord(name, kind, dest.as_uri(), hashlib.sha256(data).hexdigest(), len(data))

    def get_file(self, name: str, dest: Path) -> Path:
        src = self._dest(name)
        if not src.is_file():
            raise ArtifactStoreError(f"{src} does not exist in the artifact store", hint="check the URI")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src != dest.resolve():
            shutil.copyfile(src, dest)
        return dest

    def exists(self, name: str) -> bool:
        return self._dest(name).is_file()

    def invalidate_manifest(self) -> None:
        m = self._dest(MANIFEST_NAME)
        if m.exists():
            m.unlink()
