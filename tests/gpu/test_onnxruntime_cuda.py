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


def test_fp16_graph_on_the_cuda_ep_stays_within_tolerance_of_fp32(
    small_onnx: Path, tmp_path: Path, no_tf32: object
) -> None:
    """The onnxruntime fp16 variant: convert_fp16 (the runner's one pass) run on the CUDA EP,
    compared with the fp32 graph by the project's own comparison (verification/compare.py)."""
    from modeldeploy.exporters.quantization import convert_fp16
    from modeldeploy.verification.compare import compare_outputs

    fp16_path = convert_fp16(small_onnx, tmp_path / "model.fp16.onnx")
    fp32 = ONNXRuntimeBackend(small_onnx, "cuda")
    fp16 = ONNXRuntimeBackend(fp16_path, "cuda", "fp16")
    assert fp16.label == "onnxruntime-fp16:cuda"
    assert fp16.session.get_providers()[0] == "CUDAExecutionProvider"
    x = torch.randn(2, 5, 64, 64, device="cuda")
    a, b = fp32.infer({"input": x}), fp16.infer({"input": x})
    assert all(t.dtype == torch.float32 for t in b.values())  # float32 IO kept
    rows = compare_outputs(a, b, reference=fp32.label, test_label=fp16.label, tolerance=2e-2, sample=0)
    for r in rows:
        print(f"fp16 vs fp32 {r.output}: max |diff| {r.max_abs_diff:.3e}")
    assert rows and all(r.passed for r in rows), rows
    assert any(r.max_abs_diff > 0 for r in rows), "fp16 graph gave bit-identical outputs: did it run in fp16?"


@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_graph_replays_match_plain_runs_for_each_shape(
    small_onnx: Path, tmp_path: Path, channels_last: bool
) -> None:
    """enable_cuda_graph: new inputs copied into the bound buffers give the plain session's
    outputs on every replay, and a second shape gets its own captured graph."""
    from modeldeploy.exporters.quantization import convert_fp16

    fp16_path = convert_fp16(small_onnx, tmp_path / "model.fp16.onnx")
    plain = ONNXRuntimeBackend(fp16_path, "cuda", "fp16", channels_last=channels_last)
    graph = ONNXRuntimeBackend(fp16_path, "cuda", "fp16", cuda_graph=True, channels_last=channels_last)
    for shape in [(1, 5, 64, 64), (1, 5, 64, 64), (2, 5, 96, 128), (1, 5, 64, 64)]:
        x = torch.randn(*shape, device="cuda")
        a, b = plain.infer({"input": x}), graph.infer({"input": x})
        for name in a:
            diff = (a[name] - b[name]).abs().max().item()
            assert diff <= 1e-3, (shape, name, diff)
    assert len(graph._static) == 2  # one capture per input signature


def test_onnxruntime_fp16_variant_verified_and_evaluated_through_the_cli(tmp_path: Path) -> None:
    """Deploy-config path end to end: evaluation.backends.onnxruntime precision='fp16' +
    cuda_graph, and a verification scenario with test_precision='fp16' against the fp32 graph."""
    pytest.importorskip("mmengine", reason="mmengine not installed (ship it with scripts/gpu_session.sh)")
    pytest.importorskip("sklearn", reason="scikit-learn not installed (ship it with scripts/gpu_session.sh)")
    cfg_dir = REPO / "runtime" / "modeldeploy" / "projects" / "calibration" / "configs"
    deploy = tmp_path / "deploy_fp16.py"
    deploy.write_text(
        (cfg_dir / "deploy_demo.py").read_text()
        + """
export = dict(mode="onnx", device="cuda:0", verify=True, work_dir="work_dirs/calibration")
verification = dict(
    enabled=True,
    num_verify_samples=3,
    tolerance=2e-2,  # fp16: 2^-11 relative on logits of magnitude ~10
    scenarios=dict(onnx=[dict(ref_backend="onnxruntime", ref_device="cuda:0", test_backend="onnxruntime",
                              test_device="cuda:0", test_precision="fp16")]),
)
evaluation = dict(enabled=True, num_samples=20, warmup=3,
                  backends=dict(onnxruntime=dict(device="cuda:0", precision="fp16", cuda_graph=True)))
"""
    )
    work = tmp_path / "work"
    cmd = [
        sys.executable, "-m", "modeldeploy", "run", str(deploy), str(cfg_dir / "resnet18_5ch_tiny.py"),
        "--work-dir", str(work),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((work / "results.json").read_text())
    pairs = {(c["reference"], c["test"]) for c in results["verification"]["comparisons"]}
    assert pairs == {("onnxruntime:cuda", "onnxruntime-fp16:cuda")}, pairs
    assert results["verification"]["passed"] is True
    for c in results["verification"]["comparisons"]:
        print(f"fp16 vs fp32 {c['output']}: max |diff| {c['max_abs_diff']}")
    ev = results["evaluation"]["onnxruntime-fp16:cuda"]
    assert ev["precision"] == "fp16" and ev["latency_ms"]["p50"] > 0
    assert any(a["name"].endswith(".fp16.onnx") for a in results["artifacts"]), results["artifacts"]
