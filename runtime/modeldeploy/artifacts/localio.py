"""Local filesystem failures (read-only, full, not permitted) as one clear LocalStorageError.

Why: an ``OSError`` escaping from a copy or mkdir ends in a traceback and exit 1, which the
Job retries although a retry gets the same volume. ``storage_error`` names the path, what
was being done, the cause in words and the fix; ``translating`` wraps a block with it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modeldeploy.errors import LocalStorageError

_CAUSES = {
    errno.EROFS: (
        "ReadOnlyStorage",
        "is on a read-only filesystem",
        "mount a writable volume there (in a pod: an emptyDir) or choose another directory",
    ),
    errno.ENOSPC: (
        "NoSpace",
        "has no space left",
        "free space or give the volume more room (in a pod: raise the emptyDir sizeLimit / ephemeral-storage)",
    ),
    errno.EDQUOT: ("NoSpace", "is over its disk quota", "free space or raise the quota"),
    errno.EACCES: (
        "PermissionDenied",
        "is not writable by this user",
        "make it writable for the runtime's user (uid 1000 in the image) or choose another directory",
    ),
    errno.EPERM: (
        "PermissionDenied",
        "is not writable by this user",
        "make it writable for the runtime's user or choose another directory",
    ),
}


def storage_error(exc: OSError, what: str, path: str | os.PathLike[str] | None = None) -> LocalStorageError:
    """One LocalStorageError for ``exc`` raised while doing ``what`` on ``path``."""
    where = str(path or exc.filename or "?")
    reason, cause, fix = _CAUSES.get(
        exc.errno or -1, ("LocalIOError", "failed", "check the path, free space and permissions")
    )
    err = LocalStorageError(f"{what}: {where} {cause} ({exc.strerror or type(exc).__name__})", hint=fix, reason=reason)
    err.errno = exc.errno  # type: ignore[attr-defined]
    return err


@contextmanager
def translating(what: str, path: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Re-raise any OSError in the block as ``storage_error(...)``."""
    try:
        yield
    except LocalStorageError:
        raise
    except OSError as exc:
        raise storage_error(exc, what, path) from exc


def probe_writable(directory: Path, what: str) -> None:
    """Create ``directory`` and write+remove a probe file in it; LocalStorageError if that fails."""
    probe = directory / f".probe-{os.getpid()}-{os.urandom(4).hex()}"
    with translating(what, directory):
        directory.mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as f:
                f.write(b"probe\n")
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
