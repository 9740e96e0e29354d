"""A failing shared tier (a test double raising ArtifactStoreError) degrades to the local cache."""

from __future__ import annotations

from pathlib import Path

from modeldeploy.errors import ArtifactStoreError
from modeldeploy.exporters.engine_cache import EngineCache, EngineCacheKey


class _DenyingSharedTierDouble:
    def cas_get(self, key: str, dest: Path) -> Path | None:
        raise ArtifactStoreError("AccessDenied for s3://b/cas/x")

    def cas_put(self, key: str, path: Path) -> object:
        raise ArtifactStoreError("AccessDenied for s3://b/cas/x")


def test_denied_shared_tier_falls_back_to_local(tmp_path: Path) -> None:
    key = EngineCacheKey(
        onnx_sha256="a" * 64,
        tensorrt_version="10.9.0",
        compute_capability="9.0",
        precision_policy="fp16",
        builder_flags=("FP16",),
        strongly_typed=False,
        graph_transform="none",
        profiles=(),
        workspace_bytes=1 << 30,
        optimization_level=None,
    )
    cache = EngineCache(tmp_path / "cache", shared=_DenyingSharedTierDouble())
    assert cache.lookup(key).path is None
    engine = tmp_path / "e.plan"
    engine.write_bytes(b"engine-bytes")
    stored = cache.store(key, engine)
    assert stored.read_bytes() == b"engine-bytes"
    hit = cache.lookup(key)
    assert hit.hit and hit.source == "local"
