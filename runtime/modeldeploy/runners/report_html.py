"""report.html: one self-contained page (figures embedded as base64 PNG) next to report.md.

Self-contained so it can be opened from an S3 console, a CI artifact or an e-mail without
the run's other files; every value is HTML-escaped (configs and messages are user text).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from modeldeploy.core.results import RunResults
from modeldeploy.runners import plots
from modeldeploy.runners.report import EVAL_HEADER, evaluation_rows
from modeldeploy.runners.sidecars import read_sidecar

_CSS = """body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:left}
th{background:#eef}.ok{color:#070}.bad{color:#b00}figure{display:inline-block;margin:6px}img{border:1px solid #ddd}
figcaption{font-size:12px;color:#555}"""


def _e(v: Any) -> str:
    return html.escape("—" if v is None else str(v))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows]
    return "".join(out) + "</table>"


def _img(png: bytes | None, caption: str) -> str:
    if not png:
        return ""
    b64 = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{b64}"><figcaption>{_e(caption)}</figcaption></figure>'


def figures(results: RunResults, base: Path) -> list[tuple[str, bytes]]:
    """(caption, PNG) for every figure the run's data supports; ``base`` is the run's directory."""
    out: list[tuple[str, bytes | None]] = []
    ev = results.evaluation
    raw = {}
    for k, e in ev.items():
        side = read_sidecar(base, e.latency_samples)
        if side and side.get("total"):
            raw[k] = side["total"]
    out.append(("Latency distribution per backend", plots.latency_distribution(raw)))
    out.append(("Latency per stage", plots.stage_bars(ev)))
    out.append(("Accuracy vs latency", plots.accuracy_vs_latency(ev)))
    for k, e in ev.items():
        side = read_sidecar(base, e.pr_curves)
        if side and side.get("pr_curves"):
            out.append((f"PR curves, {k}", plots.pr_curves(k, side["pr_curves"])))
        cm = e.metrics.get("confusion_matrix")
        if isinstance(cm, dict):
            out.append((f"Confusion matrix, {k}", plots.confusion_matrix(k, cm)))
    if results.verification:
        out.append(("Verification error per sample", plots.verification_errors(results.verification)))
    return [(c, p) for c, p in out if p]


def render_report_html(results: RunResults, base: Path) -> str:
    status = results.status
    cls = "ok" if status == "succeeded" else "bad"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>modeldeploy report — {_e(results.project)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>modeldeploy report — {_e(results.project)}</h1>",
        f"<p>Status: <b class='{cls}'>{_e(status)}</b></p>",
    ]
    f = results.failure
    if f:
        parts.append(
            f"<p class='bad'>Failure: stage <code>{_e(f.stage)}</code>, reason <code>{_e(f.reason)}</code> — {_e(f.message)}</p>"
        )
    run = results.run.to_dict() if results.run else {}
    env = results.environment.to_dict()
    meta = [[k, v] for k, v in run.items()] + [[k, v] for k, v in env.items() if v]
    for k, v in (results.inputs.to_dict() if results.inputs else {}).items():
        if isinstance(v, dict):
            meta.append([k, f"{v.get('path')}  sha256 {str(v.get('sha256') or '—')[:16]}…"])
    if meta:
        parts += ["<h2>Run</h2>", _table(["key", "value"], meta)]
    gate = results.gate
    if gate:
        parts.append(
            f"<h2>Gate — <span class='{'ok' if gate.passed else 'bad'}'>{'passed' if gate.passed else 'REGRESSION'}</span></h2>"
        )
        if gate.violations:
            parts.append(
                _table(
                    ["backend", "metric", "value", "reference", "limit"],
                    [[v.backend, v.metric, v.value, v.reference, v.limit] for v in gate.violations],
                )
            )
    if results.evaluation:
        parts += ["<h2>Evaluation</h2>", _table(EVAL_HEADER, evaluation_rows(results))]
    ver = results.verification
    if ver:
        parts.append(f"<h2>Verification — {'passed' if ver.passed else 'FAILED'} (tolerance {_e(ver.tolerance)})</h2>")
        parts.append(
            _table(
                ["reference", "test", "output", "max abs diff", "mean abs diff", "verdict"],
                [
                    [
                        c.reference,
                        c.test,
                        c.output,
                        c.max_abs_diff,
                        c.mean_abs_diff,
                        "pass" if c.passed else f"FAIL ({c.reason})",
                    ]
                    for c in ver.comparisons
                ],
            )
        )
    figs = figures(results, base)
    if figs:
        parts.append("<h2>Figures</h2>")
        parts += [_img(png, caption) for caption, png in figs]
    d = results.durations_s
    if d:
        parts += ["<h2>Stage durations</h2>", _table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in d.items()])]
    parts.append("</body></html>")
    return "\n".join(parts)
