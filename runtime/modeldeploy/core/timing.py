"""Stage timing that is honest on a GPU; every pipeline takes a ``StageTimer``.

On CUDA every stage is bracketed by CUDA events recorded on the current stream and read
after one synchronize at the end of the sample, so a stage's time is the device time of
the work it enqueued, not the cost of launching it. On CPU a monotonic clock is used.

Why in ``core``: pipelines (core), verification and evaluation all time stages, so the
instrument sits on the floor below them; ``evaluation.latency`` keeps the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class StageTimer:
    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"
        self._marks: list[tuple[str, object, object]] = []
        self._total: tuple[object, object] | None = None

    def _now(self) -> object:
        if self._cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record(torch.cuda.current_stream(self.device))
            return ev
        return time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self._marks.append((name, start, self._now()))

    @contextmanager
    def total(self) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self._total = (start, self._now())

    def _ms(self, start: object, end: object) -> float:
        if self._cuda:
            return float(start.elapsed_time(end))  # type: ignore[attr-defined]
        return (float(end) - float(start)) * 1000.0  # type: ignore[arg-type]

    def collect(self) -> tuple[dict[str, float], float]:
        """Synchronize once, then return ({stage: ms}, total ms). Repeated stages add up."""
        if self._cuda:
            torch.cuda.synchronize(self.device)
        stages: dict[str, float] = {}
        for name, s, e in self._marks:
            stages[name] = stages.get(name, 0.0) + self._ms(s, e)
        total = self._ms(*self._total) if self._total else sum(stages.values())
        return stages, total
