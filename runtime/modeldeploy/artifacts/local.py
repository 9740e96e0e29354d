"""Local-directory artifact store (the embedded default; ``file://`` URIs too).

Every write goes to a unique temp sibling and is ``os.replace``d; a failed write removes its
temp file (no ``.partial`` is ever left) and any OSError (read-only, full, not permitted)
becomes one LocalStorageError (localio.py). ``put_conditional`` is a compare-and-swap under
an exclusive ``flock`` on ``.<name>.lock`` next to the object.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from modeldeploy.artifacts.base import (
    MANIFEST_NAME,
    ArtifactRecord,
    ArtifactStore,
    IntegrityError,
    LocalArtifact,
    install_verified,
    sha256_file,
    temp_path_for,
)
from modeldeploy.artifacts.cas import validate_key
from modeldeploy.artifacts.localio import translating
from modeldeploy.errors import ArtifactStoreError

log = logging.getLogger(__name__)


def _path_of(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


class LocalArtifactStore(ArtifactStore):
    def __init__(self, uri: str, *, cas_uri: str | None = None) -> None:
        root = _path_of(uri).resolve()
        super().__init__(root.as_uri(), cas_uri=cas_uri)
        self.root = root
        with translating("cannot create the artifact directory", self.root):
            self.root.mkdir(parents=True, exist_ok=True)

    def _dest(self, name: str) -> Path:
        dest = (self.root / name).resolve()
        if self.root not in dest.parents and dest != self.root:
            raise ArtifactStoreError(f"artifact name {name!r} escapes the store root", hint="use a relative name")
        return dest

    def _write_atomically(self, dest: Path, write: Callable[[Path], object], what: str) -> None:
        """write(tmp) then os.replace(tmp, dest); the temp file never survives a failure."""
        tmp = temp_path_for(dest)
        with translating(what, dest):
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                write(tmp)
                os.replace(tmp, dest)  # atomic rename: never a half-written file under the final name
            finally:
                tmp.unlink(missing_ok=True)

    def put_file(self, local: LocalArtifact) -> ArtifactRecord:
        src = Path(local.path)
        dest = self._dest(local.name)
        digest = sha256_file(src)
        if src.resolve() != dest:
            self._write_atomically(dest, lambda tmp: shutil.copyfile(src, tmp), f"publishing {local.name}")
        return ArtifactRecord(local.name, local.kind, dest.as_uri(), digest, dest.stat().st_size)

    def put_bytes(self, name: str, data: bytes, kind: str) -> ArtifactRecord:
        dest = self._dest(name)
        self._write_atomically(dest, lambda tmp: tmp.write_bytes(data), f"publishing {name}")
        return ArtifactRecord(name, kind, dest.as_uri(), hashlib.sha256(data).hexdigest(), len(data))

    def child(self, rel: str) -> LocalArtifactStore:
        return LocalArtifactStore(str(self._dest(rel)), cas_uri=self.cas_uri)

    def delete(self, name: str) -> None:
        with translating(f"deleting {name}", self._dest(name)):
            self._dest(name).unlink(missing_ok=True)

    def read_versioned(self, name: str) -> tuple[bytes | None, str | None]:
        path = self._dest(name)
        if not path.is_file():
            return None, None
        data = path.read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    def put_conditional(self, name: str, data: bytes, *, expected_version: str | None) -> bool:
        dest = self._dest(name)
        lock = dest.with_name(f".{dest.name}.lock")
        with translating(f"updating {name}", dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(lock, "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # serialises writers on this host (and on NFS with lockd)
                try:
                    _, current = self.read_versioned(name)
                    if current != expected_version:
                        return False
                    self._write_atomically(dest, lambda tmp: tmp.write_bytes(data), f"updating {name}")
                    return True
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def get_file(self, name: str, dest: Path) -> Path:
        """Copy ``name`` to ``dest``; verified against the manifest when it lists ``name``."""
        src = self._dest(name)
        if not src.is_file():
            raise ArtifactStoreError(f"{src} does not exist in the artifact store", hint="check the URI")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        expected = self.manifest_sha256(name)
        if src == dest.resolve():
            if expected is not None and sha256_file(src) != expected:
                raise IntegrityError(src, expected, sha256_file(src))
            return dest
        tmp = temp_path_for(dest)
        shutil.copyfile(src, tmp)
        install_verified(tmp, dest, expected)
        return dest

    def exists(self, name: str) -> bool:
        return self._dest(name).is_file()

    def invalidate_manifest(self) -> None:
        with translating("removing the previous manifest", self._dest(MANIFEST_NAME)):
            self._dest(MANIFEST_NAME).unlink(missing_ok=True)

    # -- content-addressed blobs: <cas root>/<key> + <key>.sha256 sidecar (the commit marker) --

    def _cas_paths(self, key: str) -> tuple[Path, Path]:
        if self.cas_uri.startswith("s3://"):
            raise ArtifactStoreError(
                f"a local store cannot use the S3 blob area {self.cas_uri}",
                hint="unset MODELDEPLOY_CAS_URI or use an s3:// --artifact-uri",
            )
        blob = _path_of(self.cas_uri).resolve() / validate_key(key)
        return blob, blob.with_name(blob.name + ".sha256")

    def cas_put(self, key: str, path: Path) -> ArtifactRecord:
        blob, sidecar = self._cas_paths(key)
        digest = sha256_file(path)
        size = Path(path).stat().st_size
        if not (
            sidecar.is_file()
            and sidecar.read_text().strip() == digest
            and blob.is_file()
            and blob.stat().st_size == size
        ):
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_path_for(blob)
            shutil.copyfile(path, tmp)
            os.replace(tmp, blob)
            tmp = temp_path_for(sidecar)
            tmp.write_text(digest + "\n")
            os.replace(tmp, sidecar)  # written after the blob: a blob without it is a miss
        return ArtifactRecord(key, "cas", blob.as_uri(), digest, size)

    def cas_get(self, key: str, dest: Path) -> Path | None:
        blob, sidecar = self._cas_paths(key)
        if not (blob.is_file() and sidecar.is_file()):
            return None
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(dest)
        shutil.copyfile(blob, tmp)
        try:
            install_verified(tmp, dest, sidecar.read_text().strip())
        except IntegrityError as exc:
            log.warning("content-addressed blob %s is corrupt (%s); treating it as a miss", blob, exc)
            return None
        return dest
