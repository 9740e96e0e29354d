"""docs/architecture.mmd is generated from the code; a module move without regenerating it fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_committed_architecture_graph_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/architecture_graph.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_graph_draws_every_floor_and_no_upward_import() -> None:
    text = (ROOT / "docs" / "architecture.mmd").read_text()
    for pkg in (
        "cli",
        "runners",
        "projects",
        "verification",
        "evaluation",
        "exporters",
        "backends",
        "config",
        "core",
        "artifacts",
        "tensorrt_api",
        "errors",
        "redact",
    ):
        assert f"{pkg}[{pkg}]" in text, pkg
    up = sorted(line.strip() for line in text.splitlines() if "up a floor" in line)
    # the floors contract has no ignore_imports left: projects declare their deploy sections
    assert up == []
