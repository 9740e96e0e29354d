"""CenterPoint on CUDA: voxelization/decode/NMS identical to CPU; pipeline parity and stage timings.

Runs where a CUDA device is visible; skipped with a visible reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible): CenterPoint CPU-vs-CUDA checks skipped"),
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "runtime" / "modeldeploy" / "projects" / "centerpoint" / "configs"


def _cfg(name: str):
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / name))


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory):
    from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
    from modeldeploy.projects.centerpoint.synthetic import CLASSES, generate_dataset

    root = tmp_path_factory.mktemp("cp_gpu")
    info = generate_dataset(root, num_frames=3, seed=77)
    return CenterPointDataLoader(info, root, CLASSES, (0, 1, 2, 3))


@pytest.mark.parametrize("config", ["centerpoint_tiny.py", "centerpoint_awml.py"])
def test_voxelization_is_identical_on_cpu_and_cuda(frames, config: str) -> None:
    from modeldeploy.projects.centerpoint.ops import decorate, voxelize
    from modeldeploy.projects.centerpoint.settings import parse_settings

    s = parse_settings(_cfg(config))
    for i in range(len(frames)):
        pts = frames.load_sample(i)["points"]
        a = voxelize(pts, s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
        b = voxelize(pts.cuda(), s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
        for x, y in zip(a, b):
            assert torch.equal(x, y.cpu())
        fa = decorate(a.voxels, a.num_points, a.coors, s.voxel_size, s.point_cloud_range)
        fb = decorate(b.voxels, b.num_points, b.coors, s.voxel_size, s.point_cloud_range)
        torch.testing.assert_close(fb.cpu(), fa, atol=1e-5, rtol=0)


@pytest.mark.parametrize("nms_type", ["circle", "rotate"])
def test_decode_and_nms_identical_on_cpu_and_cuda(frames, nms_type: str) -> None:
    from modeldeploy.projects.centerpoint.boxes import decode_and_nms
    from modeldeploy.projects.centerpoint.model import build_centerpoint
    from modeldeploy.projects.centerpoint.pipeline import preprocess_points
    from modeldeploy.projects.centerpoint.ops import scatter_to_bev

    cfg = _cfg("centerpoint_tiny.py")
    cfg.model.test_cfg.pts.nms_type = nms_type
    torch.manual_seed(0)
    model = build_centerpoint(cfg)
    s = model.settings
    for i in range(len(frames)):
        pre = preprocess_points(frames.load_sample(i)["points"], s, torch.device("cpu"))
        with torch.no_grad():
            pillars = model.pts_voxel_encoder.forward_decorated(pre["input_features"])
            heads = model.backbone_neck_head(scatter_to_bev(pillars, pre["coors"], *s.output_shape))
        cpu = decode_and_nms(heads, s)
        gpu = decode_and_nms([{k: v.cuda() for k, v in h.items()} for h in heads], s).to("cpu")
        assert len(cpu) > 0
        assert torch.equal(cpu.labels, gpu.labels)
        torch.testing.assert_close(gpu.scores, cpu.scores, atol=1e-6, rtol=0)
        torch.testing.assert_close(gpu.bboxes, cpu.bboxes, atol=1e-5, rtol=1e-6)


def test_pytorch_pipeline_cpu_vs_cuda_and_stage_timings(frames, monkeypatch) -> None:
    # fp32 means fp32 here: Hopper's default TF32 convolutions differ from the CPU by ~1e-3.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    from modeldeploy.backends.pytorch import PyTorchBackend
    from modeldeploy.projects.centerpoint.box_compare import compare_box_sets
    from modeldeploy.projects.centerpoint.model import build_centerpoint
    from modeldeploy.projects.centerpoint.pipeline import STAGES, CenterPointPipeline
    from modeldeploy.projects.centerpoint.project import export_components_for
    from modeldeploy.core.checkpoint import load_weights

    cfg = _cfg("centerpoint_tiny.py")
    ckpt = CONFIG_DIR.parent / "assets" / "centerpoint_tiny.pth"
    model = load_weights(build_centerpoint(cfg), ckpt)
    comps = export_components_for(model, frames.load_sample(0))
    cpu = CenterPointPipeline({c.name: PyTorchBackend(c, "cpu") for c in comps}, model.settings, "cpu")
    import copy

    gpu_comps = [copy.copy(c) for c in comps]
    for c in gpu_comps:
        c.module = copy.deepcopy(c.module)
    gpu = CenterPointPipeline({c.name: PyTorchBackend(c, "cuda") for c in gpu_comps}, model.settings, "cuda")
    for i in range(len(frames)):
        sample = frames.load_sample(i)
        a, b = cpu(sample), gpu(sample)
        for k, v in a.raw_outputs.items():
            torch.testing.assert_close(b.raw_outputs[k].cpu(), v, atol=1e-3, rtol=1e-3)
        res = compare_box_sets(a.prediction, b.prediction, score_threshold=model.settings.score_threshold)
        assert res["passed"], res
        assert set(b.stage_ms) >= set(STAGES)
        print(f"frame {i} cuda stage ms: " + ", ".join(f"{k}={b.stage_ms[k]:.3f}" for k in STAGES) + f", total={b.total_ms:.3f}")
