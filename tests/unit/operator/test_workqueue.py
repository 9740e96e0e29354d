"""The keyed coalescing work queue behind the operator's reconcile and observe passes.

The processed work is a test double: a recording function that can be held on a gate,
so what is waiting, running and dirty at a given moment is controlled by the test.
"""

import threading

from modeldeploy_operator.workqueue import WorkQueue


class RecordingWorkDouble:
    """`process` double: records (key, request), tracks concurrency per key and overall,
    and holds the passes of the keys in `hold` until `release()`."""

    def __init__(self, hold: tuple[str, ...] = (), fail_first: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, object]] = []
        self.hold = set(hold)
        self.fail_first = set(fail_first)
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.max_per_key = 0
        self.max_total = 0

    def __call__(self, key: str, request: object) -> None:
        with self._lock:
            self.calls.append((key, request))
            self.running[key] = self.running.get(key, 0) + 1
            self.max_per_key = max(self.max_per_key, self.running[key])
            self.max_total = max(self.max_total, sum(self.running.values()))
        self.started.release()
        try:
            if key in self.hold:
                assert self.gate.wait(10), "test gate never opened"
            if key in self.fail_first:
                self.fail_first.discard(key)
                raise RuntimeError(f"HTTP 500 from a test double for {key}")
        finally:
            with self._lock:
                self.running[key] -= 1

    def wait_started(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.started.acquire(timeout=10), "a pass did not start"

    def release(self) -> None:
        self.gate.set()


def _concat(old: list, new: list) -> list:
    return old + new


def test_a_key_added_while_waiting_is_queued_once_with_the_merged_request():
    work = RecordingWorkDouble(hold=("busy",))
    q = WorkQueue(work, workers=1, name="t", merge=_concat)
    q.add("busy", [])
    work.wait_started()  # the only worker is held: "b" waits
    for i in range(3):
        q.add("b", [i])
    assert q.pending() == 2
    work.release()
    assert q.join(timeout=10)
    assert [c for c in work.calls if c[0] == "b"] == [("b", [0, 1, 2])]


def test_one_pass_in_flight_per_key_and_a_key_dirtied_meanwhile_runs_again_after_it():
    work = RecordingWorkDouble(hold=("a",))
    q = WorkQueue(work, workers=4, name="t", merge=_concat)
    q.add("a", [1])
    work.wait_started()
    q.add("a", [2])  # dirty while running: not started on a second (free) worker
    q.add("a", [3])
    assert work.calls == [("a", [1])]
    work.release()
    assert q.join(timeout=10)
    assert work.calls == [("a", [1]), ("a", [2, 3])]
    assert work.max_per_key == 1


def test_different_keys_run_in_parallel_up_to_the_worker_bound():
    work = RecordingWorkDouble(hold=("k0", "k1", "k2", "k3", "k4"))
    q = WorkQueue(work, workers=2, name="t")
    for i in range(5):
        q.add(f"k{i}", None)
    work.wait_started(2)
    assert len(work.calls) == 2 and q.pending() == 5
    work.release()
    assert q.join(timeout=10)
    assert sorted(k for k, _ in work.calls) == [f"k{i}" for i in range(5)]
    assert work.max_total == 2


def test_a_failing_pass_keeps_the_worker_and_on_error_schedules_the_retry_with_its_request():
    work = RecordingWorkDouble(fail_first=("a",))
    errors: list[tuple[str, str]] = []
    scheduled: list[tuple[float, object]] = []  # timer double: (delay, callback), fired by the test

    def on_error(key: str, exc: Exception) -> float:
        errors.append((key, str(exc)))
        return 5.0

    q = WorkQueue(work, workers=1, name="t", on_error=on_error, after=lambda d, fn: scheduled.append((d, fn)))
    q.add("a", "req-a")
    q.add("b", "req-b")
    assert q.join(timeout=10)
    assert errors == [("a", "HTTP 500 from a test double for a")]
    assert [d for d, _ in scheduled] == [5.0]
    assert ("b", "req-b") in work.calls  # the worker survived the failure
    scheduled[0][1]()  # the delay has passed
    assert q.join(timeout=10)
    assert [c for c in work.calls if c[0] == "a"] == [("a", "req-a"), ("a", "req-a")]


def test_on_error_returning_none_drops_the_key():
    work = RecordingWorkDouble(fail_first=("a",))
    scheduled: list[float] = []
    q = WorkQueue(work, workers=1, name="t", after=lambda d, fn: scheduled.append(d))
    q.add("a", None)
    assert q.join(timeout=10)
    assert scheduled == [] and work.calls == [("a", None)]


def test_on_start_gets_each_pass_s_wait():
    work = RecordingWorkDouble(hold=("busy",))
    waits: list[float] = []
    q = WorkQueue(work, workers=1, name="t", on_start=waits.append)
    q.add("busy", None)
    work.wait_started()
    q.add("b", None)
    work.release()
    assert q.join(timeout=10)
    assert len(waits) == 2 and all(w >= 0 for w in waits)


def test_close_drops_waiting_keys_and_ignores_later_adds():
    work = RecordingWorkDouble(hold=("busy",))
    q = WorkQueue(work, workers=1, name="t")
    q.add("busy", None)
    work.wait_started()
    q.add("b", None)
    q.close()
    q.add("c", None)
    work.release()
    assert q.join(timeout=10)
    assert work.calls == [("busy", None)]
