"""The few Kubernetes API calls the operator makes, as plain dicts in and out.

Uses the official client for auth/transport but skips its model deserialisation
(`_preload_content=False`): the operator works on dicts anyway, and decoding into
generated model classes costs more CPU than the request itself at 500 CRs.
"""

from __future__ import annotations

import json
from typing import Any

from .constants import GROUP, JOB_NAME_LABEL, LABEL_DEPLOYMENT, PLURAL, VERSION


class Kube:
    """Sync API facade; one instance shared by all handler threads (urllib3 is thread-safe)."""

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
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.ApiException = client.exceptions.ApiException

    @staticmethod
    def _json(resp: Any) -> Any:
        return json.loads(resp.data) if resp.data else None

    def _get_or_none(self, fn: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return self._json(fn(*args, _preload_content=False))
        except self.ApiException as e:
            if e.status == 404:
                return None
            raise

    # -- ModelDeployments
    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except self.ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_deployment_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": status})

    # -- Jobs
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(self.batch.read_namespaced_job, name, namespace)

    def create_job(self, namespace: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(job, created). An existing Job of the same name (409) is returned, not an error."""
        try:
            return self._json(self.batch.create_namespaced_job(namespace, body, _preload_content=False)), True
        except self.ApiException as e:
            if e.status != 409:
                raise
        existing = self.get_job(namespace, body["metadata"]["name"])
        if existing is None:  # deleted between the 409 and the read: let the caller retry
            raise RuntimeError(f"Job {namespace}/{body['metadata']['name']} vanished after AlreadyExists")
        return existing, False

    def list_jobs(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        resp = self.batch.list_namespaced_job(namespace, label_selector=f"{LABEL_DEPLOYMENT}={deployment}", _preload_content=False)
        return list(self._json(resp).get("items") or [])

    def delete_job(self, namespace: str, name: str) -> bool:
        from kubernetes import client

        try:
            self.batch.delete_namespaced_job(name, namespace, body=client.V1DeleteOptions(propagation_policy="Background"),
                                             _preload_content=False)
            return True
        except self.ApiException as e:
            if e.status == 404:
                return False
            raise

    # -- ConfigMaps / Pods
    def create_configmap(self, namespace: str, body: dict[str, Any]) -> bool:
        """True if created, False if it already existed (same name = same content: names carry the spec hash)."""
        try:
            self.core.create_namespaced_config_map(namespace, body, _preload_content=False)
            return True
        except self.ApiException as e:
            if e.status == 409:
                return False
            raise

    def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        resp = self.core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}", _preload_content=False)
        return list(self._json(resp).get("items") or [])
