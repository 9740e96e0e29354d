"""A keyed, coalescing work queue on a bounded thread pool: the one loop behind both the
reconcile and the observe passes of the operator.

Why its own module, and why these rules (the same as client-go's workqueue that Kubernetes
controllers use): watch events come in bursts per object (a CR apply, then our own status
patches; a Job's created/active/ready/succeeded/complete), and the work for an object only
needs to see its newest state, once.

* Keyed and coalescing: a key added while it is already waiting is not queued twice;
  the waiting request is merged with the new one (``merge``), so a burst is one pass.
* One in flight per key: a key added while its pass runs is not started on a second
  thread (it would only wait on the per-CR lock, holding a thread); it is marked dirty
  and queued again when the running pass ends, so the change is never lost.
* Bounded: at most ``workers`` passes run at once (a ThreadPoolExecutor); waiting keys
  cost one dict entry each, not a thread.
* Failures: a pass that raises does not kill its worker. ``on_error`` decides: it
  returns a delay after which the key is added again (with the failed request), or None
  to drop it (the next event or the resync retries).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


def _latest(old: R, new: R) -> R:
    return new


def _timer(delay: float, fn: Callable[[], None]) -> None:
    t = threading.Timer(delay, fn)
    t.daemon = True
    t.start()


@dataclasses.dataclass
class _Waiting(Generic[R]):
    request: R
    queued: float  # time.monotonic() of the first add since the key last started


class WorkQueue(Generic[K, R]):
    """Runs ``process(key, request)`` on a pool of ``workers`` threads, coalescing per key.

    ``on_start(waited_s)`` is called when a pass starts with how long its key waited
    (the operator's queue-wait metric); ``after(delay, fn)`` schedules a retry (a daemon
    ``threading.Timer`` by default; tests pass a double that records the delay).
    """

    def __init__(
        self,
        process: Callable[[K, R], None],
        *,
        workers: int,
        name: str,
        merge: Callable[[R, R], R] = _latest,
        on_error: Callable[[K, Exception], float | None] = lambda key, exc: None,
        on_start: Callable[[float], None] | None = None,
        after: Callable[[float, Callable[[], None]], None] = _timer,
    ) -> None:
        self._process = process
        self._merge = merge
        self._on_error = on_error
        self._on_start = on_start
        self._after = after
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._cond = threading.Condition()
        self._waiting: dict[K, _Waiting[R]] = {}  # added, not started (incl. dirty keys of running passes)
        self._running: set[K] = set()
        self._closed = False

    def add(self, key: K, request: R) -> None:
        """Queue `key` (merged into its waiting request if it already waits)."""
        with self._cond:
            if self._closed:
                return
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.request = self._merge(waiting.request, request)
                return
            self._waiting[key] = _Waiting(request, time.monotonic())
            if key not in self._running:  # else dirty: queued again when the running pass ends
                self._pool.submit(self._run, key)  # under the lock: never after close()

    def add_after(self, key: K, request: R, delay: float) -> None:
        self._after(delay, lambda: self.add(key, request))

    def _run(self, key: K) -> None:
        with self._cond:
            waiting = self._waiting.pop(key, None)
            if waiting is None:  # dropped by close()
                return
            self._running.add(key)
        if self._on_start is not None:
            self._on_start(time.monotonic() - waiting.queued)
        try:
            self._process(key, waiting.request)
        except Exception as e:  # noqa: BLE001 - a worker thread must survive; on_error decides about a retry
            delay = self._on_error(key, e)
            if delay is not None:
                self.add_after(key, waiting.request, delay)
        finally:
            with self._cond:
                self._running.discard(key)
                dirty = self._waiting.get(key)
                if dirty is not None and not self._closed:
                    dirty.queued = time.monotonic()  # on_start measures the wait for a thread
                    self._pool.submit(self._run, key)
                self._cond.notify_all()

    def pending(self) -> int:
        """Keys waiting or running."""
        with self._cond:
            return len(self._waiting) + len(self._running)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing waits or runs (retries scheduled for later do not count);
        False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Stop: later adds are ignored, waiting passes are dropped, running ones finish."""
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
