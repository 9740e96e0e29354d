"""Run prefixes and the ``current.json`` pointer: publishing that never loses a good result.

Layout under an artifact URI ``<root>`` (docs/contracts.md §5):

  <root>/runs/<run key>/manifest.json, results.json, onnx/…   one immutable prefix per run
  <root>/current.json                                         the pointer to the last good run

Why: when every run wrote into ``<root>`` itself, a failed re-run deleted the previous
manifest (unpublishing a good result) and two concurrent writers produced a manifest whose
sha256s did not match the objects. Now

* a run writes only under its own prefix; if that prefix already holds a manifest (the
  same run id used twice) a fresh suffix is chosen instead of touching it;
* a failed run records its failure there (results.json ``failed``) and never touches
  ``current.json``;
* only a succeeded, verified run replaces ``current.json``, by compare-and-swap
  (``store.put_conditional``: S3 If-Match/If-None-Match, locally flock + os.replace), so
  concurrent finishers serialise and the pointer always names one complete prefix whose
  manifest has the recorded sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from typing import Any

from modeldeploy.artifacts.base import MANIFEST_NAME, POINTER_NAME, ArtifactStore
from modeldeploy.errors import ArtifactStoreError, ConfigError

log = logging.getLogger(__name__)
RUNS_DIR = "runs"
POINTER_SCHEMA = 1
_PART = re.compile(r"[^A-Za-z0-9._-]+")


def run_key(run_id: str) -> str:
    """``run_id`` as a safe relative key: '/'-parts of [A-Za-z0-9._-], no '.'/'..' parts."""
    parts = [_PART.sub("-", p).strip("-.") for p in str(run_id).split("/")]
    parts = [p for p in parts if p]
    if not parts:
        raise ConfigError(
            f"run id {run_id!r} has no usable characters",
            hint="use letters, digits, '.', '_' or '-' (e.g. the pod name)",
        )
    key = "/".join(p[:100] for p in parts[:8])
    return key


def open_run(root: ArtifactStore, run_id: str) -> tuple[ArtifactStore, str]:
    """The store for this run's own prefix and its key relative to ``root``.

    A prefix that already holds a manifest belongs to a finished run: never reuse it.
    """
    base = f"{RUNS_DIR}/{run_key(run_id)}"
    rel = base
    for _ in range(5):
        store = root.child(rel)
        if not store.exists(MANIFEST_NAME):
            return store, rel
        log.warning("%s already holds a published run; this run publishes next to it", store.uri)
        rel = f"{base}-{os.urandom(3).hex()}"
    raise ArtifactStoreError(f"could not find a free run prefix under {root.uri}/{base}", hint="pass a unique --run-id")


def read_current(root: ArtifactStore) -> tuple[dict[str, Any] | None, str | None]:
    """(pointer document, version token) or (None, None) when nothing was published yet."""
    data, version = root.read_versioned(POINTER_NAME)
    if data is None:
        return None, None
    try:
        doc = json.loads(data)
    except ValueError:
        log.warning("%s/%s is not valid JSON; it will be replaced by the next good run", root.uri, POINTER_NAME)
        return {}, version
    return (doc if isinstance(doc, dict) else {}), version


def pointer_document(root: ArtifactStore, rel: str, *, run_id: str, manifest: bytes) -> dict[str, Any]:
    prefix_uri = f"{root.uri}/{rel}"
    return {
        "schema_version": POINTER_SCHEMA,
        "run_id": run_id,
        "prefix": rel,
        "uri": prefix_uri,
        "manifest_uri": f"{prefix_uri}/{MANIFEST_NAME}",
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "results_uri": f"{prefix_uri}/results.json",
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def make_current(root: ArtifactStore, rel: str, *, run_id: str, manifest: bytes, attempts: int = 8) -> dict[str, Any]:
    """Point ``<root>/current.json`` at ``rel`` (compare-and-swap, retried on a lost race).

    The last verified run to finish wins; no writer can overwrite a pointer it has not
    seen. A lost race whose winner is this very run (a retried request that had in fact
    succeeded) counts as done.
    """
    doc = pointer_document(root, rel, run_id=run_id, manifest=manifest)
    body = json.dumps(doc, indent=2, allow_nan=False).encode()
    for attempt in range(attempts):
        current, version = read_current(root)
        if (
            current is not None
            and current.get("prefix") == rel
            and current.get("manifest_sha256") == doc["manifest_sha256"]
        ):
            return current
        if root.put_conditional(POINTER_NAME, body, expected_version=version):
            log.info("%s/%s now points at %s", root.uri, POINTER_NAME, rel)
            return doc
        log.info("another run moved %s/%s first (attempt %d); re-reading", root.uri, POINTER_NAME, attempt + 1)
        time.sleep(0.05 * (attempt + 1))
    raise ArtifactStoreError(
        f"{root.uri}/{POINTER_NAME} kept changing under concurrent writers",
        hint="retry the run; this run's files are complete under its own prefix",
    )


def resolve_current_prefix(root: ArtifactStore) -> str | None:
    """The URI of the run ``current.json`` names (None: no pointer), after checking that
    its manifest still has the recorded sha256 — a reader never follows a pointer to a
    prefix that changed."""
    doc, _ = read_current(root)
    if not doc:
        return None
    rel = str(doc.get("prefix", ""))
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise ArtifactStoreError(
            f"{root.uri}/{POINTER_NAME} names an invalid prefix {rel!r}", hint="re-run a deployment to rewrite it"
        )
    data, _ = root.child(rel).read_versioned(MANIFEST_NAME)
    if data is None or hashlib.sha256(data).hexdigest() != doc.get("manifest_sha256"):
        raise ArtifactStoreError(
            f"{root.uri}/{POINTER_NAME} names {rel} but its manifest is missing or changed",
            hint="the store was modified by hand; re-run a deployment to publish again",
        )
    return f"{root.uri}/{rel}"
