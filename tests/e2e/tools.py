"""Build/install the e2e tools on first use (helm from its Go module, Prometheus from Debian).

Both scripts are idempotent and cache their result, so only the first session pays
(helm: a `go install`, several minutes on 2 cores; Prometheus: one apt-get install). A
failure is raised as ToolError with the script's last lines, and the fixtures turn it
into a test ERROR — never a skip — as tests/cluster does for the Kubernetes binaries.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_HELM = HERE / "build_helm.sh"
INSTALL_PROMETHEUS = HERE / "install_prometheus.sh"


class ToolError(RuntimeError):
    pass


def _run_script(script: Path, what: str, timeout: float) -> Path:
    start = time.monotonic()
    try:
        proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"{script.name} did not finish {what} within {timeout:.0f}s; run it by hand to see why"
        ) from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise ToolError(
            f"{script.name} failed ({what}, exit {proc.returncode}) after {time.monotonic() - start:.0f}s:\n{tail}"
        )
    path = Path(proc.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        raise ToolError(f"{script.name} printed {path}, which is not an executable")
    return path


def ensure_helm(timeout: float = 3600) -> Path:
    """Path of the cached helm binary, built by tests/e2e/build_helm.sh on first use."""
    return _run_script(BUILD_HELM, "building helm from its Go module", timeout)


def ensure_prometheus(timeout: float = 900) -> Path:
    """Path of the Prometheus server binary (/usr/bin/prometheus), installed on first use."""
    return _run_script(INSTALL_PROMETHEUS, "installing the Debian prometheus package", timeout)
