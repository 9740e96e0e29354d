"""Artifact stores chosen by URI: a local directory / file:// (default) or s3://bucket/prefix."""

from __future__ import annotations

from modeldeploy.artifacts.base import ArtifactRecord, ArtifactStore, LocalArtifact, sha256_file


def open_store(uri: str) -> ArtifactStore:
    """Return the store for ``uri``. ``s3://`` needs the ``s3`` extra (boto3)."""
    if uri.startswith("s3://"):
        from modeldeploy.artifacts.s3 import S3ArtifactStore  # imported lazily: boto3 is optional

        return S3ArtifactStore(uri)
    from modeldeploy.artifacts.local import LocalArtifactStore

    return LocalArtifactStore(uri)


__all__ = ["ArtifactRecord", "ArtifactStore", "LocalArtifact", "open_store", "sha256_file"]
