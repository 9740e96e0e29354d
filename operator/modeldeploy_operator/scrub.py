"""Scrub the VALUES of a deployment's credentials Secret out of what the operator writes.

Why the operator does it although the runtime scrubs too (MODELDEPLOY_SECRET_ENV): the
runtime runs user code (mmengine configs are Python) next to the credentials, so what it
reports — termination message, FallbackToLogsOnError log tail, artifact names — is
untrusted text. Pattern masking (summary.redact) cannot catch a bare value such as
``ValueError(<secret>)``; only knowing the values can. The operator reads the one Secret
the CR names (RBAC: get secrets, in the served namespaces only — creating Jobs that
reference a Secret is already equivalent to reading it, see docs/operator.md#rbac) and
keeps the values in memory for a short time; it never logs or writes them.

Like the runtime, each value is also matched in the encodings a careless message would
carry it in (JSON/repr escaping, URL quoting, base64, hex). A config that re-encodes a
secret piece by piece is not stopped by this; the credentials-secret-opt-in policy rule
is the control for that.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

REPLACEMENT = "[redacted]"
MIN_LENGTH = 4  # shorter values would mangle ordinary text and protect nothing

log = logging.getLogger("modeldeploy_operator.scrub")


def variants(value: str) -> set[str]:
    """The value and its common encodings."""
    out = {value, json.dumps(value)[1:-1], repr(value)[1:-1], quote(value, safe=""), quote(value)}
    raw = value.encode()
    out |= {
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        raw.hex().upper(),
    }
    return {v for v in out if len(v) >= MIN_LENGTH}


def pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """One alternation, longest first (a value containing another is masked whole)."""
    allv: set[str] = set()
    for v in values:
        if v and len(v) >= MIN_LENGTH:
            allv |= variants(v)
    if not allv:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(allv, key=len, reverse=True)))


def scrub(obj: Any, pat: re.Pattern[str] | None) -> Any:
    """`obj` (str / dict / list, nested) with every match replaced; keys are kept."""
    if pat is None:
        return obj
    if isinstance(obj, str):
        return pat.sub(REPLACEMENT, obj)
    if isinstance(obj, dict):
        return {k: scrub(v, pat) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, pat) for v in obj]
    return obj


def secret_data_values(secret: dict[str, Any] | None) -> list[str]:
    """Decoded values of a core/v1 Secret (data is base64; stringData never comes back)."""
    out: list[str] = []
    for v in ((secret or {}).get("data") or {}).values():
        try:
            out.append(base64.b64decode(v).decode("utf-8", errors="replace"))
        except (binascii.Error, TypeError, ValueError):
            continue
    return out


class SecretCache:
    """Reads a Secret at most once per `ttl_s` per (namespace, name); thread-safe.

    `fetch(namespace, name)` returns the Secret dict, None when it does not exist, and
    raises PermissionError when the operator may not read it (then only pattern scrubbing
    and the runtime's scrubbing protect: logged once, as a configuration warning).
    """

    def __init__(self, fetch: Callable[[str, str], dict[str, Any] | None], ttl_s: float = 30.0) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._warned = False

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        secret = self.fetch(namespace, name)
        with self._lock:
            self._items[key] = (now, secret)
        return secret

    def pattern_for(self, namespace: str, name: str | None) -> re.Pattern[str] | None:
        """The scrub pattern for the values of Secret `name` (None: nothing to scrub / unreadable)."""
        if not name:
            return None
        try:
            return pattern(secret_data_values(self.get(namespace, name)))
        except PermissionError as e:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot read credentials Secrets (%s): status and Events are scrubbed by pattern only; "
                    "grant the operator get on secrets (config/rbac/role.yaml)",
                    e,
                )
            return None
