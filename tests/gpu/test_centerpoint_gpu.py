"""CenterPoint on CUDA: voxelization/decode/NMS identical to CPU; pipeline parity and stage timings.

Runs where a CUDA device is visible; skipped with a visible reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible): CenterPoint CPU-vs-CUDA checks skipped"
    ),
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "runtime" / "modeldeploy" / "projects" / "centerpoint" / "configs"


def _cfg(name: str):
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / name))


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory):
    from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader
    from modeldeploy.projects.centerpoint.settings import parse_settings
    from modeldeploy.projects.centerpoint.synthetic import CLASSES, generate_dataset

    root = tmp_path_factory.mktemp("cp_gpu")
    info = generate_dataset(root, num_frames=3, seed=77)
    # the point features the tiny checkpoint was trained on (its config's test pipeline)
    return CenterPointDataLoader(info, root, CLASSES, parse_settings(_cfg("centerpoint_tiny.py")).point_loading)


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
    from modeldeploy.projects.centerpoint.ops import scatter_to_bev
    from modeldeploy.projects.centerpoint.pipeline import preprocess_points

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
    from modeldeploy.core.checkpoint import load_weights
    from modeldeploy.projects.centerpoint.box_compare import compare_box_sets
    from modeldeploy.projects.centerpoint.model import build_centerpoint
    from modeldeploy.projects.centerpoint.pipeline import STAGES, CenterPointPipeline
    from modeldeploy.projects.centerpoint.project import export_components_for

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
        assert res["passed"], repr(res)
        assert set(b.stage_ms) >= set(STAGES)
        print(
            f"frame {i} cuda stage ms: "
            + ", ".join(f"{k}={b.stage_ms[k]:.3f}" for k in STAGES)
            + f", total={b.total_ms:.3f}"
        )


# --- the fixed-shape, host-sync-free path (fixed_ops.py + Triton kernels) on CUDA ---


@pytest.mark.parametrize("config", ["centerpoint_tiny.py", "centerpoint_awml.py"])
def test_fixed_voxelization_and_triton_encoder_on_cuda_match_cpu_reference(frames, config: str) -> None:
    from modeldeploy.projects.centerpoint import fixed_ops as fx
    from modeldeploy.projects.centerpoint.model import build_centerpoint
    from modeldeploy.projects.centerpoint.ops import decorate, voxelize

    torch.manual_seed(0)
    model = build_centerpoint(_cfg(config)).eval()
    s, enc = model.settings, model.pts_voxel_encoder
    with torch.no_grad():
        for mod in enc.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    enc_gpu = __import__("copy").deepcopy(enc).cuda()
    for i in range(len(frames)):
        pts = frames.load_sample(i)["points"]
        ref = voxelize(pts, s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
        vox = fx.voxelize_fixed(pts.cuda(), s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
        m = int(vox.count)
        assert m == ref.coors.shape[0] > 0
        assert torch.equal(vox.voxels(pts.cuda())[:m].cpu(), ref.voxels)  # bit-identical
        assert torch.equal(vox.coors[:m].cpu(), ref.coors) and torch.equal(vox.num_points[:m].cpu(), ref.num_points)
        want = decorate(ref.voxels, ref.num_points, ref.coors, s.voxel_size, s.point_cloud_range)
        got = fx.decorate_fixed(pts.cuda(), vox, s.voxel_size, s.point_cloud_range, use_triton=True)
        torch.testing.assert_close(got[:m].cpu(), want, atol=1e-5, rtol=0)
        assert int(torch.count_nonzero(got[m:])) == 0
        with torch.no_grad():
            pill_ref = enc.forward_decorated(want).reshape(m, -1)
            pill = fx.encode_fixed(pts.cuda(), vox, enc_gpu, s, use_triton=True)
        torch.testing.assert_close(pill[:m].cpu(), pill_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("nms_type", ["circle", "rotate"])
def test_fixed_decode_and_triton_nms_on_cuda_match_cpu_reference(nms_type: str) -> None:
    import dataclasses

    from modeldeploy.projects.centerpoint import fixed_ops as fx
    from modeldeploy.projects.centerpoint.boxes import decode_and_nms
    from modeldeploy.projects.centerpoint.model import HEAD_OUTPUTS, split_task_outputs
    from modeldeploy.projects.centerpoint.settings import parse_settings

    for config in ("centerpoint_tiny.py", "centerpoint_awml.py"):
        s = dataclasses.replace(parse_settings(_cfg(config)), nms_type=nms_type, min_radius=(4.0,), nms_thr=0.1)
        h, w = s.head_grid
        for seed in range(2):
            g = torch.Generator().manual_seed(seed)
            heads = {
                k: torch.randn(1, c, h, w, generator=g)
                for k, c in zip(HEAD_OUTPUTS, (sum(s.task_num_classes), 2, 1, 3, 2, 2))
            }
            heads["heatmap"] = heads["heatmap"] * 2.0 - 2.0
            heads["dim"] = heads["dim"] * 0.3 + 1.0
            per_task = split_task_outputs(heads, s.task_num_classes)
            cpu = decode_and_nms(per_task, s)
            gpu = (
                fx.decode_and_nms_fixed([{k: v.cuda() for k, v in t.items()} for t in per_task], s, use_triton=True)
                .compact()
                .to("cpu")
            )
            assert len(cpu) > 0
            assert torch.equal(cpu.labels, gpu.labels), (config, seed)
            torch.testing.assert_close(gpu.scores, cpu.scores, atol=1e-6, rtol=0)
            torch.testing.assert_close(gpu.bboxes, cpu.bboxes, atol=1e-5, rtol=1e-6)


def test_fixed_path_is_one_cuda_graph_without_host_sync(frames) -> None:
    """Capturing fails on any host synchronisation, so a successful capture proves there is none;
    a replay on a new frame (copied into the static input) gives the eager result for that frame."""
    from modeldeploy.projects.centerpoint import fixed_ops as fx
    from modeldeploy.projects.centerpoint.model import build_centerpoint

    torch.manual_seed(0)
    model = build_centerpoint(_cfg("centerpoint_tiny.py")).eval().cuda()
    s = model.settings
    ny, nx = s.output_shape
    samples = [frames.load_sample(i)["points"].cuda() for i in range(2)]
    cap = max(p.shape[0] for p in samples) + 64
    static = torch.full((cap, samples[0].shape[1]), 1e9, device="cuda")

    def load(p: torch.Tensor) -> None:
        static.fill_(1e9)
        static[: p.shape[0]] = p

    @torch.inference_mode()
    def frame() -> fx.FixedDetections:
        vox = fx.voxelize_fixed(static, s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
        pill = fx.encode_fixed(static, vox, model.pts_voxel_encoder, s)
        heads = model.backbone_neck_head(fx.scatter_fixed(pill, vox.coors, vox.count, ny, nx))
        return fx.decode_and_nms_fixed(heads, s)

    load(samples[0])
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        frame()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = frame()
    load(samples[1])
    graph.replay()
    torch.cuda.synchronize()
    eager = frame()
    assert torch.equal(out.keep, eager.keep)
    torch.testing.assert_close(out.bboxes[out.keep], eager.bboxes[eager.keep], atol=1e-5, rtol=1e-5)


def test_fast_pipeline_selected_by_the_deploy_config_matches_the_reference_on_cuda(
    frames, tmp_path: Path, monkeypatch
) -> None:
    """centerpoint.fast_pipeline=True: the project builds FastCenterPointPipeline, which on CUDA
    (Triton voxelization/decoration/NMS, fixed shapes) gives the reference pipeline's raw
    outputs and boxes on the same CUDA backends (fp32, TF32 off)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    import numpy as np

    from modeldeploy.backends.pytorch import PyTorchBackend
    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.core.checkpoint import load_weights
    from modeldeploy.projects import project_for
    from modeldeploy.projects.centerpoint.fast_pipeline import FastCenterPointPipeline
    from modeldeploy.projects.centerpoint.model import build_centerpoint
    from modeldeploy.projects.centerpoint.pipeline import CenterPointPipeline
    from modeldeploy.projects.centerpoint.project import export_components_for

    cfg = _cfg("centerpoint_tiny.py")
    model = load_weights(build_centerpoint(cfg), CONFIG_DIR.parent / "assets" / "centerpoint_tiny.pth")
    comps = export_components_for(model, frames.load_sample(0))
    backends = {c.name: PyTorchBackend(c, "cuda") for c in comps}
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        "project='centerpoint'\nexport=dict(mode='onnx', device='cuda:0')\ncenterpoint=dict(fast_pipeline=True)\n"
    )
    dcfg = BaseDeploymentConfig.fromfile(deploy)
    fast = project_for(dcfg, cfg).build_pipeline(backends, dcfg, cfg, torch.device("cuda"))
    assert type(fast) is FastCenterPointPipeline
    ref = CenterPointPipeline(backends, model.settings, "cuda")
    boxes = 0
    for i in range(len(frames)):
        sample = frames.load_sample(i)
        a, b = ref(sample), fast(sample)
        for k, v in a.raw_outputs.items():
            torch.testing.assert_close(b.raw_outputs[k], v, atol=1e-4, rtol=1e-4)
        for k in ("labels_3d", "scores_3d", "bboxes_3d"):
            np.testing.assert_allclose(b.prediction[k], a.prediction[k], atol=1e-4, rtol=1e-4)
        boxes += len(a.prediction["scores_3d"])
    assert boxes > 0
