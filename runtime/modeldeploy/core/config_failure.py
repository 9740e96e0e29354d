"""Explain why a config file's code failed while mmengine executed it.

Why: mmengine reports some failures with no text at all — a config with top-level
``import`` statements is loaded in "lazy import" mode, and calling anything imported
(``os.path.join(...)``, ``np.float32(1)``) raises a bare ``RuntimeError()``. Users then read
``RuntimeError:`` and nothing else. This module finds the line of the config that was
executing, names the exception, and says what to do.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from modeldeploy.redact import scrub


def _config_frame(path: Path, exc: BaseException) -> traceback.FrameSummary | None:
    """The deepest traceback frame that executes ``path`` (mmengine may exec it under its bare name)."""
    want = {str(path), str(path.resolve()), path.name}
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        fname = frame.filename
        if fname in want or Path(fname).name == path.name:
            found = frame
    return found


def _lazy_call(exc: BaseException) -> bool:
    tb = traceback.extract_tb(exc.__traceback__)
    return (
        isinstance(exc, RuntimeError)
        and not str(exc).strip()
        and bool(tb)
        and tb[-1].filename.replace("\\", "/").endswith("mmengine/config/lazy.py")
    )


def describe(path: Path, exc: BaseException) -> tuple[str, str]:
    """(message, hint) for ``exc`` raised while loading config ``path``; secret values scrubbed."""
    frame = _config_frame(path, exc)
    where = f"{path} line {frame.lineno}" if frame is not None and frame.lineno else str(path)
    code = f" (`{' '.join((frame.line or '').split())[:120]}`)" if frame is not None and frame.line else ""
    if _lazy_call(exc):
        return (
            (
                f"{where}{code}: calls something the config imported; a config with `import` statements is loaded by "
                "mmengine in lazy-import mode, where imported modules cannot be called or indexed at load time"
            ),
            "remove the import and write the value as a literal (configs hold data, not code), or compute it in the project's code",
        )
    first = (str(scrub(str(exc))).strip().splitlines() or [""])[0][
        :300
    ]  # scrub BEFORE cutting: half a secret would not match
    detail = f"{type(exc).__name__}: {first}" if first else f"{type(exc).__name__} (no message)"
    if isinstance(exc, TypeError) and "LazyObject" in first:
        return (
            f"{where}{code}: {detail} — an imported name was used as a value; mmengine's lazy-import mode allows imports only for type references",
            "remove the import and write the value as a literal",
        )
    return str(
        scrub(f"{where}{code}: the config's code failed ({detail})")
    ), "fix the config file so `python` can execute it"
