"""``fetch(uri)``: turn any input location (checkpoint, config, dataset) into a local path.

Accepted forms (docs/contracts.md §1):
  /abs/or/relative/path, file:///path   used in place (must exist)
  s3://bucket/key                       one object -> a cached file
  s3://bucket/prefix/                   every object under the prefix -> a cached directory
  builtin:<project>/<file>              runtime/modeldeploy/projects/<project>/{configs,assets}/<file>

A publication root (a directory or prefix holding ``current.json``, see publication.py)
resolves to the run the pointer names, after checking that run's manifest sha256 — so
``evaluation.backends.*.model_dir`` and checkpoints may name where a deployment publishes.
A missing input object is a user error (exit 2, reason InputNotFound, never retried); S3
input URIs with '.'/'..' segments are refused.

Why a cache: a Job restarted on the same node (or a node sharing a hostPath cache) should
not download a multi-GB checkpoint or dataset again. Cache layout under
``cache_dir`` (default ``${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/s3``):
  <bucket>/<sha256(key)[:32]>/<etag>/<basename>     one object; other ETags of the key are pruned
  <bucket>/<sha256(prefix)[:32]>/tree/...            a prefix, with .index.json {relpath: etag, size, sha256}
The cache is keyed by ETag (a HEAD/LIST per fetch says whether the object changed), and a
cached file is re-verified on every read: sha256 against the object's ``sha256`` metadata
(or the value recorded when it was downloaded) where there is one, size otherwise. A
corrupt cached file is logged and downloaded again. Downloads go to a temp file and are
``os.replace``d, so a crash never leaves a partial file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from modeldeploy.artifacts.base import POINTER_NAME, sha256_file, temp_path_for
from modeldeploy.artifacts.cas import cache_home
from modeldeploy.artifacts.s3client import SHA256_META, S3Objects, parse_s3_uri
from modeldeploy.artifacts.s3errors import NOT_FOUND_CODES, S3StoreError
from modeldeploy.artifacts.uri_policy import check_input_uri
from modeldeploy.errors import ArtifactStoreError, ConfigError

log = logging.getLogger(__name__)
BUILTIN_PACKAGE = "modeldeploy.projects"
BUILTIN_SUBDIRS = ("configs", "assets")
_INDEX = ".index.json"


class SourceNotFoundError(ConfigError):
    """A local path or builtin file that does not exist: a user error (exit 2), never retried."""

    reason = "SourceNotFound"


def default_cache_dir() -> Path:
    return cache_home() / "s3"


def fetch(
    uri: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    objects: S3Objects | None = None,
    builtin_package: str = BUILTIN_PACKAGE,
) -> Path:
    """Return a local path holding the content of ``uri`` (see module docstring).

    Raises SourceNotFoundError for a missing local/builtin file and ArtifactStoreError
    (exit code 4) for any S3 failure, including a missing object.
    """
    text = os.fspath(uri)
    if text.startswith("builtin:"):
        return resolve_builtin(text[len("builtin:") :], package=builtin_package)
    if text.startswith("s3://"):
        check_input_uri(text)
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        objs = objects or S3Objects()
        bucket, key = parse_s3_uri(text)
        try:
            return _fetch_s3(objs, bucket, key, cache)
        except S3StoreError as exc:
            if exc.code in NOT_FOUND_CODES:  # the user named an object that is not there: retrying cannot help
                exc.exit_code, exc.reason = 2, "InputNotFound"
            elif (
                exc.code == "LocalIOError"
            ):  # the download cache is full or read-only: a retry on this node fails the same way
                exc.exit_code = 2
            raise
        except OSError as exc:  # S3 errors arrive translated; an OSError here is the local cache
            from modeldeploy.artifacts.localio import storage_error

            reason = storage_error(
                exc, "download cache"
            ).reason  # ReadOnlyStorage | NoSpace | PermissionDenied | LocalIOError
            err = ArtifactStoreError(
                f"cannot write the download cache {cache}: {exc.strerror or exc}",
                hint="set MODELDEPLOY_CACHE to a writable directory with room for the inputs (e.g. under the work dir)",
                reason=reason,
            )
            err.exit_code = 2  # the same node/volume would fail the same way: not retried
            raise err from exc
    path = Path(unquote(urlparse(text).path)) if text.startswith("file://") else Path(text).expanduser()
    if not path.exists():
        raise SourceNotFoundError(
            f"{text} does not exist", hint="check the path, or use s3://bucket/key or builtin:<project>/<file>"
        )
    if path.is_dir() and (path / POINTER_NAME).is_file():
        return _current_local(path)
    return path


def _current_local(root: Path) -> Path:
    from modeldeploy.artifacts.local import LocalArtifactStore
    from modeldeploy.artifacts.publication import resolve_current_prefix

    uri = resolve_current_prefix(LocalArtifactStore(str(root)))
    log.info("%s is a publication root: reading the current run %s", root, uri)
    return Path(unquote(urlparse(uri).path)) if uri else root


def _fetch_s3(objs: S3Objects, bucket: str, key: str, cache: Path) -> Path:
    if key == "" or key.endswith("/"):
        current = _current_s3(objs, bucket, key)
        return _fetch_prefix(objs, bucket, current or key, cache)
    head = objs.head(bucket, key)
    if head is None and _first(objs.list(bucket, key + "/")):
        current = _current_s3(objs, bucket, key + "/")
        return _fetch_prefix(objs, bucket, current or key + "/", cache)  # s3://b/dataset meant the directory
    return _fetch_object(objs, bucket, key, cache, head)


def _current_s3(objs: S3Objects, bucket: str, prefix: str) -> str | None:
    """The key prefix of the run ``<prefix>current.json`` names (verified), or None."""
    if objs.head(bucket, prefix + POINTER_NAME) is None:
        return None
    from modeldeploy.artifacts.publication import resolve_current_prefix
    from modeldeploy.artifacts.s3 import S3ArtifactStore

    root = S3ArtifactStore(f"s3://{bucket}/{prefix}", settings=objs.settings, client=objs.client)
    uri = resolve_current_prefix(root)
    log.info("s3://%s/%s is a publication root: reading the current run %s", bucket, prefix, uri)
    return parse_s3_uri(uri)[1].rstrip("/") + "/" if uri else None


def _first(it: Any) -> list[Any]:
    for item in it:
        return [item]
    return []


# -- builtin ------------------------------------------------------------------------------


def resolve_builtin(spec: str, *, package: str = BUILTIN_PACKAGE) -> Path:
    """``<project>/<file>`` inside the installed package; the error lists what exists."""
    project, _, name = spec.partition("/")
    if not project or not name or ".." in PurePosixPath(name).parts:
        raise SourceNotFoundError(f"builtin:{spec} is not of the form builtin:<project>/<file>")
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise SourceNotFoundError(
            f"builtin:{spec}: package {package} is not installed", hint="install the runtime package"
        ) from None
    proj = root / project
    if not proj.is_dir():
        projects = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise SourceNotFoundError(
            f"builtin:{spec}: no builtin project {project!r}",
            hint=f"available projects: {', '.join(projects) or 'none'}",
        )
    for sub in BUILTIN_SUBDIRS:
        candidate = proj / sub
        for part in PurePosixPath(name).parts:
            candidate = candidate / part
        if candidate.is_file():
            return _as_real_path(candidate, project, name)
    available = sorted(
        f"{sub}/{p.name}"
        for sub in BUILTIN_SUBDIRS
        if (proj / sub).is_dir()
        for p in (proj / sub).iterdir()
        if p.is_file() and not p.name.startswith(("_", "."))
    )
    raise SourceNotFoundError(
        f"builtin:{spec}: {name!r} is not shipped with project {project!r}",
        hint=f"available files: {', '.join(available) or 'none'}",
    )


def _as_real_path(res: Any, project: str, name: str) -> Path:
    if isinstance(res, Path):
        return res
    # A zipped install: copy the resource out once, atomically.
    dest = cache_home() / "builtin" / project / name
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(dest)
        tmp.write_bytes(res.read_bytes())
        os.replace(tmp, dest)
    return dest


# -- S3 -----------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _etag_dir(etag: str) -> str:
    return "".join(c for c in etag if c.isalnum() or c == "-") or "noetag"


def _cached_ok(path: Path, size: int | None, sha256: str | None) -> bool:
    """Re-verify a cached file; a mismatch is logged and means 'download again'."""
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        log.warning("cached %s has %d bytes, expected %d: downloading again", path, path.stat().st_size, size)
        return False
    if sha256 and sha256_file(path) != sha256:
        log.warning("cached %s fails its sha256 check: downloading again", path)
        return False
    return True


def _fetch_object(objs: S3Objects, bucket: str, key: str, cache: Path, head: dict[str, Any] | None) -> Path:
    if head is None:
        raise objs.not_found(bucket, key, op="fetch")
    key_dir = cache / bucket / _digest(key)
    etag = _etag_dir(str(head.get("ETag", "")))
    dest = key_dir / etag / PurePosixPath(key).name
    sha = (head.get("Metadata") or {}).get(SHA256_META)
    if _cached_ok(dest, head.get("ContentLength"), sha):
        log.info("s3://%s/%s: cache hit %s", bucket, key, dest)
        return dest
    objs.download(bucket, key, dest, head=head)
    for old in key_dir.iterdir():
        if old.name != etag and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # an older ETag of this key: no longer reachable
    return dest


def _fetch_prefix(objs: S3Objects, bucket: str, prefix: str, cache: Path) -> Path:
    listing = {o["Key"][len(prefix) :]: o for o in objs.list(bucket, prefix) if not o["Key"].endswith("/")}
    tree = cache / bucket / _digest(prefix) / "tree"
    index_path = tree.parent / _INDEX
    index: dict[str, dict[str, Any]] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    if not listing:
        raise objs.not_found(bucket, prefix, op="fetch (no objects under the prefix)")
    for rel in listing:
        if ".." in PurePosixPath(rel).parts or rel.startswith("/"):
            raise ConfigError(f"s3://{bucket}/{prefix}{rel}: key escapes the prefix", hint="rename the object")
    tree.mkdir(parents=True, exist_ok=True)

    def one(rel: str) -> tuple[str, dict[str, Any]]:
        obj = listing[rel]
        dest = tree / rel
        prev = index.get(rel)
        if prev and prev.get("etag") == obj["ETag"] and _cached_ok(dest, obj["Size"], prev.get("sha256")):
            return rel, prev
        head = objs.head(bucket, prefix + rel)
        if head is None:
            raise ConfigError(
                f"s3://{bucket}/{prefix}{rel} vanished while fetching the prefix",
                hint="retry when the upload to it is finished",
            )
        sha = objs.download(bucket, prefix + rel, dest, head=head)
        return rel, {"etag": head.get("ETag", obj["ETag"]), "size": obj["Size"], "sha256": sha}

    workers = max(1, min(objs.settings.concurrency, len(listing)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        new_index = dict(pool.map(one, sorted(listing)))
    for stale in set(index) - set(new_index):
        (tree / stale).unlink(missing_ok=True)
    tmp = temp_path_for(index_path)
    tmp.write_text(json.dumps(new_index, indent=1, sort_keys=True))
    os.replace(tmp, index_path)
    return tree
