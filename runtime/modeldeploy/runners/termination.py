"""The compact run summary written to the container's termination-message file (≤ 4 KiB).

The operator turns it into the ModelDeployment status without downloading anything, so
it must always fit: drop artifact URIs first, then truncate the artifact list. It ends up
in the CR's status (readable by anyone who may read the CR), so it is scrubbed of secret
values and holds strict JSON (NaN/Inf become null).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from modeldeploy.core.results import EvaluationResult, RunResults
from modeldeploy.redact import scrub, scrub_obj
from modeldeploy.verification.finite import sanitize_nonfinite

LIMIT = 4096


def _headline(entry: EvaluationResult) -> dict[str, Any]:
    return {
        "precision": entry.precision,
        "metric": entry.headline_metric,
        "value": entry.headline_value,
        "p50_ms": entry.latency_ms.p50,
        "p99_ms": entry.latency_ms.p99,
    }


def build_summary(
    results: RunResults, *, run_id: str | None, results_uri: str | None, publication: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``publication`` (run_prefix, current_uri, published_current) says where this run's
    files are and whether it became the current publication."""
    failure = results.failure.to_dict() if results.failure else None
    if failure:
        failure["message"] = str(failure.get("message", ""))[:300]
    ver = results.verification
    ver_s = None
    if ver:
        diffs = [c.max_abs_diff for c in ver.comparisons if c.max_abs_diff is not None]
        ver_s = {
            "passed": ver.passed,
            "tolerance": ver.tolerance,
            "max_abs_diff": max(diffs) if diffs else None,
            "comparisons": len(ver.comparisons),
        }
    out = {
        "v": 1,
        "status": results.status,
        "project": results.project,
        "run_id": run_id,
        "failure": failure,
        "results_uri": results_uri,
        "artifacts": [{"name": a.name, "kind": a.kind, "uri": a.uri, "sha256": a.sha256} for a in results.artifacts],
        "verification": ver_s,
        "evaluation": {k: _headline(v) for k, v in results.evaluation.items()},
        "durations_s": {k: round(v, 3) for k, v in results.durations_s.items()},
    }
    if publication:
        out.update({k: publication.get(k) for k in ("run_prefix", "current_uri", "published_current")})
    return out


def encode_summary(summary: dict[str, Any], limit: int = LIMIT) -> str:
    """Serialise compactly, shrinking until it fits ``limit`` bytes."""
    s = scrub_obj(sanitize_nonfinite(dict(summary))[0])

    def enc() -> str:
        return json.dumps(s, separators=(",", ":"), default=str, allow_nan=False)

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
        s["evaluation"] = {
            k: {"metric": v.get("metric"), "value": v.get("value"), "p50_ms": v.get("p50_ms")}
            for k, v in list(s.get("evaluation", {}).items())[:8]
        }
        text = enc()
    return (
        text[:limit]
        if len(text.encode()) <= limit
        else json.dumps(
            {"v": 1, "status": s.get("status"), "failure": s.get("failure"), "truncated": True}, allow_nan=False
        )[:limit]
    )


def write_termination_log(path: str | None, summary: dict[str, Any]) -> None:
    """Write ``summary`` to ``path`` (``--termination-log``; its default is read from
    ``$MODELDEPLOY_TERMINATION_LOG`` by the command line, the one place); None: nowhere."""
    target = path
    if not target:
        return
    text = encode_summary(summary)
    p = Path(target)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    except OSError as exc:  # the summary is the last thing written: say so, never a traceback
        print(f"modeldeploy: warning: cannot write the termination log {p}: {exc.strerror or exc}", file=sys.stderr)
        logging.getLogger(__name__).warning("termination log %s not written: %s", p, scrub(str(exc)))
