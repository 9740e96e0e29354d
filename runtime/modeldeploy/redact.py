"""Scrub secret VALUES out of every message the runtime writes.

Why: a deploy or model config is user code that runs inside the Job next to credentials
from a Secret. ``raise ValueError(os.environ["AWS_SECRET_ACCESS_KEY"])`` would otherwise
copy the secret into results.json, the termination message (→ the CR's status, visible to
anyone who may read the CR), the log and report.md. Masking ``key=value`` patterns cannot
catch that; only knowing the values can. So every writer passes its text through
``scrub``/``scrub_obj`` and the log handlers carry ``RedactFilter``.

Which values are sensitive (read from the environment at call time):

* every variable named in ``MODELDEPLOY_SECRET_ENV`` (comma-separated; the operator lists
  the env vars it fills from a Secret), values of at least ``MIN_EXPLICIT`` characters;
* ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ACCESS_KEY_ID`` (same minimum);
* any variable whose name contains SECRET, TOKEN, PASSWORD, PASSWD or PRIVATE_KEY with a
  value of at least ``MIN_PATTERN`` characters (shorter values would mangle ordinary text);
* values registered with ``add_sensitive`` (e.g. read from a credentials file).

Each value is also scrubbed in the encodings a careless message would carry it in: JSON/
repr escaping, URL quoting, base64 and hex of the whole value. This is a defence against
echoing, not against a config that deliberately re-encodes a secret piece by piece — the
real control is that a tenant can only reference Secrets opted in for it (operator policy).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

REPLACEMENT = "[redacted]"
SECRET_ENV_LIST = "MODELDEPLOY_SECRET_ENV"
ALWAYS_SENSITIVE = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
MIN_EXPLICIT = 4
MIN_PATTERN = 6
_NAME_PATTERN = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE_KEY", re.IGNORECASE)

_extra: set[str] = set()
_lock = threading.Lock()
_cache: tuple[tuple[str, ...] | None, re.Pattern[str] | None] = (None, None)


def add_sensitive(value: str) -> None:
    """Treat ``value`` as secret for the rest of the process (values shorter than MIN_EXPLICIT are ignored)."""
    if value and len(value) >= MIN_EXPLICIT:
        with _lock:
            _extra.add(value)


def sensitive_values(env: Mapping[str, str] | None = None) -> set[str]:
    """The raw secret values currently known (see module docstring for the rules)."""
    env = os.environ if env is None else env
    explicit = {n.strip() for n in env.get(SECRET_ENV_LIST, "").split(",") if n.strip()} | set(ALWAYS_SENSITIVE)
    out = {env[n] for n in explicit if len(env.get(n, "")) >= MIN_EXPLICIT}
    out |= {v for n, v in env.items() if _NAME_PATTERN.search(n) and len(v) >= MIN_PATTERN and n != SECRET_ENV_LIST}
    with _lock:
        out |= _extra
    return out


def _variants(value: str) -> set[str]:
    raw = value.encode()
    forms = {
        value,
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    }
    return {f for f in forms if len(f) >= min(MIN_EXPLICIT, len(value))}


def _pattern() -> re.Pattern[str] | None:
    global _cache
    values = tuple(sorted(sensitive_values()))
    with _lock:
        if _cache[0] == values:
            return _cache[1]
    forms = sorted({f for v in values for f in _variants(v)}, key=len, reverse=True)  # longest first
    pat = re.compile("|".join(re.escape(f) for f in forms)) if forms else None
    with _lock:
        _cache = (values, pat)
    return pat


def scrub(text: Any) -> Any:
    """``text`` with every known secret value replaced by ``[redacted]`` (non-strings unchanged)."""
    if not isinstance(text, str) or not text:
        return text
    pat = _pattern()
    return pat.sub(REPLACEMENT, text) if pat is not None else text


def scrub_obj(obj: Any) -> Any:
    """A copy of a JSON-like structure with every string (keys too) scrubbed."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, Mapping):
        return {scrub(k) if isinstance(k, str) else k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_obj(v) for v in obj]
    return obj


def contains_secret(text: str) -> bool:
    """True if ``text`` holds a known secret value (tests and last-line checks use it)."""
    pat = _pattern()
    return bool(pat is not None and isinstance(text, str) and pat.search(text))


class RedactFilter(logging.Filter):
    """Handler filter: renders the message (and traceback) once, scrubbed, before any formatter sees it.

    Attached to handlers rather than loggers so records from every library pass through it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad %-format must still be logged (scrubbed), not dropped
            msg = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = scrub(msg), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None  # the scrubbed exc_text replaces it
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for k in ("stage", "event"):
            if isinstance(getattr(record, k, None), str):
                setattr(record, k, scrub(getattr(record, k)))
        return True


def install_record_scrubber() -> None:
    """Scrub every LogRecord when it is created, whatever handler later emits it.

    Why: libraries (mmengine's MMLogger, for one) attach their own handlers that never see
    ``RedactFilter``; a record factory covers them too. Idempotent.
    """
    old = logging.getLogRecordFactory()
    if getattr(old, "_modeldeploy_scrub", False):
        return
    scrubber = RedactFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        scrubber.filter(record)
        return record

    factory._modeldeploy_scrub = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class ScrubbingStream:
    """A text stream wrapper whose ``write`` scrubs secret values (for sys.stdout/sys.stderr).

    Why: a config's ``print(os.environ[...])`` or a warning goes straight to the pod log.
    Each ``write`` call is scrubbed as a whole (``print`` writes a value in one call); bytes
    written to the file descriptor by native code bypass it.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(scrub(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def guard_std_streams() -> None:
    """Wrap sys.stdout/sys.stderr in ScrubbingStream (idempotent) and scrub every log record."""
    import sys

    if not isinstance(sys.stdout, ScrubbingStream):
        sys.stdout = ScrubbingStream(sys.stdout)
    if not isinstance(sys.stderr, ScrubbingStream):
        sys.stderr = ScrubbingStream(sys.stderr)
    install_record_scrubber()
