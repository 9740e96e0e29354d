"""What identifies a run in results.json: id, UTC timestamps, and sha256 of its inputs.

Two results.json can only be compared honestly when it is known what produced them: the same
checkpoint and configs (hashes) on which versions and hardware (environment).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from modeldeploy.artifacts import sha256_file
from modeldeploy.core.results import InputFile, RunInfo


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_info(run_id: str) -> RunInfo:
    from modeldeploy import __version__

    return RunInfo(id=run_id, started_at=utc_now(), finished_at=None, modeldeploy=__version__)


def file_info(path: str | Path | None, shown: str | None = None) -> InputFile | None:
    """``shown``: the name the user gave (a builtin:/s3:// URI), recorded instead of a cache path."""
    if path is None:
        return None
    p = Path(path)
    return InputFile(path=shown or str(p), sha256=sha256_file(p) if p.is_file() else None)
