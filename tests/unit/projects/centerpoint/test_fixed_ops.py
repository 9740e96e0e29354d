"""The fixed-shape, host-sync-free CenterPoint path (fixed_ops.py) equals the reference ops.

CPU runs of the torch fallbacks here; the Triton kernels themselves run on the CPU under
Triton's interpreter in a subprocess (TRITON_INTERPRET must be set before triton loads),
and on CUDA in tests/gpu/test_centerpoint_gpu.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeploy.projects.centerpoint import fixed_ops as fx
from modeldeploy.projects.centerpoint.boxes import decode_and_nms
from modeldeploy.projects.centerpoint.model import (
    HEAD_OUTPUTS,
    build_centerpoint,
    split_task_outputs,
)
from modeldeploy.projects.centerpoint.ops import decorate, voxelize
from modeldeploy.projects.centerpoint.settings import parse_settings

from .reference_impls import mmcv_hard_voxelize, sequential_greedy

VS = (0.5, 0.5, 4.0)
PCR = (-4.0, -4.0, -2.0, 4.0, 4.0, 2.0)


def random_points(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-5, 5, (n, 4)).astype(np.float32)  # some outside the range on purpose
    pts[:, 2] = rng.uniform(-3, 3, n)
    pts[: n // 3, :2] = rng.normal(0, 0.3, (n // 3, 2))  # clusters overflow max_points
    return pts


@pytest.mark.parametrize("max_points,max_voxels", [(3, 40), (5, 1000), (1, 7), (32, 96)])
def test_voxelize_fixed_equals_mmcv_hard_voxelization(max_points: int, max_voxels: int) -> None:
    pts = random_points(700, seed=max_points + max_voxels)
    ref_v, ref_c, ref_n = mmcv_hard_voxelize(pts, VS, PCR, max_points, max_voxels)
    p = torch.from_numpy(pts)
    out = fx.voxelize_fixed(p, VS, PCR, max_points, max_voxels)
    m = int(out.count)
    assert m == len(ref_c)
    assert out.point_index.shape == (max_voxels, max_points)
    assert np.array_equal(out.voxels(p)[:m].numpy(), ref_v)
    assert out.coors[:m].tolist() == ref_c.tolist()
    assert out.num_points[:m].tolist() == ref_n.tolist()
    # padding rows are empty and say so
    assert (
        bool((out.point_index[m:] == -1).all())
        and bool((out.num_points[m:] == 0).all())
        and bool((out.coors[m:] == 0).all())
    )


def test_voxelize_fixed_empty_and_out_of_range_inputs() -> None:
    out = fx.voxelize_fixed(torch.tensor([[10.0, 0, 0, 1]]), VS, PCR, 4, 10)
    assert int(out.count) == 0 and bool((out.point_index == -1).all())
    out = fx.voxelize_fixed(torch.zeros((0, 4)), VS, PCR, 4, 10)
    assert int(out.count) == 0 and out.coors.shape == (10, 3)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"legacy": True},
        {"voxel_center_dims": 2, "with_distance": True},
        {"with_cluster_center": False, "legacy": True, "with_distance": True, "voxel_center_dims": 2},
    ],
)
def test_decorate_fixed_equals_reference_and_zeroes_padding(kw: dict) -> None:
    p = torch.from_numpy(random_points(500, seed=3))
    ref = voxelize(p, VS, PCR, 5, 200)
    vox = fx.voxelize_fixed(p, VS, PCR, 5, 200)
    m = int(vox.count)
    got = fx.decorate_fixed(p, vox, VS, PCR, use_triton=False, **kw)
    assert torch.equal(got[:m], decorate(ref.voxels, ref.num_points, ref.coors, VS, PCR, **kw))
    assert int(torch.count_nonzero(got[m:])) == 0


@pytest.mark.parametrize("method", ["sort", "topk", "key"])
@pytest.mark.parametrize("k", [300, 45, 120])
def test_top_candidates_fixed_orders_like_a_stable_descending_sort(method: str, k: int) -> None:
    g = torch.Generator().manual_seed(k)
    scores = (torch.rand(5000, generator=g) * 64).floor() / 64  # many ties everywhere, below 1.0
    scores[100:140] = 1.0  # saturated sigmoids: real ties, and the k-th value sits inside a tie for k=45/120
    scores[7] = float("nan")
    top, idx = fx.top_candidates_fixed(scores, k, method)
    clean = torch.where(torch.isnan(scores), torch.full_like(scores, -1.0), scores)
    ref_s, ref_i = torch.sort(clean, descending=True, stable=True)
    assert idx.tolist() == ref_i[:k].tolist()
    assert torch.equal(top, ref_s[:k])


@pytest.mark.parametrize("seed", range(4))
def test_greedy_keep_masked_equals_sequential_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 80
    sup = np.triu(rng.random((k, k)) < 0.1, 1)
    valid = rng.random(k) < 0.8
    # an invalid box neither survives nor suppresses: the reference drops it before NMS
    sub = np.flatnonzero(valid)
    want = sub[sequential_greedy(sup[np.ix_(sub, sub)])]
    got = (
        fx.greedy_keep_masked(torch.from_numpy(sup), torch.from_numpy(valid), use_triton=False)
        .nonzero()
        .squeeze(1)
        .numpy()
    )
    assert np.array_equal(got, want)


def _heads(s, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = s.head_grid
    out = {
        k: torch.randn(1, c, h, w, generator=g) for k, c in zip(HEAD_OUTPUTS, (sum(s.task_num_classes), 2, 1, 3, 2, 2))
    }
    out["heatmap"] = out["heatmap"] * 1.5 - 1.0
    out["heatmap"][0, 0, 5:9, 5:9] = 30.0  # sigmoid saturates to exactly 1.0: ties broken by index
    out["dim"] = out["dim"] * 0.3 + 1.0
    return out


@pytest.mark.parametrize(
    "nms_type,post_max,pre_max",
    [("circle", 100, 1000), ("circle", 25, 1000), ("rotate", 100, 60), ("rotate", 20, 1000)],
)
def test_decode_and_nms_fixed_equals_reference(tiny_cfg, nms_type: str, post_max: int, pre_max: int) -> None:
    s = dataclasses.replace(
        parse_settings(tiny_cfg),
        nms_type=nms_type,
        min_radius=(4.0,),
        post_max_size=post_max,
        pre_max_size=pre_max,
        nms_thr=0.1,
    )
    for seed in range(2):
        per_task = split_task_outputs(_heads(s, seed), s.task_num_classes)
        ref = decode_and_nms(per_task, s)
        fixed = fx.decode_and_nms_fixed(per_task, s, use_triton=False)
        assert fixed.keep.shape[0] == s.max_num  # fixed size whatever the data
        got = fixed.compact()
        assert len(ref) > 0
        assert (
            torch.equal(got.labels, ref.labels)
            and torch.equal(got.scores, ref.scores)
            and torch.equal(got.bboxes, ref.bboxes)
        )


def test_decode_and_nms_fixed_multi_task_equals_reference(tiny_cfg) -> None:
    import copy

    cfg = copy.deepcopy(tiny_cfg)
    cfg.model.pts_bbox_head.tasks = [
        {"num_class": 2, "class_names": ["car", "truck"]},
        {"num_class": 3, "class_names": ["bus", "bicycle", "pedestrian"]},
    ]
    cfg.model.test_cfg.pts.min_radius = [1.0, 0.5]
    s = parse_settings(cfg)
    one = _heads(s, 5)
    merged = {k: (torch.cat([v, v * 0.5], 1) if k != "heatmap" else v) for k, v in one.items()}
    per_task = split_task_outputs(merged, s.task_num_classes)
    ref = decode_and_nms(per_task, s)
    got = fx.decode_and_nms_fixed(per_task, s, use_triton=False).compact()
    assert set(ref.labels.tolist()) >= {0, 2}
    assert torch.equal(got.labels, ref.labels) and torch.equal(got.bboxes, ref.bboxes)


def folded_pfn_torch(feats: torch.Tensor, layers) -> torch.Tensor:
    """What the fused kernel computes, written plainly: per layer relu(x @ W + b), max over
    slots, a non-last layer's output concatenated with its max."""
    x = feats
    for i, (w, b) in enumerate(layers):
        h = torch.relu(x @ w + b)
        m = h.amax(dim=1, keepdim=True)
        x = m if i == len(layers) - 1 else torch.cat([h, m.expand_as(h)], dim=2)
    return x.reshape(x.shape[0], -1)


@pytest.mark.parametrize("config", ["tiny_cfg", "awml_cfg"])
def test_fold_pfn_and_encode_fixed_match_the_encoder_module(config: str, request: pytest.FixtureRequest) -> None:
    torch.manual_seed(0)
    model = build_centerpoint(request.getfixturevalue(config)).eval()
    s, enc = model.settings, model.pts_voxel_encoder
    with torch.no_grad():
        for mod in enc.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):  # non-trivial statistics, so folding is tested
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    rng = np.random.default_rng(1)
    lo, hi = np.array(s.point_cloud_range[:3]), np.array(s.point_cloud_range[3:])
    pts = torch.from_numpy(
        np.concatenate([rng.uniform(lo - 1, hi + 1, (2000, 3)), rng.uniform(0, 1, (2000, 1))], 1).astype(np.float32)
    )
    pts[:500, :2] = torch.from_numpy(rng.normal(0, 0.2, (500, 2)).astype(np.float32))  # full voxels
    vox = fx.voxelize_fixed(pts, s.voxel_size, s.point_cloud_range, s.max_num_points, 600)
    m = int(vox.count)
    layers = fx.fold_pfn(enc)
    assert layers is not None and len(layers) == len(enc.pfn_layers)
    with torch.no_grad():
        feats = fx.decorate_fixed(pts, vox, s.voxel_size, s.point_cloud_range, use_triton=False)
        want = enc.forward_decorated(feats).reshape(feats.shape[0], -1)
        folded = folded_pfn_torch(feats, layers)
        got = fx.encode_fixed(pts, vox, enc, s, use_triton=False)
    torch.testing.assert_close(folded[:m], want[:m], atol=1e-5, rtol=1e-5)
    assert torch.equal(got[:m], want[:m])
    assert fx.fold_pfn(enc.train()) is None  # a training-mode BatchNorm is not folded


def test_scatter_fixed_equals_reference_and_is_channels_last() -> None:
    from modeldeploy.projects.centerpoint.ops import scatter_to_bev

    p = torch.from_numpy(random_points(600, seed=9))
    vox = fx.voxelize_fixed(p, VS, PCR, 4, 50)
    m = int(vox.count)
    feats = torch.randn(50, 1, 6)
    got = fx.scatter_fixed(feats, vox.coors, vox.count, 16, 16)
    assert torch.equal(got, scatter_to_bev(feats[:m], vox.coors[:m], 16, 16))
    assert got.is_contiguous(memory_format=torch.channels_last)


INTERPRETED = textwrap.dedent(
    """
    import json, numpy as np, torch
    from modeldeploy.projects.centerpoint import fixed_ops as fx
    from modeldeploy.projects.centerpoint.triton_kernels import decorate_triton, greedy_nms_keep, pfn_triton
    VS = (0.5, 0.5, 4.0); PCR = (-4.0, -4.0, -2.0, 4.0, 4.0, 2.0)
    rng = np.random.default_rng(4)
    pts = rng.uniform(-5, 5, (300, 4)).astype(np.float32); pts[:100, :2] = rng.normal(0, 0.3, (100, 2))
    p = torch.from_numpy(pts)
    vox = fx.voxelize_fixed(p, VS, PCR, 8, 24)
    vt = fx.voxelize_fixed(p, VS, PCR, 8, 24, use_triton=True)
    res = {"voxelize_keys_kernel_mismatch": float(sum(int((a != b).sum()) for a, b in zip(vox, vt)))}
    for name, kw in [("plain", {}), ("legacy_dist2", {"legacy": True, "with_distance": True, "voxel_center_dims": 2})]:
        want = fx.decorate_fixed(p, vox, VS, PCR, use_triton=False, **kw)
        got = decorate_triton(p, vox.point_index, vox.num_points, vox.coors, VS, PCR, **kw)
        res["decorate_" + name] = float((got - want).abs().max())
        f = want.shape[-1]
        one = [(torch.randn(f, 16), torch.randn(16))]
        two = [(torch.randn(f, 16) * 0.5, torch.randn(16)), (torch.randn(32, 32) * 0.3, torch.randn(32))]
        for tag, layers in (("1", one), ("2", two)):
            x = want
            for i, (w, b) in enumerate(layers):
                h = torch.relu(x @ w + b); mx = h.amax(dim=1, keepdim=True)
                x = mx if i == len(layers) - 1 else torch.cat([h, mx.expand_as(h)], dim=2)
            ref = x.reshape(x.shape[0], -1)
            got = pfn_triton(p, vox.point_index, vox.num_points, vox.coors, layers, VS, PCR, **kw)
            res["pfn" + tag + "_" + name] = float((got - ref).abs().max() / ref.abs().max())
    k = 70
    sup = torch.from_numpy(np.triu(rng.random((k, k)) < 0.1, 1)); valid = torch.from_numpy(rng.random(k) < 0.8)
    res["nms_equal"] = bool(torch.equal(greedy_nms_keep(sup, valid), fx.greedy_keep_masked(sup, valid, use_triton=False)))
    print(json.dumps(res))
    """
)


def test_triton_kernels_under_the_interpreter_match_the_torch_path() -> None:
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[4]
    env["PYTHONPATH"] = os.pathsep.join([str(root / "runtime"), env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res.pop("nms_equal") is True
    assert res.pop("voxelize_keys_kernel_mismatch") == 0
    for name, err in res.items():
        assert math.isfinite(err) and err <= 1e-5, (name, err)
