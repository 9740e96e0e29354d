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
    m = re.search(rf'GaugeMetricFamily\("{metric}",.*?labels=(base(?: \+ \[([^\]]*)\])?)\)', METRICS_SRC, re.S)
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
