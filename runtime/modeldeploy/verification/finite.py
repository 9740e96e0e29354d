"""Keep NaN/Inf out of every JSON document the runtime writes.

Why: Python's ``json`` writes bare ``NaN``/``Infinity`` by default, which is not JSON — a
consumer (the operator, a dashboard, ``jq``) fails on it or, worse, a NaN metric reads as
a number. Non-finite values are replaced by ``null`` and reported, so the caller can turn
them into a failure; writers then use ``allow_nan=False`` as the last guard.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from modeldeploy.artifacts.base import temp_path_for


def sanitize_nonfinite(obj: Any, path: str = "$") -> tuple[Any, list[str]]:
    """(copy of ``obj`` with non-finite floats → None, JSON paths of the values replaced)."""
    found: list[str] = []

    def walk(o: Any, p: str) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            found.append(p)
            return None
        if isinstance(o, dict):
            return {k: walk(v, f"{p}.{k}") for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{p}[{i}]") for i, v in enumerate(o)]
        if hasattr(o, "item") and callable(o.item) and getattr(o, "ndim", None) == 0:  # numpy/torch scalars
            return walk(o.item(), p)
        return o

    return walk(obj, path), found


def _reject_constant(name: str) -> float:
    raise ValueError(name)


def sanitize_json_file(path: Path) -> list[str]:
    """Rewrite ``path`` as strict JSON if it holds NaN/Infinity; return the paths replaced (empty: untouched)."""
    text = Path(path).read_text()
    try:
        json.loads(text, parse_constant=_reject_constant)
        return []
    except ValueError:
        pass
    doc = json.loads(text)  # Python's reader accepts the NaN/Infinity tokens it writes
    clean, found = sanitize_nonfinite(doc)
    tmp = temp_path_for(Path(path))
    try:
        tmp.write_text(json.dumps(clean, allow_nan=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return found
