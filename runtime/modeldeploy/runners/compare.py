"""``modeldeploy compare RUN_A RUN_B``: did B regress against A?

Each run is a results.json given as a local file, a run directory / publication root
(``current.json`` is followed), or an s3:// URI (fetched and verified through
artifacts.fetch). Per backend: headline metric A, B and the delta; latency p50/p99 A, B and
the ratio B/A. The verdict trips on the limits given (absolute metric drop, latency ratio)
and notes when the runs did not start from the same checkpoint/configs (their sha256).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modeldeploy.core.results import InputFile, Inputs, RunResults, number
from modeldeploy.errors import DataError


@dataclass
class Comparison:
    rows: list[dict[str, Any]]
    regressions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    limits_given: bool = True

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


def load_results(uri: str) -> RunResults:
    """results.json from a path, run dir, publication root or s3:// URI; one clear error otherwise."""
    from modeldeploy.artifacts.fetch import fetch

    path = Path(fetch(uri))
    if path.is_dir():
        path = path / "results.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{uri}: no results.json there", hint="pass a results.json, a run directory or a publication root"
        ) from None
    except ValueError as exc:
        raise DataError(
            f"{uri}: not valid JSON ({exc})", hint="pass the results.json a modeldeploy run wrote"
        ) from None
    if not isinstance(doc, dict) or "evaluation" not in doc:
        raise DataError(
            f"{uri}: not a modeldeploy results.json (no 'evaluation')",
            hint="pass the results.json a modeldeploy run wrote",
        )
    try:
        return RunResults.from_json(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(
            f"{uri}: not a modeldeploy results.json ({where}: {first['msg']})",
            hint="pass the results.json a modeldeploy run wrote",
        ) from None


def _ratio(a: float | None, b: float | None) -> float | None:
    return b / a if a and b is not None else None


def compare(
    a: RunResults,
    b: RunResults,
    *,
    max_metric_drop: float | None = None,
    max_latency_ratio: float | None = None,
) -> Comparison:
    ea, eb = a.evaluation, b.evaluation
    rows: list[dict[str, Any]] = []
    out = Comparison(rows, limits_given=max_metric_drop is not None or max_latency_ratio is not None)
    for backend in list(ea) + [k for k in eb if k not in ea]:
        ra, rb = ea.get(backend), eb.get(backend)
        either = ra or rb
        assert either is not None  # the backend is a key of one of them
        metric = either.headline_metric
        ma = number(ra.metrics.get(metric)) if ra else None
        mb = number(rb.metrics.get(metric)) if rb else None
        row: dict[str, Any] = {
            "backend": backend,
            "metric": metric,
            "a": ma,
            "b": mb,
            "delta": (mb - ma) if ma is not None and mb is not None else None,
            "p50_a": number(ra.latency_ms.p50) if ra else None,
            "p50_b": number(rb.latency_ms.p50) if rb else None,
            "p99_a": number(ra.latency_ms.p99) if ra else None,
            "p99_b": number(rb.latency_ms.p99) if rb else None,
        }
        row["p50_ratio"] = _ratio(row["p50_a"], row["p50_b"])
        row["p99_ratio"] = _ratio(row["p99_a"], row["p99_b"])
        rows.append(row)
        if not ra or not rb:
            out.notes.append(f"{backend} is only in run {'A' if ra else 'B'}")
            continue
        if max_metric_drop is not None and row["delta"] is not None and -row["delta"] > max_metric_drop:
            out.regressions.append(
                f"{backend}: {metric} {ma:.6g} → {mb:.6g} (drop {-row['delta']:.6g} > {max_metric_drop})"
            )
        if max_latency_ratio is not None and row["p50_ratio"] is not None and row["p50_ratio"] > max_latency_ratio:
            out.regressions.append(
                f"{backend}: latency p50 {row['p50_a']:.4g} → {row['p50_b']:.4g} ms (×{row['p50_ratio']:.2f} > ×{max_latency_ratio})"
            )
    for k, fa, fb in _input_pairs(a, b):
        ha, hb = fa.sha256 if fa else None, fb.sha256 if fb else None
        if ha and hb and ha != hb:
            out.notes.append(f"the runs used different {k.replace('_', ' ')}s (sha256 {ha[:12]}… vs {hb[:12]}…)")
    if not a.succeeded or not b.succeeded:
        out.notes.append(f"run status: A {a.status}, B {b.status}")
    return out


def _input_pairs(a: RunResults, b: RunResults) -> list[tuple[str, InputFile | None, InputFile | None]]:
    ia, ib = a.inputs or Inputs(), b.inputs or Inputs()
    return [
        ("deploy_config", ia.deploy_config, ib.deploy_config),
        ("model_config", ia.model_cfg, ib.model_cfg),
        ("checkpoint", ia.checkpoint, ib.checkpoint),
    ]


def _f(v: float | None, nd: int = 4) -> str:
    return "—" if v is None else f"{v:.{nd}g}"


def print_comparison(c: Comparison, name_a: str, name_b: str) -> str:
    """The table on stdout (rich) and the verdict line; returns the verdict line."""
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    t = Table(title=f"A = {name_a}\nB = {name_b}")
    for h in (
        "backend",
        "metric",
        "A",
        "B",
        "Δ (B−A)",
        "p50 A ms",
        "p50 B ms",
        "p50 B/A",
        "p99 A ms",
        "p99 B ms",
        "p99 B/A",
    ):
        t.add_column(h)
    for r in c.rows:
        t.add_row(
            r["backend"],
            str(r["metric"]),
            _f(r["a"]),
            _f(r["b"]),
            _f(r["delta"]),
            _f(r["p50_a"]),
            _f(r["p50_b"]),
            _f(r["p50_ratio"], 3),
            _f(r["p99_a"]),
            _f(r["p99_b"]),
            _f(r["p99_ratio"], 3),
        )
    console.print(t)
    for n in c.notes:
        console.print(f"note: {n}")
    verdict = (
        ("verdict: REGRESSION — " + "; ".join(c.regressions))
        if c.regressed
        else "verdict: no regression beyond the given limits"
    )
    if not c.limits_given:
        verdict += " (none given: pass --max-metric-drop / --max-latency-ratio to judge)"
    console.print(verdict, markup=False)
    return verdict
