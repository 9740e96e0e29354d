"""Reading mmdet3d/T4-style info files (``{'metainfo': ..., 'data_list': [...]}``) safely.

Info files are pickles in the mmdet3d/AWML world; a pickle can run code, so ours are
read with an unpickler that admits only plain containers and numpy arrays. JSON works too.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modeldeploy.errors import DataError


class _InfoUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an info file")


def load_info(path: Path, *, hint: str, missing_hint: str) -> Any:
    """The decoded info object (pickle or ``.json``); DataError naming the file otherwise."""
    if not path.is_file():
        raise DataError(f"info file {path} does not exist", hint=missing_hint)
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        with open(path, "rb") as f:
            return _InfoUnpickler(f).load()
    except (
        pickle.UnpicklingError,
        json.JSONDecodeError,
        EOFError,
        UnicodeDecodeError,
        ValueError,
        AttributeError,
        ImportError,
    ) as exc:
        raise DataError(
            f"info file {path} could not be read ({type(exc).__name__}: {str(exc)[:200]})", hint=hint
        ) from None


def data_list_of(info: Any, path: Path, *, hint: str, what: str = "samples") -> list[Mapping[str, Any]]:
    """The non-empty ``data_list`` of dicts (a bare list is accepted too)."""
    data_list = info.get("data_list") if isinstance(info, Mapping) else info if isinstance(info, list) else None
    if not isinstance(data_list, list) or not all(isinstance(e, Mapping) for e in data_list):
        raise DataError(f"info file {path} has no 'data_list' list of dicts", hint=hint)
    if not data_list:
        raise DataError(f"info file {path} lists no {what}", hint="point runtime_io.info_file at a non-empty split")
    return data_list
