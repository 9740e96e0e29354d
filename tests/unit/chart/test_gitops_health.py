"""The Argo CD health check (docs/gitops/argocd-modeldeployment-health.lua) on statuses
the operator writes, run in a real Lua interpreter (lupa), and kept identical to the copy
in docs/install.md."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
LUA = REPO / "docs" / "gitops" / "argocd-modeldeployment-health.lua"
sys.path.insert(0, str(REPO / "operator"))


def health(obj: dict[str, Any]) -> dict[str, str]:
    lupa = pytest.importorskip("lupa", reason="lupa (Lua for Python) is needed to run the Argo CD health check")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(v: Any) -> Any:
        if isinstance(v, dict):
            return lua.table_from({k: to_lua(x) for k, x in v.items()})
        if isinstance(v, list):
            return lua.table_from([to_lua(x) for x in v])
        return v

    fn = lua.eval("function(obj) " + LUA.read_text() + " end")
    out = fn(to_lua(obj))
    return {"status": out["status"], "message": out["message"]}


def cr(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "m", "generation": generation}}
    if status is not None:
        body["status"] = status
    return body


def conditions(phase: str, failure: tuple[str, str] | None = None, stuck: tuple[str, str] | None = None) -> list[dict]:
    from modeldeploy_operator.status import Failure, lifecycle_conditions  # the operator's own mapping

    fail = Failure(reason=failure[0], message=failure[1], stage="verify") if failure else None
    return [
        {"type": t, "status": s, "reason": r, "message": m}
        for t, s, r, m in lifecycle_conditions(phase, fail, stuck, "job-1")
    ]


def test_no_status_or_old_generation_is_progressing() -> None:
    assert health(cr(1, None))["status"] == "Progressing"
    st = {"observedGeneration": 1, "phase": "Succeeded", "conditions": conditions("Succeeded")}
    assert health(cr(2, st))["status"] == "Progressing"  # spec edited, operator has not caught up


def test_phases_map_to_argo_health() -> None:
    assert (
        health(cr(3, {"observedGeneration": 3, "phase": "Succeeded", "conditions": conditions("Succeeded")}))["status"]
        == "Healthy"
    )
    assert (
        health(cr(3, {"observedGeneration": 3, "phase": "Running", "conditions": conditions("Running")}))["status"]
        == "Progressing"
    )
    failed = health(
        cr(
            3,
            {
                "observedGeneration": 3,
                "phase": "Failed",
                "conditions": conditions("Failed", failure=("VerificationFailed", "heatmap differs")),
            },
        )
    )
    assert failed == {"status": "Degraded", "message": "VerificationFailed: heatmap differs"}
    stuck = health(
        cr(
            3,
            {
                "observedGeneration": 3,
                "phase": "Pending",
                "conditions": conditions("Pending", stuck=("Unschedulable", "0/3 nodes have nvidia.com/gpu")),
            },
        )
    )
    assert stuck["status"] == "Degraded" and stuck["message"].startswith("Unschedulable")


def test_install_doc_embeds_the_same_script() -> None:
    doc = (REPO / "docs" / "install.md").read_text()
    assert textwrap.indent(LUA.read_text(), "    ") in doc
