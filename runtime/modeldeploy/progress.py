"""What a person watching a run sees: a start banner, every stage starting and ending (or
skipped, and why), per-item progress inside long stages, and a closing line.

On a terminal the stage lines go through the rich log handler and per-item progress is a
transient rich bar; in a pod (``--log-format json`` or no TTY) every event is one log record
(JSON line) with ``event`` = start | stage_start | stage_end | progress | end, so a log
pipeline can follow a run without parsing prose.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeldeploy.core.results import RunResults

log = logging.getLogger("modeldeploy.progress")

STAGE_TITLES = {
    "preflight": "preflight (work dir, output store)",
    "fetch": "download / fetch inputs",
    "load": "load model and data",
    "export_onnx": "export ONNX",
    "export_tensorrt": "TensorRT build",
    "verify": "verification",
    "evaluate": "evaluation",
    "gate": "regression gate",
    "upload": "upload",
    "report": "report (report.md, report.html figures)",
}

_VERSION_PACKAGES = ("modeldeploy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt")


def package_versions() -> dict[str, str]:
    """Installed versions without importing the packages (importing torch alone takes seconds)."""
    out = {}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class RunProgress:
    """One per ``modeldeploy run``. ``interactive``: a TTY with text logs (rich bars)."""

    def __init__(self, log_format: str = "text", interactive: bool | None = None) -> None:
        self.json = log_format == "json"
        self.interactive = (not self.json and sys.stderr.isatty()) if interactive is None else interactive
        self._step = _step_printer(self.interactive)

    def starting(self, deploy_cfg: str, model_cfg: str) -> None:
        from modeldeploy import __version__

        log.info(
            "modeldeploy %s: reading %s and %s, loading torch/ONNX (takes seconds on a cold start)…",
            __version__,
            deploy_cfg,
            model_cfg,
            extra={"event": "starting"},
        )

    def banner(
        self, *, project: str | None, deploy_cfg: str, model_cfg: str, checkpoint: str | None, device: str, mode: str
    ) -> None:
        versions = package_versions()
        ver = ", ".join(f"{k} {v}" for k, v in versions.items())
        log.info(
            "modeldeploy run: project %s | deploy %s | model %s | checkpoint %s | device %s | export %s | %s",
            project,
            deploy_cfg,
            model_cfg,
            checkpoint or "(from deploy config)",
            device,
            mode,
            ver,
            extra={"event": "start"},
        )

    def stage_started(self, stage: str) -> None:
        log.info("▶ %s", STAGE_TITLES.get(stage, stage), extra={"event": "stage_start", "stage": stage})

    def stage_finished(self, stage: str, seconds: float, *, failed: bool = False, note: str | None = None) -> None:
        verdict = "FAILED" if failed else (note or "done")
        log.info(
            "%s %s: %s (%.2fs)",
            "✗" if failed else "✓",
            STAGE_TITLES.get(stage, stage),
            verdict,
            seconds,
            extra={"event": "stage_end", "stage": stage, "seconds": round(seconds, 3)},
        )

    def step(self, task: str, i: int, n: int) -> None:
        self._step(task, i, n)

    def closing(self, results: RunResults, total_s: float, report: str | None) -> str:
        status = results.status
        f = results.failure
        verdict = "PASS" if status == "succeeded" else f"FAIL ({f.reason if f else None} in {f.stage if f else None})"
        if results.gate is not None and status == "succeeded":
            verdict += ", gate passed"
        line = f"modeldeploy: {status} in {total_s:.1f}s — verdict {verdict} — report {report or '(not written)'}"
        log.info(line, extra={"event": "end", "seconds": round(total_s, 3)})
        return line


def skip_note(stage: str, runner: Any) -> str | None:
    """Why a stage did nothing, from the config and what the run recorded (None: it ran)."""
    cfg, res = runner.cfg, runner.results
    if stage == "export_onnx" and not cfg.export.should_export_onnx:
        return (
            f"skipped (export.mode={cfg.export.mode}{', using export.onnx_path' if cfg.export.onnx_path else ''})"
            if cfg.export.mode != "trt" or cfg.export.onnx_path
            else None
        )
    if stage == "export_tensorrt" and not cfg.export.should_export_tensorrt:
        return f"skipped (export.mode={cfg.export.mode})"
    if stage == "verify" and res.verification is None:
        return "skipped (no scenario for this export mode, or no data)"
    if stage == "evaluate" and not res.evaluation:
        return "skipped (evaluation disabled or no data)"
    if stage == "gate" and res.gate is None:
        return "skipped (no verification.gate / evaluation.gate limits set)"
    return None


def _step_printer(interactive: bool) -> Callable[[str, int, int], None]:
    if not interactive:
        last: dict[str, int] = {}

        def log_progress(task: str, i: int, n: int) -> None:
            step = max(1, n // 10)
            if i == n or i - last.get(task, 0) >= step:
                last[task] = i
                log.info("%s: %d/%d", task, i, n, extra={"event": "progress", "current": i, "total": n})

        return log_progress
    from rich.progress import Progress

    progress = Progress(transient=True)
    tasks: dict[str, Any] = {}

    def bar(task: str, i: int, n: int) -> None:
        if task not in tasks:
            if not progress.live.is_started:
                progress.start()
            tasks[task] = progress.add_task(task, total=n)
        progress.update(tasks[task], completed=i)
        if i == n:
            progress.remove_task(tasks.pop(task))
            if not tasks:
                progress.stop()
            log.info("%s: %d/%d", task, i, n, extra={"event": "progress", "current": i, "total": n})

    return bar
