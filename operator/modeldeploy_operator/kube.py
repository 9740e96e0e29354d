"""The few Kubernetes API calls the operator makes, as plain dicts in and out.

Uses the official client only for configuration, auth and transport (`param_serialize`
+ `call_api`): its typed methods validate request bodies into pydantic models and decode
responses into model classes, which costs more CPU and memory than the request itself
at hundreds of CRs — and the operator works on dicts anyway.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Protocol

from .constants import GROUP, JOB_NAME_LABEL, LABEL_DEPLOYMENT, PLURAL, VERSION


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code (404, 409, …)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body


class KubeClient(Protocol):
    """What the handlers, ``reconcile`` and the Event poster call: :class:`Kube` in the
    operator, an in-memory double in the unit tests. Objects are plain dicts; absent
    objects are None (404), and AlreadyExists (409) is an answer, not an error."""

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any: ...

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_deployment_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]: ...

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_job(self, namespace: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]: ...

    def list_jobs(self, namespace: str, deployment: str) -> list[dict[str, Any]]: ...

    def delete_job(self, namespace: str, name: str) -> bool: ...

    def create_configmap(self, namespace: str, body: dict[str, Any]) -> bool: ...

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]: ...


class Kube:
    """Sync API facade (a :class:`KubeClient`); one instance shared by all handler threads (urllib3 pools are thread-safe)."""

    def __init__(self, api_client: Any = None, pool_size: int = 32) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            conf = client.Configuration.get_default_copy()
            conf.connection_pool_maxsize = pool_size
            api_client = client.ApiClient(conf)
        self.api_client = api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        m, url, hdrs, data, post = self.api_client.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp = self.api_client.call_api(m, url, header_params=hdrs, body=data, post_params=post, _request_timeout=60)
        raw = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, str(resp.reason), raw.decode(errors="replace") if raw else "")
        return json.loads(raw) if raw else None

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    # -- ModelDeployments
    def _cr_path(self, namespace: str, name: str = "") -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}" + (f"/{name}" if name else "")

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(self._cr_path(namespace, name))

    def patch_deployment_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.request(
            "PATCH",
            self._cr_path(namespace, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    # -- Jobs
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")

    def create_job(self, namespace: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(job, created). An existing Job of the same name (409) is returned, not an error."""
        try:
            return self.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=body), True
        except ApiError as e:
            if e.status != 409:
                raise
        existing = self.get_job(namespace, body["metadata"]["name"])
        if existing is None:  # deleted between the 409 and the read: let the caller retry
            raise RuntimeError(f"Job {namespace}/{body['metadata']['name']} vanished after AlreadyExists")
        return existing, False

    def list_jobs(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        out = self.request(
            "GET",
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            query={"labelSelector": f"{LABEL_DEPLOYMENT}={deployment[:63].rstrip('-._')}"},
        )
        return list(out.get("items") or [])

    def delete_job(self, namespace: str, name: str) -> bool:
        try:
            self.request(
                "DELETE",
                f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"},
            )
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    # -- ConfigMaps / Pods
    def create_configmap(self, namespace: str, body: dict[str, Any]) -> bool:
        """True if created, False if it already existed (the caller checks owner and content: a
        tenant allowed to create ConfigMaps could have squatted the predictable name)."""
        try:
            self.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)
            return True
        except ApiError as e:
            if e.status == 409:
                return False
            raise

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The credentials Secret a CR names (opt-in label, values to scrub); None if absent.
        PermissionError when RBAC does not grant get (the callers degrade, see scrub.py)."""
        try:
            return self._get_or_none(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as e:
            if e.status == 403:
                raise PermissionError(f"HTTP 403 reading Secret {namespace}/{name}") from None
            raise

    def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        out = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": f"{JOB_NAME_LABEL}={job_name}"}
        )
        return list(out.get("items") or [])
