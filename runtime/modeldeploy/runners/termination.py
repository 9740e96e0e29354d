"""The compact run summary written to the container's termination-message file (≤ 4 KiB).

The operator turns it into the ModelDeployment status without downloading anything, so
it must always fit: drop artifact URIs first, then truncate the artifact list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

LIMIT = 4096


def _headline(entry: dict[str, Any]) -> dict[str, Any]:
    name = entry.get("headline_metric")
    value = (entry.get("metrics") or {}).get(name) if name else None
    lat = entry.get("latency_ms") or {}
    return {
        "precision": entry.get("precision"),
        "metric": name,
        "value": value if isinstance(value, (int, float)) else None,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
    }


def build_summary(results: dict[str, Any], *, run_id: Optional[str], results_uri: Optional[str]) -> dict[str, Any]:
    failure = results.get("failure")
    if failure:
        failure = {**failure, "message": str(failure.get("message", ""))[:300]}
    ver = results.get("verification")
    ver_s = None
    if ver:
        diffs = [c["max_abs_diff"] for c in ver.get("comparisons", []) if c.get("max_abs_diff") is not None]
        ver_s = {"passed": ver.get("passed"), "tolerance": ver.get("tolerance"), "max_abs_diff": max(diffs) if diffs else None, "comparisons": len(ver.get("comparisons", []))}
    return {
        "v": 1,
        "status": results.get("status"),
        "project": results.get("project"),
        "run_id": run_id,
        "failure": failure,
        "results_uri": results_uri,
        "artifacts": [{k: a.get(k) for k in ("name", "kind", "uri", "sha256")} for a in results.get("artifacts", [])],
        "verification": ver_s,
        "evaluation": {k: _headline(v) for k, v in (results.get("evaluation") or {}).items()},
        "durations_s": {k: round(v, 3) for k, v in (results.get("durations_s") or {}).items()},
    }


def encode_summary(summary: dict[str, Any], limit: int = LIMIT) -> str:
    """Serialise compactly, shrinking until it fits ``limit`` bytes."""
    s = dict(summary)

    def enc() -> str:
        return json.dumps(s, separators=(",", ":"), default=str)

    text = enc()
    if len(text.encode()) <= limit:
        return text
    s["artifacts"] = [{k: v for k, v in a.items() if k != "uri"} for a in s.get("artifacts", [])]
    text = enc()
    total = len(s["artifacts"])
    while len(text.encode()) > limit and s["artifacts"]:
        s["artifacts"] = s["artifacts"][:-1]
        s["artifacts_truncated"] = total - len(s["artifacts"])
        text = enc()
    if len(text.encode()) > limit:
        s["durations_s"] = {}
        s["evaluation"] = {k: {"metric": v.get("metric"), "value": v.get("value"), "p50_ms": v.get("p50_ms")} for k, v in list(s.get("evaluation", {}).items())[:8]}
        text = enc()
    return text[:limit] if len(text.encode()) <= limit else json.dumps({"v": 1, "status": s.get("status"), "failure": s.get("failure"), "truncated": True})[:limit]


def write_termination_log(path: Optional[str], summary: dict[str, Any]) -> None:
    target = path or os.environ.get("MODELDEPLOY_TERMINATION_LOG")
    if not target:
        return
    p = Path(target)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(encode_summary(summary))
