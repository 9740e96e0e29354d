"""Shared sample ModelDeployment bodies and pod/job builders for the operator unit tests."""

from __future__ import annotations

import copy
import json
from typing import Any

SUMMARY_OK = {
    "v": 1,
    "status": "succeeded",
    "project": "calibration",
    "run_id": "ns/demo/g1/abcd1234",
    "failure": None,
    "results_uri": "s3://bucket/demo/abcd1234/results.json",
    "artifacts": [
        {
            "name": "onnx/model.onnx",
            "kind": "onnx",
            "uri": "s3://bucket/demo/abcd1234/onnx/model.onnx",
            "sha256": "ab" * 32,
        }
    ],
    "verification": {"passed": True, "tolerance": 0.001, "max_abs_diff": 1.2e-05, "comparisons": 2},
    "evaluation": {
        "onnxruntime:cpu": {"precision": "fp32", "metric": "accuracy", "value": 0.93, "p50_ms": 1.2, "p99_ms": 2.3},
        "pytorch:cpu": {"precision": "fp32", "metric": "accuracy", "value": 0.94, "p50_ms": 3.5, "p99_ms": 5.0},
    },
    "durations_s": {"load": 0.1, "export_onnx": 1.0, "verify": 0.3, "evaluate": 2.0, "upload": 0.1},
    "some_future_key": {"ignored": True},
}


def deployment(name: str = "demo", namespace: str = "ns", generation: int = 1, **spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "calibration",
        "modelConfig": {"uri": "builtin:calibration/model.py"},
        "deployConfig": {"inline": "export = dict(mode='onnx')\n"},
        "checkpoint": {"uri": "s3://models/calib/epoch_10.pth"},
        "export": {"mode": "onnx", "precision": "fp16", "opset": 17},
        "output": {"uri": "s3://artifacts/calib/"},
        "runtime": {"backoffLimit": 2, "ttlSecondsAfterFinished": 600, "imagePullPolicy": "IfNotPresent"},
        "credentialsSecretRef": {"name": "s3-creds"},
    }
    spec.update(copy.deepcopy(spec_overrides))
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": generation,
            "creationTimestamp": "2026-11-25T10:00:00Z",
        },
        "spec": spec,
    }


def pod(
    name: str,
    *,
    phase: str,
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    created: str = "2026-11-25T10:00:00Z",
    unschedulable_since: str | None = None,
    waiting: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if exit_code is not None:
        term = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error")}
        if message is not None:
            term["message"] = message
        status["containerStatuses"] = [{"name": "runtime", "state": {"terminated": term}}]
    if waiting:
        status["containerStatuses"] = [{"name": "runtime", "state": {"waiting": {"reason": waiting, "message": "x"}}}]
    if unschedulable_since:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                "lastTransitionTime": unschedulable_since,
            }
        ]
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def job(
    name: str, *, conditions: list[tuple[str, str]] = (), owner_uid: str = "uid-demo", **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [{"uid": owner_uid, "controller": True}],
            "labels": {"modeldeploy.io/spec-hash": name[-8:]},
            "annotations": {"modeldeploy.io/deployment-name": "demo"},
        },
        "status": {
            **status,
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": f"{t} {r}",
                    "lastTransitionTime": "2026-11-25T10:05:00Z",
                }
                for t, r in conditions
            ],
        },
    }


def summary_json(**overrides: Any) -> str:
    doc = copy.deepcopy(SUMMARY_OK)
    doc.update(overrides)
    return json.dumps(doc)
