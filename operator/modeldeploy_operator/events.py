"""Kubernetes Events for ModelDeployment transitions, posted from a background thread.

Not kopf.event(): that relies on context variables that exist only inside kopf's handler
tasks, while transitions are also detected by the operator-wide resync loop. A queue
with one worker keeps handlers from waiting on Event writes; a failed post is logged and
dropped (Events are auxiliary and must never fail a reconcile).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from .constants import MANAGER
from .kube import KubeClient
from .summary import clip, redact

log = logging.getLogger("modeldeploy_operator.events")


def event_body(ref: Mapping[str, Any], type_: str, reason: str, message: str, instance: str) -> dict[str, Any]:
    """core/v1 Event for `ref` (a CR body or its apiVersion/kind/metadata)."""
    meta = ref["metadata"]
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": ref["apiVersion"],
            "kind": ref["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason[:128],
        "message": clip(redact(message), 1024),
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "reportingInstance": instance,
        "action": reason[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "count": 1,
    }


class EventPoster:
    def __init__(self, kube: KubeClient, instance: str = "operator") -> None:
        self.kube = kube
        self.instance = instance
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="event-poster", daemon=True)
        self.thread.start()

    def post(self, ref: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.queue.put(event_body(ref, type_, reason, message, self.instance))

    def _run(self) -> None:
        while True:
            body = self.queue.get()
            if body is None:
                return
            try:
                self.kube.request("POST", f"/api/v1/namespaces/{body['metadata']['namespace']}/events", body=body)
            except Exception as e:  # noqa: BLE001 - auxiliary: log and go on with the next one
                log.warning("could not post Event %s for %s: %s", body["reason"], body["involvedObject"]["name"], e)

    def close(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)
