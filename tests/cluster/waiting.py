"""Polling with a deadline, shared by the cluster and e2e tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    pred: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.25,
    on_timeout: Callable[[], str] = lambda: "",
) -> Any:
    """Return the first truthy ``pred()``; after ``timeout`` s fail naming ``what``, the last
    value and whatever ``on_timeout()`` adds (logs, object dumps)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    extra = on_timeout()
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}; last={last!r}" + (f"\n{extra}" if extra else "")
    )
