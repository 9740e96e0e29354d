"""ONNX Runtime's CUDA execution provider against PyTorch on CUDA, directly and through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeldeploy.backends.onnxruntime import ONNXRuntimeBackend, cuda_ep_available
from modeldeploy.backends.pytorch import PyTorchBackend
from modeldeploy.core.components import ExportComponent

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _need_cuda_ep() -> None:
    if torch.cuda.is_available():
        ok, why = cuda_ep_available()
        if not ok:
            pytest.skip(why)


def test_ort_cuda_ep_really_runs_on_cuda_and_matches_pytorch_cuda(
    small_onnx: Path, small_component: ExportComponent, no_tf32: object
) -> None:
    ort_be = ONNXRuntimeBackend(small_onnx, "cuda")
    providers = ort_be.session.get_providers()
    assert providers[0] == "CUDAExecutionProvider", (
        f"session fell back to {providers} (CUDA/cuDNN libraries not loadable?)"
    )
    torch_be = PyTorchBackend(small_component, "cuda")
    for shape in [(1, 5, 64, 64), (3, 5, 96, 128)]:
        x = torch.randn(*shape, device="cuda")
        a, b = torch_be.infer({"input": x}), ort_be.infer({"input": x})
        assert list(b) == ["logits", "saliency"] and b["logits"].device.type == "cuda"
        for name in a:
            diff = (a[name].float() - b[name].float()).abs().max().item()
            print(f"{shape} {name}: max |ort cuda - torch cuda| = {diff:.3e}")
            assert diff < 1e-3, (shape, name)


def test_calibration_project_verifies_pytorch_cuda_vs_onnxruntime_cuda_through_the_cli(tmp_path: Path) -> None:
    pytest.importorskip("mmengine", reason="mmengine not installed (ship it with scripts/gpu_session.sh)")
    pytest.importorskip("sklearn", reason="scikit-learn not installed (ship it with scripts/gpu_session.sh)")
    from mmengine.config import Config

    from modeldeploy.projects import get_project

    cfg_dir = REPO / "runtime" / "modeldeploy" / "projects" / "calibration" / "configs"
    model_cfg = cfg_dir / "resnet18_5ch_tiny.py"
    torch.manual_seed(0)
    model = get_project("calibration").build_model(Config.fromfile(str(model_cfg)))
    ckpt = tmp_path / "random.pth"
    torch.save({"meta": {}, "state_dict": model.state_dict()}, ckpt)
    env = dict(os.environ, NVIDIA_TF32_OVERRIDE="0")  # fp32 math in cuDNN/cuBLAS for both backends
    work = tmp_path / "work"
    cmd = [
        sys.executable, "-m", "modeldeploy", "run", str(cfg_dir / "deploy_demo.py"), str(model_cfg), str(ckpt),
        "--device", "cuda", "--work-dir", str(work), "--cfg-options", "evaluation.num_samples=20",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((work / "results.json").read_text())
    pairs = {(c["reference"], c["test"]) for c in results["verification"]["comparisons"]}
    assert ("pytorch:cuda", "onnxruntime:cuda") in pairs, pairs
    assert results["verification"]["passed"] is True
    assert {"pytorch:cuda", "onnxruntime:cuda"} <= set(results["evaluation"])
    for label in ("pytorch:cuda", "onnxruntime:cuda"):
        lat = results["evaluation"][label]["latency_ms"]
        assert 0 < lat["p50"] <= lat["p99"], (label, lat)
