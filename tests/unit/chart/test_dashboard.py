"""Static checks of the Grafana dashboard: every query names real operator metrics.

The PromQL itself is evaluated against a real Prometheus in tests/e2e; this catches a
renamed metric or label without a cluster.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "charts" / "modeldeploy-operator" / "dashboards" / "modeldeploy.json"


def _exprs(dash: dict) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _operator_metric_names() -> set[str]:
    src = (REPO / "operator" / "modeldeploy_operator" / "metrics.py").read_text()
    gauges = set(re.findall(r'GaugeMetricFamily\(\s*"(modeldeploy_[a-z_]+)"', src))
    counters = {f"{n}_total" for n in re.findall(r'Counter\(\s*"(modeldeploy_[a-z_]+)"', src)}
    return gauges | counters


def test_every_query_uses_only_metrics_the_operator_exports() -> None:
    dash = json.loads(DASHBOARD.read_text())
    known = _operator_metric_names()
    assert len(known) >= 10
    used: set[str] = set()
    for expr in _exprs(dash):
        names = set(re.findall(r"\b(modeldeploy_[a-z_]+)\b", expr))
        assert names, f"query without a modeldeploy metric: {expr}"
        assert names <= known, f"unknown metric(s) {names - known} in {expr}"
        used |= names
    required = {
        "modeldeploy_inference_latency_seconds",
        "modeldeploy_evaluation_metric",
        "modeldeploy_verification_max_abs_diff",
        "modeldeploy_stage_duration_seconds",
        "modeldeploy_phase",
    }
    assert required <= used, f"dashboard misses {required - used}"


def test_per_deployment_queries_filter_on_the_template_variables() -> None:
    dash = json.loads(DASHBOARD.read_text())
    names = [v["name"] for v in dash["templating"]["list"]]
    assert {"namespace", "name", "datasource"} <= set(names)
    for expr in _exprs(dash):
        if "_total" in expr:  # operator-wide counters carry no namespace/name labels
            continue
        assert 'namespace=~"$namespace"' in expr and 'name=~"$name"' in expr, expr


def test_latency_panels_split_by_backend_and_precision() -> None:
    dash = json.loads(DASHBOARD.read_text())
    lat = [t for p in dash["panels"] for t in p.get("targets", []) if "inference_latency" in t["expr"]]
    quantiles = {re.search(r'quantile="([0-9.]+)"', t["expr"]).group(1) for t in lat}
    assert quantiles == {"0.5", "0.99"}
    assert all("{{backend}}" in t["legendFormat"] and "{{precision}}" in t["legendFormat"] for t in lat)


def test_panel_ids_unique_and_datasource_is_a_variable() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
