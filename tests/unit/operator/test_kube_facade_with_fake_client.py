"""Kube facade over a fake ApiClient double: paths, content types, 404/409 handling."""

import json

import pytest

from modeldeploy_operator.kube import ApiError, Kube


class FakeResp:
    def __init__(self, status, body):
        self.status, self.reason, self._body = status, "R", json.dumps(body).encode() if body is not None else b""

    def read(self):
        return self._body


class FakeApiClient:
    """Records requests; answers from a {(method, path-without-query): (status, body)} table."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def param_serialize(self, method, path, header_params=None, body=None, auth_settings=None):
        return method, path, header_params, body, None

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        self.calls.append((method, url, header_params, body))
        status, payload = self.answers.get((method, url.split("?")[0]), (200, {}))
        return FakeResp(status, payload)


def test_get_missing_job_is_none_and_other_errors_raise():
    fake = FakeApiClient(
        {
            ("GET", "/apis/batch/v1/namespaces/ns/jobs/a"): (404, {"reason": "NotFound"}),
            ("GET", "/apis/batch/v1/namespaces/ns/jobs/b"): (500, {"reason": "boom"}),
        }
    )
    k = Kube(api_client=fake)
    assert k.get_job("ns", "a") is None
    with pytest.raises(ApiError) as e:
        k.get_job("ns", "b")
    assert e.value.status == 500


def test_create_job_conflict_returns_existing():
    fake = FakeApiClient(
        {
            ("POST", "/apis/batch/v1/namespaces/ns/jobs"): (409, {"reason": "AlreadyExists"}),
            ("GET", "/apis/batch/v1/namespaces/ns/jobs/j"): (200, {"metadata": {"name": "j"}}),
        }
    )
    job, created = Kube(api_client=fake).create_job("ns", {"metadata": {"name": "j"}})
    assert job == {"metadata": {"name": "j"}} and created is False


def test_status_patch_is_a_merge_patch_on_the_status_subresource():
    fake = FakeApiClient({})
    Kube(api_client=fake).patch_deployment_status("ns", "d", {"phase": "Running"})
    method, url, headers, body = fake.calls[0]
    assert method == "PATCH" and url == "/apis/modeldeploy.io/v1alpha1/namespaces/ns/modeldeployments/d/status"
    assert headers["Content-Type"] == "application/merge-patch+json" and body == {"status": {"phase": "Running"}}


def test_list_pods_uses_job_name_selector_and_delete_is_background():
    fake = FakeApiClient({("GET", "/api/v1/namespaces/ns/pods"): (200, {"items": [{"metadata": {"name": "p"}}]})})
    k = Kube(api_client=fake)
    assert k.list_job_pods("ns", "j-1")[0]["metadata"]["name"] == "p"
    assert "labelSelector=batch.kubernetes.io%2Fjob-name%3Dj-1" in fake.calls[0][1]
    assert k.delete_job("ns", "old") is True
    assert fake.calls[1][3]["propagationPolicy"] == "Background"
