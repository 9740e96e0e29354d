"""retry.py: bounded attempts, capped full-jitter backoff, deadline (fake clock and sleep)."""

from __future__ import annotations

import pytest

from modeldeploy.artifacts.retry import RetryPolicy, call_with_retries


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def test_delay_is_full_jitter_capped() -> None:
    p = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    assert p.delay(1, rand=lambda: 1.0) == 0.5
    assert p.delay(3, rand=lambda: 1.0) == 2.0
    assert p.delay(10, rand=lambda: 1.0) == 4.0  # capped
    assert p.delay(10, rand=lambda: 0.0) == 0.0


def test_retries_retryable_errors_until_success_with_fake_sleep() -> None:
    calls, sleeps = [], []

    def fn() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Transient("503")
        return "ok"

    out = call_with_retries(
        fn,
        policy=RetryPolicy(attempts=3),
        is_retryable=lambda e: isinstance(e, Transient),
        what="t",
        sleep=sleeps.append,
    )
    assert out == "ok" and len(calls) == 3 and len(sleeps) == 2
    assert all(0 <= s <= RetryPolicy().max_delay_s for s in sleeps)


def test_gives_up_after_attempts_and_reraises_the_last_error_with_fake_sleep() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise Transient(f"try {len(calls)}")

    with pytest.raises(Transient, match="try 4"):
        call_with_retries(
            fn, policy=RetryPolicy(attempts=4), is_retryable=lambda e: True, what="t", sleep=lambda s: None
        )
    assert len(calls) == 4


def test_non_retryable_error_is_raised_at_once_with_fake_sleep() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise Fatal("AccessDenied")

    with pytest.raises(Fatal):
        call_with_retries(
            fn,
            policy=RetryPolicy(attempts=5),
            is_retryable=lambda e: isinstance(e, Transient),
            what="t",
            sleep=lambda s: pytest.fail("must not sleep"),
        )
    assert len(calls) == 1


def test_deadline_stops_retrying_with_fake_clock() -> None:
    now = [0.0]
    calls = []

    def fn() -> None:
        calls.append(1)
        now[0] += 40.0  # each attempt "takes" 40 s
        raise Transient("slow")

    with pytest.raises(Transient):
        call_with_retries(
            fn,
            policy=RetryPolicy(attempts=10, deadline_s=100.0),
            is_retryable=lambda e: True,
            what="t",
            sleep=lambda s: None,
            clock=lambda: now[0],
        )
    assert len(calls) == 3  # 40, 80 (< 100: retry), 120 (>= 100: stop)
