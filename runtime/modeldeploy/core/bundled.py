"""The "bundled sample": a project's synthetic dataset, generated once into the cache.

Every project ships a deterministic generator instead of data files; this makes the
generated copy appear atomically (temp dir + rename) so concurrent runs (several pods on
one node, parallel tests) never see a half-written dataset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    return Path(os.environ.get("MODELDEPLOY_CACHE") or Path.home() / ".cache" / "modeldeploy")


def materialize_dataset(name: str, marker: str, generate: Callable[[Path], Any], root: Path | None = None) -> Path:
    """Return ``<cache>/datasets/<name>/<marker>``, running ``generate(tmp_dir)`` first if absent."""
    base = (root or cache_root()) / "datasets"
    final = base / name
    if (final / marker).is_file():
        return final / marker
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=base))
    try:
        generate(tmp)
        try:
            tmp.rename(final)
        except OSError:
            if not (final / marker).is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final / marker
