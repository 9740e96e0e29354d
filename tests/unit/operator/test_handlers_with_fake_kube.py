"""Reconcile / observe queue wiring (no kopf, no cluster) against the in-memory API double."""

import threading
import time

from modeldeploy_operator import handlers as h
from modeldeploy_operator.config import OperatorConfig
from modeldeploy_operator.spec import child_name, spec_hash

from .samples import deployment
from .test_reconcile_with_fake_kube import FakeKube

CFG = OperatorConfig(runtime_image="img:1", max_workers=4)


def _state() -> h.State:
    state = h.State(config=CFG, kube=FakeKube())
    state.reconciler = h.reconcile_queue(state, workers=2)
    return state


def _drain(state: h.State) -> None:
    assert state.reconciler.join(timeout=10)


def _counter(state: h.State, name: str, **labels: str) -> float:
    for metric in state.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


def test_burst_of_watch_events_for_a_new_cr_creates_one_job_and_writes_no_status():
    state = _state()
    body = deployment()
    state.kube.crs[("ns", "demo")] = body
    state.records.put(body)
    gate = threading.Event()
    orig = state.kube.create_configmap

    def slow_create_configmap(ns, cm):  # keeps the first pass busy while more events arrive
        gate.wait(5)
        return orig(ns, cm)

    state.kube.create_configmap = slow_create_configmap
    for _ in range(5):
        state.reconciler.add(("ns", "demo"), None)
    gate.set()
    _drain(state)
    job_name = child_name("demo", spec_hash(body["spec"]))
    assert state.kube.creates == 1 and state.kube.status_patches == []
    assert state.records.job_owner("ns", job_name) == "uid-demo"
    assert not h.wants_reconcile(state, body)  # its Job is known: nothing more until the Job's first event
    assert _counter(state, "modeldeploy_jobs_created_total") == 1


def test_first_job_event_records_status_and_later_cr_events_are_no_ops():
    state = _state()
    body = deployment()
    state.kube.crs[("ns", "demo")] = body
    state.records.put(body)
    state.reconciler.add(("ns", "demo"), None)
    _drain(state)
    job_name = child_name("demo", spec_hash(body["spec"]))
    h.do_observe(state, "ns", "demo", job=state.kube.get_job("ns", job_name), with_pods=False)
    cr = state.kube.get_deployment("ns", "demo")
    assert cr["status"]["jobName"] == job_name and cr["status"]["phase"] == "Pending"
    assert len(state.kube.status_patches) == 1
    state.records.drop_job("ns", job_name)  # e.g. after a restart, before the Job watch listed it
    assert not h.wants_reconcile(state, cr)  # the status alone says the spec is handled


def test_failed_reconcile_is_retried_after_a_delay():
    state = _state()
    body = deployment()
    state.kube.crs[("ns", "demo")] = body
    state.records.put(body)
    orig = state.kube.create_job
    calls = {"n": 0}

    def create_job_fails_once(ns, job):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("HTTP 500 from a test double")
        return orig(ns, job)

    state.kube.create_job = create_job_fails_once
    delays = []
    state.reconciler._after = lambda delay, fn: (delays.append(delay), fn())  # retry at once, recording the delay
    state.reconciler.add(("ns", "demo"), None)
    deadline = time.monotonic() + 5
    while state.kube.creates == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    _drain(state)
    assert delays == [5.0] and state.kube.creates == 1
    assert _counter(state, "modeldeploy_reconciles_total", result="error") == 1


def test_deleted_cr_is_not_reconciled():
    state = _state()
    state.reconciler.add(("ns", "gone"), None)  # nothing in the cache: deleted before the pass ran
    _drain(state)
    assert state.kube.creates == 0
    assert _counter(state, "modeldeploy_reconcile_queue_seconds_count") == 1  # the wait for a thread is measured


def test_burst_of_job_events_for_a_waiting_cr_is_one_observation_with_the_latest_job(monkeypatch):
    state = h.State(config=CFG, kube=FakeKube())
    state.observer = h.observe_queue(state, workers=1)
    gate, started = threading.Event(), threading.Event()
    calls = []

    def do_observe_double(state, namespace, name, **request):  # records instead of calling the API
        calls.append((name, request))
        if name == "busy":
            started.set()
            gate.wait(5)

    monkeypatch.setattr(h, "do_observe", do_observe_double)
    state.observer.add(("ns", "busy"), h.ObserveRequest())
    assert started.wait(5)  # the only worker is held: "demo" waits while its Job events arrive
    for i, with_pods in enumerate((False, True, False)):
        state.observer.add(("ns", "demo"), h.ObserveRequest(job={"rv": i}, with_pods=with_pods))
    gate.set()
    assert state.observer.join(timeout=10)
    assert calls[1:] == [("demo", {"job": {"rv": 2}, "with_pods": True, "may_reconcile": False})]


def test_cr_record_keeps_the_newest_body_and_is_dropped_with_the_cr():
    records = h.Records()
    newer = deployment()
    newer["metadata"].update(resourceVersion="7", managedFields=[{"manager": "kubectl"}])
    older = deployment()
    older["metadata"]["resourceVersion"] = "5"
    records.put(newer)
    records.put(older)  # a watch event still in flight after our own patch's response
    assert records.body("ns", "demo")["metadata"]["resourceVersion"] == "7"
    assert "managedFields" not in records.body("ns", "demo")["metadata"]  # memory: nothing reads them
    assert "managedFields" in newer["metadata"]  # the caller's body is not modified
    recreated = deployment()
    recreated["metadata"].update(uid="uid-2", resourceVersion="3")
    records.put(recreated)  # another object of the same name: replaces whatever its rv
    assert records.body("ns", "demo")["metadata"]["uid"] == "uid-2"
    records.cr("ns", "demo").on_watch = True
    assert [k for k, _ in records.watched()] == [("ns", "demo")]
    records.drop("ns", "demo")
    assert records.body("ns", "demo") is None and records.watched() == []


def test_resync_leaves_a_cr_alone_until_an_interval_after_it_was_first_seen():
    record = h.Records().cr("ns", "new")  # a CR just seen on the watch, its reconcile queued
    assert time.monotonic() - record.last_observed < CFG.resync_interval_s
