"""LocalArtifactStore: manifest-last publish, verified reads, content-addressed blobs (temp dirs only)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modeldeploy.artifacts import IntegrityError, LocalArtifact, open_store
from modeldeploy.artifacts.local import LocalArtifactStore
from modeldeploy.errors import ArtifactStoreError


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_publish_writes_manifest_with_every_artifact(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "out"))
    files = [
        LocalArtifact(_file(tmp_path / "w" / "m.onnx", b"onnx"), "onnx/m.onnx", "onnx"),
        LocalArtifact(_file(tmp_path / "w" / "r.md", b"# r"), "report.md", "report"),
    ]
    store.publish(files, run_id="r1")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(a["name"], a["bytes"], a["sha256"]) for a in manifest["artifacts"]] == [
        ("onnx/m.onnx", 4, hashlib.sha256(b"onnx").hexdigest()),
        ("report.md", 3, hashlib.sha256(b"# r").hexdigest()),
    ]
    assert not list((tmp_path / "out").rglob("*.partial"))


def test_file_uri_and_plain_path_are_the_same_store(tmp_path: Path) -> None:
    a = open_store(str(tmp_path / "x"))
    b = open_store((tmp_path / "x").as_uri())
    assert isinstance(a, LocalArtifactStore) and a.root == b.root


def test_get_file_verifies_against_manifest(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "out"))
    store.publish([LocalArtifact(_file(tmp_path / "m.bin", b"good"), "m.bin", "other")], run_id="r")
    assert store.get_file("m.bin", tmp_path / "dl" / "m.bin").read_bytes() == b"good"
    (tmp_path / "out" / "m.bin").write_bytes(b"evil")
    with pytest.raises(IntegrityError):
        store.get_file("m.bin", tmp_path / "dl2" / "m.bin")
    assert not (tmp_path / "dl2" / "m.bin").exists()


def test_names_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(ArtifactStoreError, match="escapes"):
        open_store(str(tmp_path / "out")).put_bytes("../x", b"", "other")


def test_cas_put_get_miss_and_corruption(tmp_path: Path) -> None:
    cas = tmp_path / "cas"
    node_a = open_store(str(tmp_path / "run-a"), cas_uri=str(cas))
    node_b = open_store(str(tmp_path / "run-b"), cas_uri=str(cas))
    blob = _file(tmp_path / "e.engine", b"engine-bytes")
    assert node_b.cas_get("trt/k1.engine", tmp_path / "got" / "e.engine") is None
    rec = node_a.cas_put("trt/k1.engine", blob)
    assert rec.sha256 == hashlib.sha256(b"engine-bytes").hexdigest()
    got = node_b.cas_get("trt/k1.engine", tmp_path / "got" / "e.engine")
    assert got is not None and got.read_bytes() == b"engine-bytes"

    (cas / "trt" / "k1.engine").write_bytes(b"bit-rot-bytes")
    dest = tmp_path / "got2" / "e.engine"
    assert node_b.cas_get("trt/k1.engine", dest) is None and not dest.exists()
    node_a.cas_put("trt/k1.engine", blob)  # repair: content differs from the sidecar -> rewritten
    assert (cas / "trt" / "k1.engine").read_bytes() == b"engine-bytes"


def test_blob_without_its_sidecar_is_a_miss(tmp_path: Path) -> None:
    cas = tmp_path / "cas"
    _file(cas / "onnx" / "k.onnx", b"half-published")  # the writer died before the sidecar (commit marker)
    assert open_store(str(tmp_path / "o"), cas_uri=str(cas)).cas_get("onnx/k.onnx", tmp_path / "d") is None


def test_default_cas_root_is_the_node_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELDEPLOY_CAS_URI", raising=False)
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    store = open_store(str(tmp_path / "o"))
    assert store.cas_uri == str(tmp_path / "cache" / "cas")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "", "a/../b", "sp ace"])
def test_bad_cas_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ArtifactStoreError, match="invalid content-addressed key"):
        open_store(str(tmp_path / "o"), cas_uri=str(tmp_path / "cas")).cas_get(key, tmp_path / "d")
