"""The dashboard's comparison table and filter variables (issue #15 item 8), checked
against the labels operator/modeldeploy_operator/metrics.py really exports.

A static check: tests/e2e evaluates every query against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "charts" / "modeldeploy-operator" / "dashboards" / "modeldeploy.json"
METRICS_SRC = (REPO / "operator" / "modeldeploy_operator" / "metrics.py").read_text()


def _labels_of(metric: str) -> set[str]:
    """Label names a GaugeMetricFamily is declared with in metrics.py (base + extra)."""
    base = set(re.search(r"base = \[([^\]]*)\]", METRICS_SRC).group(1).replace('"', "").replace(" ", "").split(","))
    m = re.search(rf'GaugeMetricFamily\(\s*"{metric}",.*?labels=(base(?: \+ \[([^\]]*)\])?),?\s*\)', METRICS_SRC, re.S)
    assert m, f"{metric} not declared in metrics.py"
    extra = set(m.group(2).replace('"', "").replace(" ", "").split(",")) if m.group(2) else set()
    return base | extra


def _dash() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_filter_variables_exist_and_query_real_labels():
    variables = {v["name"]: v for v in _dash()["templating"]["list"]}
    assert {"namespace", "name", "project", "backend", "precision"} <= set(variables)
    for name in ("project", "backend", "precision"):
        v = variables[name]
        q = v["query"]["query"]
        metric, label = re.fullmatch(r"label_values\((modeldeploy_[a-z_]+)\{[^}]*\}, ([a-z]+)\)", q).groups()
        assert label == name and label in _labels_of(metric), q
        assert v["includeAll"] and v["multi"] and v["allValue"] == ".*"  # empty precision labels stay visible


def test_comparison_table_joins_latency_and_accuracy_per_model_backend_precision():
    tables = [p for p in _dash()["panels"] if p["type"] == "table"]
    assert len(tables) == 1
    table = tables[0]
    exprs = {t["refId"]: t["expr"] for t in table["targets"]}
    assert all(t.get("instant") and t.get("format") == "table" for t in table["targets"])
    assert 'quantile="0.5"' in exprs["A"] and "* 1000" in exprs["A"]  # seconds → ms
    assert "modeldeploy_evaluation_metric" in exprs["C"]
    group = {re.search(r"max by \(([^)]*)\)", e).group(1) for e in exprs.values()}
    assert group == {"namespace, name, project, backend, precision"}  # identical label sets: merge joins rows
    for e in exprs.values():
        for var in ("namespace", "name", "project", "backend", "precision"):
            assert f'{var}=~"${var}"' in e, (var, e)
    ids = [t["id"] for t in table["transformations"]]
    assert ids[0] == "merge"
    rename = table["transformations"][1]["options"]["renameByName"]
    assert rename["Value #A"].endswith("(ms)") and "accuracy" in rename["Value #C"]


def test_every_label_in_a_selector_or_grouping_is_exported_by_that_metric():
    for panel in _dash()["panels"]:
        for t in panel.get("targets", []):
            for metric, selector in re.findall(r"(modeldeploy_[a-z_]+)\{([^}]*)\}", t["expr"]):
                if metric.endswith("_total"):
                    continue
                used = set(re.findall(r"([a-z_]+)=~?\"", selector))
                assert used <= _labels_of(metric), (panel["title"], metric, used - _labels_of(metric))
            for grouping in re.findall(r"by \(([^)]*)\)", t["expr"]):
                labels = {g.strip() for g in grouping.split(",")}
                metrics = set(re.findall(r"(modeldeploy_[a-z_]+)\{", t["expr"]))
                for metric in metrics - {m for m in metrics if m.endswith("_total")}:
                    assert labels <= _labels_of(metric), (panel["title"], labels)


def test_panels_do_not_overlap():
    taken: set[tuple[int, int]] = set()
    for p in _dash()["panels"]:
        g = p["gridPos"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, p["title"]
        taken |= cells


def test_comparison_queries_evaluated_by_promtool_on_the_operators_own_series(tmp_path):
    """The table's PromQL run by Prometheus's own engine (`promtool test rules`) over the
    series the operator's collector exports for a real derived status: one row per
    backend × precision, latency in ms, accuracy next to it."""
    import datetime as dt
    import shutil
    import subprocess
    import sys

    import pytest
    import yaml

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus); the static checks above still ran")
    sys.path.insert(0, str(REPO / "operator"))
    sys.path.insert(0, str(REPO))
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from modeldeploy_operator import status as st
    from modeldeploy_operator.metrics import Metrics
    from tests.unit.operator.samples import deployment, job, pod, summary_json

    cr = deployment(name="calib")
    j = job(
        "calib-abcd1234",
        conditions=[("Complete", "CompletionsReached")],
        succeeded=1,
        completionTime="2026-11-25T10:04:00Z",
    )
    cr["status"] = st.derive_status(
        cr=cr,
        job=j,
        pods=[pod("p", phase="Succeeded", exit_code=0, message=summary_json())],
        now=dt.datetime(2026, 11, 25, 10, 5, tzinfo=dt.timezone.utc),
        unschedulable_after_s=120,
    )
    m = Metrics()
    m.status.update(cr)
    series = []
    for fam in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in fam.samples:
            if s.name.startswith(("modeldeploy_inference", "modeldeploy_evaluation")):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                series.append({"series": f"{s.name}{{{labels}}}", "values": f"{s.value}x5"})
    subs = {"$namespace": "ns", "$name": "calib", "$project": ".*", "$backend": ".*", "$precision": ".*"}
    table = next(p for p in _dash()["panels"] if p["type"] == "table")
    tests = []
    for t in table["targets"]:
        expr = t["expr"]
        for k, v in subs.items():
            expr = expr.replace(k, v)
        want = []
        for e in cr["status"]["evaluation"]:
            value = {"A": e["p50Ms"], "B": e["p99Ms"], "C": e["value"]}[t["refId"]]
            want.append(
                {
                    "labels": "{"
                    + f'backend="{e["backend"]}",name="calib",namespace="ns",precision="{e["precision"]}",'
                    'project="calibration"' + "}",
                    "value": value,
                }
            )
        tests.append({"expr": expr, "eval_time": "2m", "exp_samples": want})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": []}))
    spec = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec))
    r = subprocess.run(
        [promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(cr["status"]["evaluation"]) == 2  # two backends → two rows per query
