"""Whole-operation retries with capped exponential backoff and full jitter.

Why a second layer on top of botocore's own retries: botocore retries one HTTP request,
but a multipart transfer that loses a part after botocore gave up is aborted as a whole
by s3transfer. This loop restarts such an operation a bounded number of times. It knows
nothing about S3; the caller passes ``is_retryable`` (see ``s3errors.is_retryable``).

Bounded time: at most ``attempts`` tries, each sleep ``<= max_delay_s``, and no new try
starts once ``deadline_s`` has passed since the first one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    deadline_s: float = 600.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(failures-1))] (AWS architecture blog)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** max(failures - 1, 0)))
        return rand() * ceiling


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    is_retryable: Callable[[BaseException], bool],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn``; on a retryable exception try again (bounded), else re-raise at once."""
    start = clock()
    failures = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # classified right below; non-retryable ones propagate unchanged
            failures += 1
            if not is_retryable(exc) or failures >= policy.attempts or clock() - start >= policy.deadline_s:
                raise
            pause = policy.delay(failures)
            log.warning(
                "%s failed (%s: %s); retry %d/%d in %.1fs",
                what,
                type(exc).__name__,
                _short(exc),
                failures,
                policy.attempts - 1,
                pause,
            )
            sleep(pause)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
