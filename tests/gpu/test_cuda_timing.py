"""Timing sanity: CUDA events measure device work, and StageTimer agrees with an independent loop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

from modeldeploy.core.timing import StageTimer

pytestmark = pytest.mark.gpu

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _sleep_ms(cycles: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end))


def test_event_time_scales_with_device_work() -> None:
    _sleep_ms(1_000_000)
    one = min(_sleep_ms(20_000_000) for _ in range(3))
    two = min(_sleep_ms(40_000_000) for _ in range(3))
    print(f"sleep 20M cycles: {one:.3f} ms, 40M: {two:.3f} ms")
    assert one > 1.0 and 1.8 < two / one < 2.2


def test_stage_timer_measures_device_time_not_launch_time() -> None:
    cycles = 50_000_000
    _sleep_ms(1_000_000)
    timer = StageTimer("cuda")
    t0 = time.perf_counter()
    with timer.stage("model"):
        torch.cuda._sleep(cycles)
    launch_ms = (time.perf_counter() - t0) * 1000
    stages, _total = timer.collect()
    device_ms = _sleep_ms(cycles)
    print(f"StageTimer {stages['model']:.3f} ms, events {device_ms:.3f} ms, launch only {launch_ms:.3f} ms")
    assert abs(stages["model"] - device_ms) / device_ms < 0.05
    assert launch_ms < 0.5 * device_ms  # the launch returns long before the work is done


def test_stage_timer_agrees_with_independent_back_to_back_loop() -> None:
    from gpu_latency import interleaved_fidelity_ms

    a = torch.randn(2048, 2048, device="cuda")
    fn = lambda: (a @ a).relu_()  # noqa: E731
    for _ in range(10):
        fn()
    # medians of alternating calls, as the benchmark's fidelity check: a mean over one loop
    # against a median over another drifted 6-13 % apart on an H200 (2026-11-28)
    reported, independent = interleaved_fidelity_ms(fn, torch.device("cuda"), 50)
    print(f"matmul 2048²: StageTimer {reported:.4f} ms, back-to-back events {independent:.4f} ms")
    assert abs(reported - independent) / independent < 0.05
