import datetime as dt

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy_operator import status as st
from modeldeploy_operator.metrics import Metrics

from .samples import deployment, job, pod, summary_json


def _succeeded_cr(name):
    cr = deployment(name=name)
    j = job(
        f"{name}-abcd1234",
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
    return cr


def samples(m):
    out = {}
    for fam in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_are_rebuilt_from_status_alone():
    m = Metrics()  # a freshly started operator: only the CR list feeds it
    m.status.update(_succeeded_cr("a"))
    s = samples(m)
    base = (("name", "a"), ("namespace", "ns"), ("project", "calibration"))
    lat = dict(base + (("backend", "onnxruntime:cpu"), ("precision", "fp32"), ("quantile", "0.5")))
    assert s[("modeldeploy_inference_latency_seconds", tuple(sorted(lat.items())))] == 1.2 / 1000
    acc = dict(base + (("backend", "pytorch:cpu"), ("precision", "fp32"), ("metric", "accuracy")))
    assert s[("modeldeploy_evaluation_metric", tuple(sorted(acc.items())))] == 0.94
    assert s[("modeldeploy_verification_max_abs_diff", base)] == 1.2e-05
    assert s[("modeldeploy_stage_duration_seconds", tuple(sorted(base + (("stage", "evaluate"),))))] == 2.0
    assert s[("modeldeploy_phase", tuple(sorted(base + (("phase", "Succeeded"),))))] == 1.0
    assert s[("modeldeploy_phase", tuple(sorted(base + (("phase", "Running"),))))] == 0.0
    assert (
        s[("modeldeploy_last_success_timestamp_seconds", base)]
        == dt.datetime(2026, 11, 25, 10, 4, tzinfo=dt.timezone.utc).timestamp()
    )


def test_deleted_cr_series_disappear_and_others_stay():
    m = Metrics()
    m.status.update(_succeeded_cr("a"))
    m.status.update(_succeeded_cr("b"))
    m.status.remove("ns", "a")
    names = {dict(k[1]).get("name") for k in samples(m) if k[0].startswith("modeldeploy_phase")}
    assert names == {"b"}


def test_pending_cr_has_phase_but_no_result_series():
    m = Metrics()
    cr = deployment(name="p")
    cr["status"] = {"phase": "Pending"}
    m.status.update(cr)
    s = samples(m)
    assert not [k for k in s if k[0] == "modeldeploy_inference_latency_seconds"]
    assert [v for k, v in s.items() if k[0] == "modeldeploy_phase" and ("phase", "Pending") in k[1]] == [1.0]


def test_counters_exist_with_base_names():
    m = Metrics()
    m.reconciles.labels(result="success").inc()
    m.jobs_created.inc()
    s = samples(m)
    assert s[("modeldeploy_reconciles_total", (("result", "success"),))] == 1.0
    assert s[("modeldeploy_jobs_created_total", ())] == 1.0
