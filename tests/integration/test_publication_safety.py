"""Publication never loses data, against a real S3 endpoint (moto server on 127.0.0.1).

Each run writes under <root>/runs/<run id>/; only a verified run moves <root>/current.json
(compare-and-swap with If-Match / If-None-Match). Writers here are real DeploymentRunner
runs (toy project: real ONNX export + ONNX Runtime) and raw publishers in threads.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from modeldeploy.artifacts import LocalArtifact, open_store
from modeldeploy.artifacts.base import MANIFEST_NAME, build_manifest
from modeldeploy.artifacts.fetch import fetch
from modeldeploy.artifacts.publication import (
    make_current,
    open_run,
    resolve_current_prefix,
)
from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyNet, ToyProject

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _assert_prefix_consistent(s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    """Every object the manifest lists has the manifest's sha256 and size."""
    manifest = json.loads(_get(s3, bucket, f"{prefix}/{MANIFEST_NAME}"))
    for a in manifest["artifacts"]:
        body = _get(s3, bucket, f"{prefix}/{a['name']}")
        assert hashlib.sha256(body).hexdigest() == a["sha256"] and len(body) == a["bytes"], f"{prefix}/{a['name']}"
    return manifest


def _current(s3: Any, bucket: str, root: str) -> dict[str, Any]:
    cur = json.loads(_get(s3, bucket, f"{root}/current.json"))
    manifest = _get(s3, bucket, f"{root}/{cur['prefix']}/{MANIFEST_NAME}")
    assert hashlib.sha256(manifest).hexdigest() == cur["manifest_sha256"], "pointer names a manifest that changed"
    return cur


def _toy_run(tmp: Path, uri: str, run_id: str, *, inf_weights: bool = False) -> Any:
    tmp.mkdir(parents=True, exist_ok=True)
    model_cfg = tmp / "model_cfg.py"
    model_cfg.write_text("model = dict(type='ToyNet')\n")
    torch.manual_seed(1)
    sd = ToyNet().state_dict()
    if inf_weights:  # every weight +inf: every output NaN
        sd = {k: torch.full_like(v, float("inf")) for k, v in sd.items()}
    ckpt = tmp / "toy.pth"
    torch.save({"state_dict": sd}, ckpt)
    cfg = BaseDeploymentConfig.from_dict(
        {
            "project": "toy",
            "export": {"mode": "onnx", "work_dir": str(tmp / "work"), "artifact_uri": uri},
            "onnx_config": {"save_file": "toy.onnx"},
            "verification": {"num_verify_samples": 2, "tolerance": 1e-4},
            "evaluation": {"num_samples": 3, "warmup": 0},
        }
    )
    runner = DeploymentRunner(
        cfg,
        str(model_cfg),
        str(ckpt),
        project=ToyProject(),
        resolve_fn=Path,
        run_id=run_id,
        termination_log=str(tmp / "term.json"),
    )
    return runner.run(), json.loads((tmp / "term.json").read_text())


def test_failed_rerun_after_a_good_one_keeps_the_good_publication(
    s3_env: str, s3_admin: Any, bucket: str, tmp_path: Path
) -> None:
    root = f"s3://{bucket}/team/toy/g1"
    good, term = _toy_run(tmp_path / "a", root, "pod-good")
    assert good.exit_code == 0, good.results["failure"]
    assert term["results_uri"] == f"{root}/runs/pod-good/results.json" and term["published_current"] is True
    before = _get(s3_admin, bucket, "team/toy/g1/current.json")
    assert _current(s3_admin, bucket, "team/toy/g1")["prefix"] == "runs/pod-good"

    bad, term = _toy_run(tmp_path / "b", root, "pod-inf", inf_weights=True)
    assert bad.exit_code == 3, bad.results["failure"]
    assert bad.results["failure"]["stage"] == "verify" and "NonFinite" in bad.results["failure"]["message"]
    assert term["status"] == "failed" and term["published_current"] is False
    assert term["results_uri"] == f"{root}/runs/pod-inf/results.json", (
        "the failure is recorded under the run's own prefix"
    )
    failed = json.loads(_get(s3_admin, bucket, "team/toy/g1/runs/pod-inf/results.json"))
    assert failed["status"] == "failed"
    _assert_prefix_consistent(s3_admin, bucket, "team/toy/g1/runs/pod-inf")

    assert _get(s3_admin, bucket, "team/toy/g1/current.json") == before, "a failed run must not move the pointer"
    _assert_prefix_consistent(s3_admin, bucket, "team/toy/g1/runs/pod-good")
    # readers that name the publication root get the good run
    got = fetch(f"{root}/")
    assert json.loads((got / "results.json").read_text())["status"] == "succeeded"


def test_same_run_id_twice_never_touches_the_finished_prefix(
    s3_env: str, s3_admin: Any, bucket: str, tmp_path: Path
) -> None:
    root = f"s3://{bucket}/r"
    first, _ = _toy_run(tmp_path / "a", root, "same")
    manifest = _get(s3_admin, bucket, "r/runs/same/manifest.json")
    second, term = _toy_run(tmp_path / "b", root, "same")
    assert first.exit_code == second.exit_code == 0
    assert _get(s3_admin, bucket, "r/runs/same/manifest.json") == manifest
    assert (
        term["run_prefix"].startswith(f"{root}/runs/same-")
        and _current(s3_admin, bucket, "r")["prefix"] == term["run_prefix"][len(root) + 1 :]
    )


def test_concurrent_publishers_in_threads_never_interleave(
    s3_env: str, s3_admin: Any, bucket: str, tmp_path: Path
) -> None:
    root_uri = f"s3://{bucket}/shared"
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            root = open_store(root_uri)
            store, rel = open_run(root, f"writer-{i}")
            files = []
            for name in ("results.json", "onnx/model.onnx", "report.md"):
                p = tmp_path / f"w{i}" / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(f"{name} of writer {i} ".encode() * (200 + i))
                files.append(LocalArtifact(p, name, "other"))
            records = [store.put_file(f) for f in files]
            manifest = json.dumps(build_manifest(records, run_id=f"writer-{i}")).encode()
            store.put_bytes(MANIFEST_NAME, manifest, "manifest")
            make_current(root, rel, run_id=f"writer-{i}", manifest=manifest)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i in range(6):
        m = _assert_prefix_consistent(s3_admin, bucket, f"shared/runs/writer-{i}")
        assert m["run_id"] == f"writer-{i}"
    cur = _current(s3_admin, bucket, "shared")
    assert cur["prefix"] in {f"runs/writer-{i}" for i in range(6)}
    assert resolve_current_prefix(open_store(root_uri)) == f"{root_uri}/{cur['prefix']}"


def test_lost_compare_and_swap_is_detected_by_the_store(s3_env: str, bucket: str) -> None:
    root = open_store(f"s3://{bucket}/cas")
    assert root.put_conditional("current.json", b"{}", expected_version=None) is True
    assert root.put_conditional("current.json", b"{}", expected_version=None) is False, (
        "If-None-Match: * must refuse an existing pointer"
    )
    _, version = root.read_versioned("current.json")
    assert root.put_conditional("current.json", b'{"a":1}', expected_version='"0123"') is False
    assert root.put_conditional("current.json", b'{"a":1}', expected_version=version) is True


_PROC = """
import json, sys
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads(1)
from pathlib import Path
from tests.integration.test_publication_safety import _toy_run
out, term = _toy_run(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
print(json.dumps({{"code": out.exit_code, "prefix": term.get("run_prefix")}}))
"""


def test_two_concurrent_runner_processes_publish_complete_prefixes(
    s3_env: str, s3_admin: Any, bucket: str, tmp_path: Path
) -> None:
    root = f"s3://{bucket}/two"
    script = _PROC.format(repo=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / f"p{i}"), root, f"proc-{i}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["code"] == 0, err[-3000:]
    for i in range(2):
        _assert_prefix_consistent(s3_admin, bucket, f"two/runs/proc-{i}")
    assert _current(s3_admin, bucket, "two")["prefix"] in ("runs/proc-0", "runs/proc-1")


def test_endpoint_without_conditional_writes_falls_back_to_read_then_write(proxied_env: Any, bucket: str) -> None:
    from s3testkit.proxy import Fault

    root = open_store(f"s3://{bucket}/nocond")
    assert root.put_conditional("current.json", b'{"v":1}', expected_version=None)
    _, version = root.read_versioned("current.json")
    proxied_env.add(
        Fault(
            "status",
            count=2,
            status=501,
            code="NotImplemented",
            match=lambda method, path: method == "PUT" and path.endswith("/current.json"),
        )
    )
    assert root.put_conditional("current.json", b'{"v":2}', expected_version='"stale"') is False, (
        "a changed pointer is still detected"
    )
    assert root.put_conditional("current.json", b'{"v":2}', expected_version=version) is True
    assert root.read_versioned("current.json")[0] == b'{"v":2}'
    assert [a for m, p, a in proxied_env.log if m == "PUT" and p.endswith("/current.json")] == [
        "forward",
        "status",
        "status",
        "forward",
    ], proxied_env.log
