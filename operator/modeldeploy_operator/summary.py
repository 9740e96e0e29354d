"""Parse the runtime's termination summary (docs/contracts.md §3) defensively.

The message is written by a program we do not control at read time: it may be JSON, a
truncated JSON, or the last log lines (``FallbackToLogsOnError``). Whatever it is, the
operator produces a bounded, secret-free view of it and never raises.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_MESSAGE = 300
# Anything that looks like a credential is masked before text reaches status or events.
_SECRETISH = re.compile(
    r"(?i)((?:aws_)?(?:secret|session)[_-]?(?:access[_-]?)?(?:key|token)|password|authorization)(\s*[=:]\s*|\"\s*:\s*\")([^\s\"',;]+)"
)
_AKID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")


def redact(text: str) -> str:
    """Mask credential-looking values in free text (logs from FallbackToLogsOnError)."""
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _AKID.sub("***", text)


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


@dataclasses.dataclass
class Summary:
    """What the operator keeps of a termination message."""

    parsed: bool
    status: str | None = None
    failure: dict[str, str] | None = None
    results_uri: str | None = None
    artifacts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    artifacts_truncated: int = 0
    verification: dict[str, Any] | None = None
    evaluation: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    durations_s: dict[str, float] = dataclasses.field(default_factory=dict)
    text: str | None = None  # non-JSON message (log tail), redacted and clipped


def parse(message: str | None) -> Summary | None:
    """Termination message → Summary; None when there is no message at all."""
    if message is None or not str(message).strip():
        return None
    raw = str(message).strip()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        return Summary(parsed=False, text=clip(redact(raw[-2000:])))
    return _from_doc(doc)


def _from_doc(doc: Mapping[str, Any]) -> Summary:
    out = Summary(parsed=True)
    status = doc.get("status")
    out.status = status if status in ("succeeded", "failed") else None
    fail = doc.get("failure")
    if isinstance(fail, dict):
        out.failure = {
            "stage": clip(str(fail.get("stage") or "unknown"), 64),
            "reason": clip(str(fail.get("reason") or "Unknown"), 64),
            "message": clip(redact(str(fail.get("message") or ""))),
        }
    if isinstance(doc.get("results_uri"), str):
        out.results_uri = doc["results_uri"]
    for art in doc.get("artifacts") or []:
        if isinstance(art, dict) and isinstance(art.get("name"), str):
            out.artifacts.append({k: str(art[k]) for k in ("name", "kind", "uri", "sha256") if art.get(k) is not None})
    trunc = doc.get("artifacts_truncated")
    out.artifacts_truncated = int(trunc) if isinstance(trunc, int) and not isinstance(trunc, bool) else 0
    ver = doc.get("verification")
    if isinstance(ver, dict):
        out.verification = {
            "passed": bool(ver.get("passed")),
            "tolerance": _num(ver.get("tolerance")),
            "maxAbsDiff": _num(ver.get("max_abs_diff")),
            "comparisons": ver.get("comparisons") if isinstance(ver.get("comparisons"), int) else None,
        }
    evaluation = doc.get("evaluation")
    if isinstance(evaluation, dict):
        for backend, entry in sorted(evaluation.items()):
            if not isinstance(entry, dict):
                continue
            out.evaluation.append(
                {
                    "backend": clip(str(backend), 64),
                    "precision": clip(str(entry.get("precision") or "unknown"), 32),
                    "metric": clip(str(entry.get("metric") or "unknown"), 64),
                    "value": _num(entry.get("value")),
                    "p50Ms": _num(entry.get("p50_ms")),
                    "p99Ms": _num(entry.get("p99_ms")),
                }
            )
    durations = doc.get("durations_s")
    if isinstance(durations, dict):
        for stage, seconds in durations.items():
            v = _num(seconds)
            if v is not None:
                out.durations_s[clip(str(stage), 64)] = v
    return out


def drop_nones(d: Mapping[str, Any]) -> dict[str, Any]:
    """Status fields without nulls (a merge patch treats null as delete)."""
    return {k: v for k, v in d.items() if v is not None}
