"""Human-readable outputs: report.md and the console summary table."""

from __future__ import annotations

from typing import Any

from modeldeploy.core.results import RunResults


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{nd}f}"
    return str(v)


def evaluation_rows(results: RunResults) -> list[list[str]]:
    rows = []
    for backend, e in results.evaluation.items():
        m = e.headline_metric
        lat = e.latency_ms
        rows.append(
            [
                backend,
                e.precision or "—",
                f"{m}={_fmt(e.metrics.get(m))}",
                _fmt(lat.p50, 3),
                _fmt(lat.p99, 3),
                _fmt(lat.mean, 3),
                str(e.num_samples),
            ]
        )
    return rows


EVAL_HEADER = ["backend", "precision", "headline metric", "p50 ms", "p99 ms", "mean ms", "samples"]


def render_report_md(results: RunResults) -> str:
    lines = [f"# modeldeploy report — {results.project}", ""]
    lines.append(f"**Status:** {results.status}")
    f = results.failure
    if f:
        lines.append(f"**Failure:** stage `{f.stage}`, reason `{f.reason}` — {f.message}")
    env = results.environment.to_dict()
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v), ""]
    ver = results.verification
    if ver:
        lines += [
            f"## Verification — {'PASSED' if ver.passed else 'FAILED'} (tolerance {ver.tolerance}, {ver.num_samples} samples)",
            "",
            "| reference | test | output | max abs diff | mean abs diff | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for c in ver.comparisons:
            verdict = "pass" if c.passed else f"FAIL ({c.reason})"
            lines.append(
                f"| {c.reference} | {c.test} | {c.output} | {_fmt(c.max_abs_diff)} | {_fmt(c.mean_abs_diff)} | {verdict} |"
            )
        lines.append("")
        preds = ver.predictions or []
        if preds:
            ok = sum(1 for p in preds if p.passed)
            lines += [f"Final predictions: {ok}/{len(preds)} sample comparisons agree.", ""]
    if results.evaluation:
        lines += ["## Evaluation", "", "| " + " | ".join(EVAL_HEADER) + " |", "|" + "---|" * len(EVAL_HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in evaluation_rows(results)]
        lines.append("")
        for backend, e in results.evaluation.items():
            st = e.stage_latency_ms
            if st:
                lines.append(
                    f"Stage latency, {backend} (p50 / p99 ms): "
                    + ", ".join(f"{k} {_fmt(v.p50, 3)} / {_fmt(v.p99, 3)}" for k, v in st.items())
                )
            if e.compile_seconds:  # paid once per process (less with the compile cache), never in the latencies
                lines.append(
                    f"torch.compile, {backend} (first call, not in the latencies, s): "
                    + ", ".join(f"{k} {v:.1f}" for k, v in e.compile_seconds.items())
                )
        lines.append("")
        for backend, e in results.evaluation.items():
            scalars = {k: v for k, v in e.metrics.items() if isinstance(v, (int, float))}
            if scalars:
                lines.append(f"Metrics, {backend}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in scalars.items()))
        lines.append("")
    if results.artifacts:
        lines += ["## Artifacts", "", "| name | kind | bytes | sha256 |", "|---|---|---|---|"]
        lines += [f"| {a.name} | {a.kind} | {a.bytes} | `{a.sha256[:16]}…` |" for a in results.artifacts]
        lines.append("")
    d = results.durations_s
    if d:
        lines.append("Stage durations (s): " + ", ".join(f"{k} {v:.2f}" for k, v in d.items()))
    return "\n".join(lines) + "\n"


def print_console_summary(results: RunResults) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    # In a pod/CI log there is no terminal width: don't let rich squeeze the table to 80.
    console = Console(stderr=False) if sys.stdout.isatty() else Console(stderr=False, width=140)
    ver = results.verification
    title = f"modeldeploy {results.project}: {results.status}"
    if ver:
        title += f" — verification {'passed' if ver.passed else 'FAILED'}"
    rows = evaluation_rows(results)
    if not rows:  # nothing was evaluated (e.g. a failed load): no empty table
        console.print(title)
        return
    table = Table(title=title)
    for h in EVAL_HEADER:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    # a failure is not repeated here: the CLI prints it once, as its final "modeldeploy: error:" line
