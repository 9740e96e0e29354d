"""``evaluation.gate.baseline``: gate this run against an earlier run's results.json.

Why: ``evaluation.gate.max_metric_drop`` compares the backends of one run with each other,
so a worse checkpoint or config — every backend degraded alike — passes it. The baseline
gate compares each backend with the same backend of a run that was good (the operator passes
the last succeeded generation of a ModelDeployment with ``--baseline``), using the same
comparison as ``modeldeploy compare`` (compare.py), and fails the run with exit 3
(RegressionDetected) before anything is published, so the previous publication stays the
current one.

The baseline is read like any input (artifacts.fetch), with the run's own credentials: in a
cluster the Job's, never the operator's. No baseline (a first generation) or a baseline that
no longer exists passes with one log line saying so, recorded in results.json
``gate.baseline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from modeldeploy.artifacts.fetch import SourceNotFoundError
from modeldeploy.config.sections import BaselineGate
from modeldeploy.core.results import BaselineRecord, GateResult, RunResults
from modeldeploy.errors import DataError, ModelDeployError, RegressionDetected
from modeldeploy.runners.compare import compare, load_results

log = logging.getLogger("modeldeploy.gate")

# Reasons under which a named baseline is simply not there (local, builtin, S3 404).
_MISSING = ("SourceNotFound", "InputNotFound")


def _missing(exc: ModelDeployError) -> bool:
    return isinstance(exc, SourceNotFoundError) or exc.reason in _MISSING


def check_baseline(
    results: RunResults,
    gate: BaselineGate,
    load: Callable[[str], RunResults] = load_results,
) -> BaselineRecord | None:
    """Record ``results.gate.baseline``; raise RegressionDetected when a limit trips.

    Returns the record, or None when no baseline is configured at all (nothing recorded).
    """
    if gate.uri is None and not gate.limits_set:
        return None
    record = BaselineRecord(
        uri=gate.uri, passed=True, max_metric_drop=gate.max_metric_drop, max_latency_ratio=gate.max_latency_ratio
    )
    verdict = results.gate = results.gate or GateResult(passed=True)
    verdict.baseline = record
    if gate.uri is None:
        record.note = "no baseline run (a first generation has none)"
        log.info("evaluation.gate.baseline: no baseline run to compare with (a first generation has none); passes")
        return record
    try:
        base = load(gate.uri)
    except ModelDeployError as exc:
        if not _missing(exc):
            raise
        record.note = f"baseline not found: {exc.one_line()}"
        log.warning("evaluation.gate.baseline: %s is not there (%s); the baseline gate passes", gate.uri, exc)
        return record
    if not base.succeeded:
        raise DataError(
            f"baseline {gate.uri} is a {base.status} run, not a succeeded one",
            hint="name the results.json of a succeeded run (or its publication root) as the baseline",
        )
    cmp = compare(base, results, max_metric_drop=gate.max_metric_drop, max_latency_ratio=gate.max_latency_ratio)
    record.run_id = base.run.id if base.run else None
    record.rows = cmp.rows
    record.regressions = cmp.regressions
    record.notes = [n for n in cmp.notes if not n.startswith("run status")]  # this run is still running here
    if not gate.limits_set:
        log.warning("evaluation.gate.baseline: compared with %s but no limit is set; recorded, not judged", gate.uri)
    if cmp.regressed:
        record.passed = False
        verdict.passed = False
        more = (
            f" (+{len(cmp.regressions) - 1} more, see results.json gate.baseline)" if len(cmp.regressions) > 1 else ""
        )
        raise RegressionDetected(
            f"against baseline {gate.uri}: {cmp.regressions[0]}{more}",
            hint="the previous good run stays published; fix the model/config or relax evaluation.gate.baseline "
            "only with a measured reason",
        )
    log.info("evaluation.gate.baseline: no regression against %s", gate.uri)
    return record
