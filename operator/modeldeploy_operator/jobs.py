"""Build the ConfigMap and the Job for one ModelDeployment (pure dicts, no API calls).

The Job follows docs/contracts.md §4. Credentials only ever reach the pod as
``secretKeyRef`` env entries: no secret value passes through the operator at all.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from . import spec as specmod
from .config import OperatorConfig
from .constants import (
    ANNOTATION_CONTENT_SHA256,
    ANNOTATION_DEPLOYMENT,
    ANNOTATION_GENERATION,
    ANNOTATION_RUN_ID,
    ANNOTATION_SPEC_SHA256,
    API_VERSION,
    CONTAINER_NAME,
    JOB_CONFIG_MOUNT,
    KIND,
    LABEL_COMPONENT,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_SPEC_HASH,
    MANAGER,
    NON_RETRYABLE_EXIT_CODES,
    TERMINATION_LOG,
    USER_CONFIG_MOUNT,
    WORK_DIR,
)

# env name → (secret key, optional). AWS SDK names, read by the runtime's S3 store.
CREDENTIAL_ENV = (
    ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", False),
    ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN", True),
    ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL", True),
    ("AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION", True),
)
DEFAULT_BACKOFF_LIMIT = 2
DEFAULT_TTL_SECONDS = 86400
GPU_RESOURCE = "nvidia.com/gpu"


def labels(name: str, hash_: str) -> dict[str, str]:
    """Labels on the ConfigMap, the Job and its pods; the watches select on them."""
    return {
        LABEL_NAME: "modeldeploy-runtime",
        LABEL_COMPONENT: "export",
        LABEL_MANAGED_BY: MANAGER,
        LABEL_DEPLOYMENT: name[:63].rstrip("-._"),
        LABEL_SPEC_HASH: hash_[: specmod.HASH_LEN],
    }


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """Controller reference to the CR, so deleting the CR garbage-collects its children."""
    meta = body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(body: Mapping[str, Any], hash_: str) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "name": specmod.child_name(meta["name"], hash_),
        "namespace": meta["namespace"],
        "labels": labels(meta["name"], hash_),
        "annotations": {
            ANNOTATION_DEPLOYMENT: meta["name"],
            ANNOTATION_GENERATION: str(meta.get("generation", 1)),
            ANNOTATION_RUN_ID: specmod.run_id(meta["namespace"], meta["name"], meta.get("generation", 1), hash_),
            ANNOTATION_SPEC_SHA256: hash_,
        },
        "ownerReferences": [owner_reference(body)],
    }


def build_configmap(body: Mapping[str, Any], hash_: str) -> dict[str, Any]:
    """ConfigMap `<name>-<hash8>`: spec.json plus the inline configs, mounted read-only."""
    meta = body["metadata"]
    spec = body["spec"]
    data = {
        "spec.json": json.dumps(
            specmod.rendered_spec(
                meta["namespace"],
                meta["name"],
                meta.get("generation", 1),
                spec,
                hash_,
                baseline=specmod.baseline_uri(spec, body.get("status")),
            ),
            indent=2,
            sort_keys=True,
        )
    }
    for field, fname in specmod.CONFIG_FILES.items():
        src = spec.get(field) or {}
        if "inline" in src:
            data[fname] = src["inline"]
    meta_ = _meta(body, hash_)
    meta_["annotations"][ANNOTATION_CONTENT_SHA256] = content_sha256(data)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta_, "data": data, "immutable": True}


def content_sha256(data: Mapping[str, str]) -> str:
    """sha256 over the files the runtime EXECUTES (inline configs), not spec.json: spec.json
    also records the generation, which may differ for the same spec (an edit reverted)."""
    files = {k: v for k, v in data.items() if k != "spec.json"}
    return hashlib.sha256(specmod.canonical_json(files).encode()).hexdigest()


def secret_env_names(env: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the env vars filled from a Secret: the runtime scrubs their values."""
    return [e["name"] for e in env if ((e.get("valueFrom") or {}).get("secretKeyRef"))]


def _env(body: Mapping[str, Any], hash_: str) -> list[dict[str, Any]]:
    spec = body["spec"]
    env: list[dict[str, Any]] = [
        # One run id per attempt (pod): the runtime writes under <artifact uri>/runs/<run id>/.
        {"name": "MODELDEPLOY_RUN_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if spec.get("project"):
        # The runtime refuses a deploy config of another project (ConfigError). An env var, not
        # a flag: a runtime image older than this check (spec.runtime.image pinned) ignores it
        # and runs as before, where an unknown flag would fail every deployment.
        env.append({"name": "MODELDEPLOY_EXPECTED_PROJECT", "value": str(spec["project"])})
    secret = (spec.get("credentialsSecretRef") or {}).get("name")
    if secret:
        for env_name, key, optional in CREDENTIAL_ENV:
            env.append(
                {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}}}
            )
    # spec.runtime.env (e.g. AWS_CA_BUNDLE, MODELDEPLOY_CACHE): the CRD and the tenant
    # policy refuse the names set above, so a user entry never shadows the operator's.
    env.extend(copy.deepcopy(list((spec.get("runtime") or {}).get("env") or [])))
    secret_names = secret_env_names(env)
    if secret_names:  # the runtime scrubs these values from its logs, results and summary
        env.append({"name": "MODELDEPLOY_SECRET_ENV", "value": ",".join(secret_names)})
    return env


def _resources(spec: Mapping[str, Any], default_json: str = "") -> dict[str, Any]:
    """The spec's resources, else the operator's default; a GPU limit for CUDA runs."""
    res = copy.deepcopy(
        (spec.get("runtime") or {}).get("resources") or (json.loads(default_json) if default_json else {})
    )
    if specmod.effective_device(spec) == "cuda":
        limits = res.setdefault("limits", {})
        requests = res.get("requests") or {}
        gpus = limits.get(GPU_RESOURCE) or requests.get(GPU_RESOURCE) or 1
        limits[GPU_RESOURCE] = gpus  # extended resources: request == limit, limit suffices
        if GPU_RESOURCE in requests:
            requests[GPU_RESOURCE] = gpus
    return res


def _volumes(spec: Mapping[str, Any], cm_name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "job-config", "configMap": {"name": cm_name}},
        {"name": "work", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "job-config", "mountPath": JOB_CONFIG_MOUNT, "readOnly": True},
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for field, fname in specmod.CONFIG_FILES.items():
        ref = (spec.get(field) or {}).get("configMapKeyRef")
        if ref:
            vol = f"user-{field.lower()}"
            volumes.append(
                {"name": vol, "configMap": {"name": ref["name"], "items": [{"key": ref["key"], "path": fname}]}}
            )
            mounts.append({"name": vol, "mountPath": f"{USER_CONFIG_MOUNT}/{field}", "readOnly": True})
    # spec.runtime.volumes/volumeMounts (dataset or cache PVC, CA bundle ConfigMap): only the
    # types the CRD admits (PVC, ConfigMap, Secret, emptyDir), copied as given; the tenant
    # policy (policy.py) was checked before this Job is built.
    rt = spec.get("runtime") or {}
    volumes.extend(copy.deepcopy(list(rt.get("volumes") or [])))
    mounts.extend(copy.deepcopy(list(rt.get("volumeMounts") or [])))
    return volumes, mounts


def build_job(body: Mapping[str, Any], hash_: str, config: OperatorConfig) -> dict[str, Any]:
    """Job `<name>-<hash8>` that runs `modeldeploy run …` once for this spec."""
    spec = body["spec"]
    rt = spec.get("runtime") or {}
    meta = _meta(body, hash_)
    volumes, mounts = _volumes(spec, meta["name"])
    container = {
        "name": CONTAINER_NAME,
        "image": rt.get("image") or config.runtime_image,
        "imagePullPolicy": rt.get("imagePullPolicy", "IfNotPresent"),
        "command": ["modeldeploy"],
        "args": specmod.runtime_args(
            spec,
            hash_,
            namespace=body["metadata"]["namespace"],
            name=body["metadata"]["name"],
            generation=int(body["metadata"].get("generation", 1)),
            # the last succeeded generation's results.json, read by the Job with its own credentials
            baseline=specmod.baseline_uri(spec, body.get("status")),
        ),
        "env": _env(body, hash_),
        "resources": _resources(spec, config.runtime_resources_json),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # required by podFailurePolicy; retries are new pods
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if rt.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = rt["serviceAccountName"]
    if rt.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(rt["nodeSelector"])
    if rt.get("tolerations"):
        pod_spec["tolerations"] = copy.deepcopy(rt["tolerations"])
    job_spec: dict[str, Any] = {
        "backoffLimit": int(rt.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)),
        "ttlSecondsAfterFinished": int(rt.get("ttlSecondsAfterFinished", DEFAULT_TTL_SECONDS)),
        "podFailurePolicy": {
            "rules": [
                # Config/user errors and failed verification are deterministic: never retry.
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER_NAME,
                        "operator": "In",
                        "values": list(NON_RETRYABLE_EXIT_CODES),
                    },
                },
                # Evictions/preemptions are not the program's fault: don't count them.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
        "template": {
            "metadata": {"labels": dict(meta["labels"]), "annotations": dict(meta["annotations"])},
            "spec": pod_spec,
        },
    }
    if rt.get("activeDeadlineSeconds"):
        job_spec["activeDeadlineSeconds"] = int(rt["activeDeadlineSeconds"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
