"""Run prefixes + the current.json pointer on a local directory store (real filesystem, real flock)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from modeldeploy.artifacts import LocalArtifact, open_store
from modeldeploy.artifacts.base import MANIFEST_NAME, build_manifest
from modeldeploy.artifacts.fetch import fetch
from modeldeploy.artifacts.publication import (
    make_current,
    open_run,
    read_current,
    resolve_current_prefix,
    run_key,
)
from modeldeploy.errors import ArtifactStoreError, ConfigError


def _publish(root_dir: str, run_id: str, work: str, move_pointer: bool = True) -> str:
    root = open_store(root_dir)
    store, rel = open_run(root, run_id)
    src = Path(work) / run_id / "model.onnx"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(run_id.encode() * 1000)
    records = [store.put_file(LocalArtifact(src, "onnx/model.onnx", "onnx"))]
    manifest = json.dumps(build_manifest(records, run_id=run_id)).encode()
    store.put_bytes(MANIFEST_NAME, manifest, "manifest")
    if move_pointer:
        make_current(root, rel, run_id=run_id, manifest=manifest)
    return rel


def test_run_key_is_a_safe_relative_path() -> None:
    assert run_key("ns/name/g3/abcd1234") == "ns/name/g3/abcd1234"
    assert run_key("../../etc/passwd") == "etc/passwd"
    assert run_key("pod name with spaces") == "pod-name-with-spaces"
    with pytest.raises(ConfigError):
        run_key("../..")


def test_fetch_of_a_publication_root_follows_the_pointer_and_checks_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "pub"
    _publish(str(root), "good", str(tmp_path / "w"))
    _publish(str(root), "unverified", str(tmp_path / "w"), move_pointer=False)  # a failed run: never current
    got = fetch(root)
    assert got == root / "runs" / "good" and (got / "onnx" / "model.onnx").read_bytes().startswith(b"good")
    (root / "runs" / "good" / MANIFEST_NAME).write_text("{}")  # changed by hand behind the pointer
    with pytest.raises(ArtifactStoreError, match="missing or changed"):
        resolve_current_prefix(open_store(str(root)))


def _worker(args: tuple[str, str, str]) -> str:
    return _publish(*args)


def test_concurrent_processes_never_interleave_and_the_pointer_names_a_complete_run(tmp_path: Path) -> None:
    root = str(tmp_path / "pub")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        rels = pool.map(_worker, [(root, f"proc-{i}", str(tmp_path / "w")) for i in range(8)])
    assert sorted(rels) == sorted(f"runs/proc-{i}" for i in range(8))
    for rel in rels:
        m = json.loads((Path(root) / rel / MANIFEST_NAME).read_text())
        for a in m["artifacts"]:
            assert hashlib.sha256((Path(root) / rel / a["name"]).read_bytes()).hexdigest() == a["sha256"]
    doc, _ = read_current(open_store(root))
    assert doc is not None and doc["prefix"] in rels
    assert resolve_current_prefix(open_store(root)).endswith(doc["prefix"])
    assert not [p for p in Path(root).rglob("*") if ".partial" in p.name]


def test_put_conditional_is_a_compare_and_swap(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s"))
    assert store.put_conditional("current.json", b"1", expected_version=None)
    assert not store.put_conditional("current.json", b"2", expected_version=None)
    _, v = store.read_versioned("current.json")
    assert not store.put_conditional("current.json", b"2", expected_version="stale")
    assert store.put_conditional("current.json", b"2", expected_version=v)
    assert store.read_versioned("current.json")[0] == b"2"
