"""The project's images, built from images/*/Dockerfile with buildah, checked by running them
under runc (podman). The runtime image is the Dockerfile's ``cpu-test`` target (see there);
the operator image is the production target FROM the local Debian Python base."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .images import BuiltImage, cache_dir, podman_run

pytestmark = [pytest.mark.node, pytest.mark.slow, pytest.mark.timeout(3600)]


def inspect(ref: str) -> dict[str, Any]:
    out = subprocess.run(["podman", "image", "inspect", ref], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def test_runtime_image_runs_modeldeploy_as_non_root(project_images: dict[str, BuiltImage]) -> None:
    img = project_images["runtime"]
    cfg = inspect(img.ref)["Config"]
    assert cfg["User"] == "1000:1000"
    assert cfg["Entrypoint"] == ["modeldeploy"]
    assert cfg.get("WorkingDir") == "/work"
    help_ = podman_run(img.ref, "--help")
    assert help_.returncode == 0, help_.stderr[-2000:]
    assert "usage: modeldeploy" in help_.stdout and "run" in help_.stdout
    ident = podman_run(img.ref, "-u", entrypoint="id")
    assert ident.returncode == 0 and ident.stdout.strip() == "1000", (ident.stdout, ident.stderr)


def test_runtime_image_runs_torch_and_onnx_export_on_cpu(project_images: dict[str, BuiltImage]) -> None:
    """The CPU variant: torch (PyPI's build, CUDA wheels included: libtorch links them) imports,
    runs and exports to ONNX without a GPU; onnxruntime is the CPU build; no TensorRT."""
    code = (
        "import importlib.metadata as md, io, json, torch, onnxruntime as ort\n"
        "torch.set_num_threads(1)\n"
        "names = {d.metadata['Name'].lower() for d in md.distributions()}\n"
        "m = torch.nn.Sequential(torch.nn.Conv2d(5, 4, 3), torch.nn.ReLU()).eval()\n"
        "x = torch.randn(1, 5, 16, 16)\n"
        "buf = io.BytesIO(); torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=17)\n"
        "s = ort.InferenceSession(buf.getvalue(), providers=['CPUExecutionProvider'])\n"
        "d = float(abs(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0] - m(x).detach().numpy()).max())\n"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.cuda.is_available(), 'diff': d,\n"
        "  'dists': sorted(names)}))\n"
    )
    proc = podman_run(project_images["runtime"].ref, "-c", code, entrypoint="python")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cuda"] is False
    assert "onnxruntime-gpu" not in got["dists"] and "tensorrt" not in got["dists"], got
    assert got["diff"] < 1e-4, got
    assert got["torch"].startswith("2."), got


def test_operator_image_imports_operator_without_torch(project_images: dict[str, BuiltImage]) -> None:
    img = project_images["operator"]
    cfg = inspect(img.ref)["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["python", "-m", "modeldeploy_operator"]
    help_ = podman_run(img.ref, "--help")
    assert help_.returncode == 0, help_.stderr[-2000:]
    assert "usage" in help_.stdout.lower()
    code = (
        "import importlib.util as u, modeldeploy_operator.cli, kopf, kubernetes, prometheus_client\n"
        "print([m for m in ('torch', 'onnx', 'onnxruntime') if u.find_spec(m)])"
    )
    proc = podman_run(img.ref, "-c", code, entrypoint="python")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout
    ident = podman_run(img.ref, "-u", entrypoint="id")
    assert ident.stdout.strip() == "10001"


def test_image_sizes_are_recorded(project_images: dict[str, BuiltImage]) -> None:
    """Sizes go to <cache>/sizes.json (tests/cluster/README.md quotes them); the bounds catch a
    second torch or CUDA stack in the runtime image, or torch in the operator image."""
    sizes = {name: img.size_bytes for name, img in project_images.items()}
    (cache_dir() / "sizes.json").write_text(
        json.dumps({img.ref: img.size_bytes for img in project_images.values()}, indent=2)
    )
    assert sizes["operator"] < 500e6, sizes
    assert sizes["runtime"] < 8e9, sizes
