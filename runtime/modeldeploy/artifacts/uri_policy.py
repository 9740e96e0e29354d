"""Which output locations a run may write to, checked when the config is loaded.

Why: ``--artifact-uri file:///etc`` was accepted (as root it would write into /etc and
delete /etc/manifest.json) and ``s3://bucket/../x`` was recorded as given (some gateways
normalise ``..``, others store it literally — either way it is not the prefix the user
reviewed). Both are refused with a ConfigError (exit 2) before any work.

Local outputs must resolve (symlinks followed) under an allowed root: the current
directory (unless it is ``/``), the work dir, the system temp dir, ``$HOME``,
``MODELDEPLOY_CACHE`` and every entry of ``MODELDEPLOY_ALLOWED_ROOTS`` (``:``- or
``,``-separated). System trees are refused even when an allowed root contains them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from modeldeploy.errors import ConfigError

DENIED = (
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/root/.ssh",
)
ALLOWED_ROOTS_ENV = "MODELDEPLOY_ALLOWED_ROOTS"


def _dot_segments(path: str) -> bool:
    return any(p in ("..", ".") for p in PurePosixPath(path).parts) or "/../" in f"/{path}/" or "/./" in f"/{path}/"


def allowed_roots(work_dir: Path | None = None) -> list[Path]:
    roots: list[Path] = []
    cwd = Path.cwd().resolve()
    if cwd != Path("/"):
        roots.append(cwd)
    if work_dir is not None:
        roots.append(Path(work_dir).resolve())
    roots.append(Path(tempfile.gettempdir()).resolve())
    home = os.environ.get("HOME")
    if home and Path(home).resolve() != Path("/"):
        roots.append(Path(home).resolve())
    cache = os.environ.get("MODELDEPLOY_CACHE")
    if cache:
        roots.append(Path(cache).expanduser().resolve())
    extra = os.environ.get(ALLOWED_ROOTS_ENV, "")
    for item in extra.replace(",", os.pathsep).split(os.pathsep):
        if item.strip():
            roots.append(Path(item.strip()).expanduser().resolve())
    return roots


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def check_local_output(path: Path, *, what: str, work_dir: Path | None = None) -> Path:
    """``path`` resolved, or ConfigError when it is a system directory or outside every allowed root."""
    resolved = Path(path).expanduser().resolve()
    denied = [Path(d) for d in DENIED]
    if resolved == Path("/") or _under(resolved, denied):
        raise ConfigError(
            f"{what} {resolved} is a system directory",
            hint="write outputs under the work dir, /tmp, $HOME or a directory listed in MODELDEPLOY_ALLOWED_ROOTS",
        )
    roots = allowed_roots(work_dir)
    if not _under(resolved, roots):
        raise ConfigError(
            f"{what} {resolved} is outside the allowed output roots ({', '.join(str(r) for r in roots)})",
            hint=f"choose a directory under one of them, or add its parent to {ALLOWED_ROOTS_ENV}",
        )
    return resolved


def check_artifact_uri(uri: str, *, work_dir: Path | None = None) -> str:
    """Validate an output URI (s3://bucket/prefix, file://…, or a path); return it unchanged."""
    text = str(uri)
    if text.startswith("s3://"):
        parsed = urlparse(text)
        if not parsed.netloc:
            raise ConfigError(f"artifact URI {text!r} has no bucket", hint="use s3://bucket/prefix")
        if _dot_segments(unquote(parsed.path).strip("/")) or "//" in parsed.path.strip("/"):
            raise ConfigError(
                f"artifact URI {text!r} contains '.', '..' or empty path segments",
                hint="write the prefix without them, e.g. s3://bucket/team/model",
            )
        return text
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(
            f"artifact URI {text!r} has an unsupported scheme", hint="use a directory, file://… or s3://bucket/prefix"
        )
    raw = unquote(urlparse(text).path) if text.startswith("file://") else text
    if _dot_segments(raw):
        raise ConfigError(
            f"artifact URI {text!r} contains '.' or '..' segments", hint="write the absolute directory without them"
        )
    check_local_output(Path(raw), what="artifact directory", work_dir=work_dir)
    return text


def check_input_uri(uri: str) -> None:
    """Refuse S3 input URIs with '.'/'..' segments (local relative paths are normal and allowed)."""
    text = str(uri)
    if text.startswith("s3://") and _dot_segments(unquote(urlparse(text).path).strip("/")):
        raise ConfigError(f"input URI {text!r} contains '.' or '..' segments", hint="write the object key without them")
