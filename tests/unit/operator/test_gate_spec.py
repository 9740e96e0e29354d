"""spec.verification.gate / spec.evaluation.gate (incl. the baseline of the last succeeded
generation) → validated --cfg-options and --baseline of the Job; status.lastSucceeded; an open
spec.project with the cluster's allow-list. Pure functions (no cluster); the runtime's own
config loader judges the rendered overrides (no double)."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_operator import jobs
from modeldeploy_operator import policy as pol
from modeldeploy_operator import spec as specmod
from modeldeploy_operator import status as st
from modeldeploy_operator.config import OperatorConfig

from .samples import deployment, job, pod, summary_json

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "crds/modeldeployment.yaml").read_text())
SPEC = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
NOW = dt.datetime(2026, 11, 25, 10, 10, tzinfo=dt.timezone.utc)
GATES = {
    "verification": {"gate": {"maxMeanAbsDiff": 0.0005}},
    "evaluation": {
        "gate": {
            "reference": "onnxruntime",
            "maxMetricDrop": 0.01,
            "maxLatencyMs": 250,
            "maxCV": 0.4,
            "baseline": {"from": "lastSucceeded", "maxMetricDrop": 0.02, "maxLatencyRatio": 1.5},
        }
    },
}
GOOD_RESULTS = "s3://artifacts/calib/ns/demo/g1/runs/demo-abcd1234-x1/results.json"


def _with_last(body: dict[str, Any], results_uri: str = GOOD_RESULTS) -> dict[str, Any]:
    body["status"] = {"lastSucceeded": {"generation": 1, "resultsUri": results_uri}}
    return body


def test_gate_fields_render_as_runtime_keys() -> None:
    opts = specmod.cfg_options(deployment(**GATES)["spec"])
    assert {
        "verification.gate.max_mean_abs_diff=0.0005",
        "evaluation.gate.reference=onnxruntime",
        "evaluation.gate.max_metric_drop=0.01",
        "evaluation.gate.max_latency_ms=250.0",
        "evaluation.gate.max_cv=0.4",
        "evaluation.gate.baseline.max_metric_drop=0.02",
        "evaluation.gate.baseline.max_latency_ratio=1.5",
    } <= set(opts)
    assert not any("from" in o or "uri" in o for o in opts)  # the location travels as --baseline only
    assert not any("gate" in o for o in specmod.cfg_options(deployment()["spec"]))


def test_the_runtime_accepts_the_rendered_gate_overrides() -> None:
    """The runtime's own loader (real, builtin calibration config) reads every rendered key."""
    from modeldeploy.cli import _load_config, _parse_cfg_options

    opts = specmod.cfg_options(deployment(**GATES)["spec"]) + ["evaluation.gate.baseline.uri=" + GOOD_RESULTS]
    cfg = _load_config("builtin:calibration/deploy_demo.py", _parse_cfg_options(opts))
    g = cfg.evaluation.gate
    assert (g.reference, g.max_metric_drop, g.max_latency_ms, g.max_cv) == ("onnxruntime", 0.01, 250.0, 0.4)
    assert (g.baseline.uri, g.baseline.max_metric_drop, g.baseline.max_latency_ratio) == (GOOD_RESULTS, 0.02, 1.5)
    assert cfg.verification.gate.max_mean_abs_diff == 0.0005


def test_job_gets_the_last_succeeded_results_as_baseline_and_spec_json_agrees() -> None:
    body = _with_last(deployment(generation=2, **GATES))
    h = specmod.spec_hash(body["spec"])
    args = jobs.build_job(body, h, OperatorConfig())["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--baseline") + 1] == GOOD_RESULTS
    assert args.index("--baseline") < args.index("--cfg-options")  # a flag, not swallowed by nargs='+'
    doc = json.loads(jobs.build_configmap(body, h)["data"]["spec.json"])
    assert doc["args"] == args and shlex.split(doc["commandLine"])[1:] == args


@pytest.mark.parametrize(
    "spec_gate, status_uri",
    [
        (GATES, None),  # a first generation: nothing succeeded yet
        ({}, GOOD_RESULTS),  # the spec asks for no baseline
        (GATES, "s3://artifacts/x/results.json --cfg-options export.mode=trt"),  # not a recorded shape
        (GATES, "s3://artifacts/../other/results.json"),
        (GATES, "s3://artifacts/calib/ns/demo/g1/runs/r/manifest.json"),
        (GATES, "http://evil/results.json"),
    ],
)
def test_no_baseline_flag_without_a_recorded_good_results_json(spec_gate: dict, status_uri: str | None) -> None:
    body = deployment(generation=2, **spec_gate)
    if status_uri is not None:
        _with_last(body, status_uri)
    args = specmod.runtime_args(body["spec"], "a" * 64, baseline=specmod.baseline_uri(body["spec"], body.get("status")))
    assert "--baseline" not in args


def test_gate_bounds_agree_with_the_crd() -> None:
    def node(path: str) -> dict[str, Any]:
        cur: dict[str, Any] = {"properties": SPEC}
        for part in path.split("."):
            cur = cur["properties"][part]
        return cur

    for key, (lo, exclusive, hi) in pol.GATE_BOUNDS.items():
        n = node(key)
        assert n["type"] == "number" and n["minimum"] == lo and n["maximum"] == hi, key
        assert bool(n.get("exclusiveMinimum")) == exclusive, key
        assert n.get("description"), f"{key} has no description for kubectl explain"
    base = node("evaluation.gate.baseline")
    assert base["properties"]["from"]["enum"] == ["lastSucceeded"]
    assert "maxMetricDrop" in base["x-kubernetes-validations"][0]["rule"]
    assert SPEC["project"]["pattern"] == pol.PROJECT_PATTERN.pattern and "enum" not in SPEC["project"]


@pytest.mark.parametrize(
    "gates, needle",
    [
        ({"evaluation": {"gate": {"maxMetricDrop": -1}}}, "maxMetricDrop must be a number >= 0"),
        ({"evaluation": {"gate": {"maxLatencyMs": float("inf")}}}, "maxLatencyMs must be a number > 0"),
        ({"evaluation": {"gate": {"maxCV": "0.3"}}}, "maxCV must be a number"),
        ({"evaluation": {"gate": {"maxCV": True}}}, "maxCV must be a number"),
        ({"verification": {"gate": {"maxMeanAbsDiff": 0}}}, "maxMeanAbsDiff must be a number > 0"),
        ({"evaluation": {"gate": {"baseline": {"maxLatencyRatio": 1e9}}}}, "maxLatencyRatio must be a number"),
        ({"evaluation": {"gate": {"baseline": {}}}}, "baseline needs a limit"),
        ({"evaluation": {"gate": {"reference": "x;rm -rf /"}}}, "reference must be a backend name"),
        ({"evaluation": {"gate": {"baseline": {"from": "first", "maxMetricDrop": 0.1}}}}, "must be lastSucceeded"),
    ],
)
def test_bad_gate_values_are_refused_by_the_operator_re_check(gates: dict, needle: str) -> None:
    found = pol.check(deployment(**gates)["spec"], pol.Policy())
    assert [v.rule for v in found] == [pol.RULE_GATE] and needle in str(found[0]), found


def test_good_gate_values_pass() -> None:
    assert pol.check(deployment(**GATES)["spec"], pol.Policy()) == []


def test_any_project_name_unless_the_cluster_narrows_them() -> None:
    assert pol.check(deployment(project="my_detector")["spec"], pol.Policy()) == []
    narrowed = pol.from_json(json.dumps({"allowedProjects": ["calibration", "my_detector"]}))
    assert pol.check(deployment(project="my_detector")["spec"], narrowed) == []
    (v,) = pol.check(deployment(project="yolox")["spec"], narrowed)
    assert v.rule == pol.RULE_PROJECT and "'yolox' is not allowed" in str(v) and "my_detector" in str(v)
    (v,) = pol.check(deployment(project="Bad Name")["spec"], pol.Policy())
    assert v.rule == pol.RULE_PROJECT
    assert pol.from_json(json.dumps({"allowedProjects": []})).projects is None  # the chart's default: any
    with pytest.raises(pol.PolicyError, match="allowedProjects"):
        pol.from_json(json.dumps({"allowedProjects": ["Not A Name"]}))


def _finished(body: dict[str, Any], code: int, message: str) -> dict[str, Any]:
    h = specmod.spec_hash(body["spec"])
    real = jobs.build_job(body, h, OperatorConfig())  # has the real --artifact-uri
    done = "Complete" if code == 0 else "Failed"
    real["status"] = job(real["metadata"]["name"], conditions=[(done, done)], succeeded=int(code == 0))["status"]
    return st.derive_status(
        cr=body,
        job=real,
        pods=[pod("p1", phase="Succeeded" if code == 0 else "Failed", exit_code=code, message=message)],
        now=NOW,
        unschedulable_after_s=120.0,
    )


def test_last_succeeded_is_recorded_on_success_and_survives_a_tripped_gate_and_a_new_spec() -> None:
    g1 = deployment(generation=1, **GATES)
    g1["status"] = {"specHash": "h1"}
    ok = _finished(g1, 0, summary_json(results_uri=GOOD_RESULTS))
    last = ok["lastSucceeded"]
    assert last["generation"] == 1 and last["resultsUri"] == GOOD_RESULTS and last["specHash"] == "h1"
    assert last["artifactUri"] == "s3://artifacts/calib/ns/demo/g1" == ok["artifactUri"]

    g2 = deployment(generation=2, **GATES)
    g2["status"] = {**ok, "specHash": "h2"}
    reset = st.initial_status(cr=g2, hash_="h2", job_name="demo-h2", now=NOW)
    assert "lastSucceeded" not in reset and reset["resultsUri"] is None  # results of g1 cleared, publication kept
    msg = summary_json(
        status="failed",
        results_uri="s3://artifacts/calib/ns/demo/g2/runs/p1/results.json",
        failure={"stage": "gate", "reason": "RegressionDetected", "message": "against baseline …: accuracy drop"},
    )
    failed = _finished(g2, 3, msg)
    assert failed["failure"]["reason"] == "RegressionDetected" and "lastSucceeded" not in failed
    assert st.diff(g2["status"], failed).get("lastSucceeded") is None  # the patch leaves it alone


def test_a_run_without_an_output_store_is_no_publication() -> None:
    body = deployment()
    del body["spec"]["output"]
    assert "lastSucceeded" not in _finished(body, 0, summary_json(results_uri="/work/results.json"))
