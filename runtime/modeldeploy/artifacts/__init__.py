"""Artifact stores chosen by URI: a local directory / file:// (default) or s3://bucket/prefix.

Inputs (checkpoints, configs, datasets) are resolved by ``modeldeploy.artifacts.fetch.fetch``
(not re-exported here: a function named like its submodule would be shadowed by it).
"""

from __future__ import annotations

from modeldeploy.artifacts.base import ArtifactRecord, ArtifactStore, IntegrityError, LocalArtifact, sha256_file


def open_store(uri: str, *, cas_uri: str | None = None) -> ArtifactStore:
    """Return the store for ``uri``. ``s3://`` needs the ``s3`` extra (boto3).

    ``cas_uri`` overrides where content-addressed blobs live (else MODELDEPLOY_CAS_URI,
    else a default next to the store; see cas.py).
    """
    if uri.startswith("s3://"):
        from modeldeploy.artifacts.s3 import S3ArtifactStore  # imported lazily: boto3 is optional

        return S3ArtifactStore(uri, cas_uri=cas_uri)
    from modeldeploy.artifacts.local import LocalArtifactStore

    return LocalArtifactStore(uri, cas_uri=cas_uri)


__all__ = ["ArtifactRecord", "ArtifactStore", "IntegrityError", "LocalArtifact", "open_store", "sha256_file"]
