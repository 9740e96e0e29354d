"""The shipped Grafana dashboard's queries, evaluated against a real Prometheus.

Shared by the e2e tier (process node) and the node tier's docs/install.md test (operator
in-cluster on a real kubelet), so both check the same thing: every panel returns data.
"""

from __future__ import annotations

import json

from tests.cluster.waiting import wait_for

from .helm import CHART
from .prometheus import PrometheusServer

DASHBOARD = CHART / "dashboards" / "modeldeploy.json"


def dashboard_queries(namespace: str, name: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, Grafana variables substituted."""
    dash = json.loads(DASHBOARD.read_text())
    subs = {
        "$namespace": namespace,
        "$name": name,
        "$project": ".*",
        "$backend": ".*",
        "$precision": ".*",
        "$__rate_interval": "1m",
    }  # the filter variables' "All" value
    out = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"]
            for k, v in subs.items():
                expr = expr.replace(k, v)
            assert "$" not in expr, f"unsubstituted variable in {panel['title']}: {expr}"
            out.append((panel["title"], expr))
    return out


def check_dashboard_returns_data(prom: PrometheusServer, ns: str, name: str) -> None:
    queries = dashboard_queries(ns, name)
    assert len(queries) >= 10
    for title, expr in queries:
        wait_for(
            lambda expr=expr: prom.query(expr), 60, f"dashboard panel {title!r} query {expr} to return data", interval=1
        )
    assert ns in prom.label_values("namespace", "modeldeploy_phase")  # the $namespace variable's query
    assert name in prom.label_values("name", f'modeldeploy_phase{{namespace=~"{ns}"}}')  # the $name variable's query
