"""Engine cache: a TensorRT build is a pure function of its inputs, so do it once.

Why: building an engine takes minutes on a big model; an operator retrying a Job, or a
second deployment of the same checkpoint, must not pay that again. The key covers
everything that changes the engine: the ONNX graph TensorRT parses (sha256 over the graph
AND its external data files), TensorRT version, GPU compute capability, precision plan
(policy, builder flags, strongly typed), optimization profiles and builder options
(workspace, optimization level). Anything else (timing cache, log level) only changes
build time, so it is not in the key.

Two tiers: a node-local directory (``${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/engines``)
and, optionally, an ArtifactStore's content-addressed area (``cas_get``/``cas_put``) that
other nodes share. Entries are verified by sha256 on read; a corrupt entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from modeldeploy.errors import ArtifactStoreError

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024
KEY_SCHEMA = 1


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def onnx_digest(onnx_path: Path) -> str:
    """sha256 over the graph file and every external data file it references, by name."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    locations: set[str] = set()
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            locations.update(kv.value for kv in init.external_data if kv.key == "location")
    h = hashlib.sha256()
    h.update(b"graph\0" + _sha256_file(onnx_path).encode())
    for loc in sorted(locations):
        data = onnx_path.parent / loc
        if not data.is_file():
            from modeldeploy.errors import ExportError

            raise ExportError(
                f"{onnx_path.name} references external data {loc!r} that is missing next to it",
                hint="copy the .onnx together with its .data file(s)",
            )
        h.update(b"\0data\0" + loc.encode() + b"\0" + _sha256_file(data).encode())
    return h.hexdigest()


ProfileShapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


@dataclass(frozen=True)
class EngineCacheKey:
    onnx_sha256: str
    tensorrt_version: str
    compute_capability: str  # "9.0"
    precision_policy: str
    builder_flags: tuple[str, ...]
    strongly_typed: bool
    graph_transform: str  # none | fp16 | qdq
    profiles: tuple[tuple[tuple[str, tuple[tuple[int, ...], ...]], ...], ...]
    workspace_bytes: int
    optimization_level: int | None

    @staticmethod
    def canonical_profiles(
        profiles: Sequence[ProfileShapes],
    ) -> tuple[tuple[tuple[str, tuple[tuple[int, ...], ...]], ...], ...]:
        """Order-insensitive within a profile (by input name); profile order matters (indices)."""
        return tuple(
            tuple((name, tuple(tuple(int(d) for d in s) for s in shapes[name])) for name in sorted(shapes))
            for shapes in profiles
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = KEY_SCHEMA
        return d

    @property
    def digest(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class BlobStore(Protocol):
    """What the shared tier needs: ArtifactStore.cas_get / cas_put (artifacts/cas.py)."""

    def cas_get(self, key: str, dest: Path) -> Path | None: ...

    def cas_put(self, key: str, path: Path) -> Any: ...


def shared_tier(store: object) -> BlobStore | None:
    """The store if it has a working content-addressed area, else None (local tier only)."""
    get = getattr(type(store), "cas_get", None)
    put = getattr(type(store), "cas_put", None)
    if get is None or put is None:
        return None
    try:
        from modeldeploy.artifacts.base import ArtifactStore
    except ImportError:  # an older artifacts package: duck typing is all we have
        return store  # type: ignore[return-value]
    if get is ArtifactStore.cas_get or put is ArtifactStore.cas_put:
        return None  # the base class only raises NotImplementedError
    return store  # type: ignore[return-value]


@dataclass
class CacheLookup:
    path: Path | None
    source: str  # "local" | "shared" | "miss"

    @property
    def hit(self) -> bool:
        return self.path is not None


def default_cache_dir() -> Path:
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root).expanduser() / "engines"


class EngineCache:
    ENGINE = "engine.plan"
    META = "entry.json"

    def __init__(self, root: Path | None = None, shared: BlobStore | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.shared = shared

    def _dir(self, key: EngineCacheKey) -> Path:
        return self.root / key.digest

    @staticmethod
    def shared_key(key: EngineCacheKey) -> str:
        return f"trt/{key.digest}.engine"

    def lookup(self, key: EngineCacheKey) -> CacheLookup:
        local = self._local_get(key)
        if local is not None:
            log.info("engine cache hit (local %s): %s", key.digest[:12], local)
            return CacheLookup(local, "local")
        if self.shared is not None:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    got = self.shared.cas_get(self.shared_key(key), Path(tmp) / self.ENGINE)
                except ArtifactStoreError as exc:
                    # The shared tier is an optimisation: a denied/unreachable cas/ area must not fail the run.
                    log.warning("shared engine cache unavailable, using the local cache only: %s", exc.one_line())
                    got = None
                if got is not None:
                    path = self._local_put(key, Path(got))
                    log.info("engine cache hit (shared %s)", key.digest[:12])
                    return CacheLookup(path, "shared")
        log.info("engine cache miss %s", key.digest[:12])
        return CacheLookup(None, "miss")

    def store(self, key: EngineCacheKey, engine: Path) -> Path:
        path = self._local_put(key, engine)
        if self.shared is not None:
            try:
                self.shared.cas_put(self.shared_key(key), path)
            except ArtifactStoreError as exc:
                log.warning("could not share the engine through the store (kept locally): %s", exc.one_line())
        return path

    def _local_get(self, key: EngineCacheKey) -> Path | None:
        d = self._dir(key)
        engine, meta = d / self.ENGINE, d / self.META
        if not (engine.is_file() and meta.is_file()):
            return None
        try:
            recorded = json.loads(meta.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("digest") != key.digest or recorded.get("sha256") != _sha256_file(engine):
            log.warning("engine cache entry %s is corrupt or stale; rebuilding", d)
            shutil.rmtree(d, ignore_errors=True)
            return None
        return engine

    def _local_put(self, key: EngineCacheKey, engine: Path) -> Path:
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{self.ENGINE}.{os.getpid()}.partial"
        shutil.copyfile(engine, tmp)
        os.replace(tmp, d / self.ENGINE)
        meta = {"digest": key.digest, "key": key.to_json(), "sha256": _sha256_file(d / self.ENGINE)}
        tmp_meta = d / f".{self.META}.{os.getpid()}.partial"
        tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp_meta, d / self.META)  # the meta file is the commit marker
        return d / self.ENGINE
