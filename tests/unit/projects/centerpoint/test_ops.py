"""Voxelization (mmcv semantics), decoration and scatter: exact against references, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeldeploy.projects.centerpoint.ops import decorate, scatter_to_bev, voxelize

from .reference_impls import mmcv_hard_voxelize

VS = (0.5, 0.5, 4.0)
PCR = (-4.0, -4.0, -2.0, 4.0, 4.0, 2.0)


def random_points(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-5, 5, (n, 4)).astype(np.float32)  # some outside the range on purpose
    pts[:, 2] = rng.uniform(-3, 3, n)
    # clusters so voxels overflow max_points
    pts[: n // 3, :2] = rng.normal(0, 0.3, (n // 3, 2))
    return pts


@pytest.mark.parametrize("max_points,max_voxels", [(3, 40), (5, 1000), (1, 7)])
def test_voxelize_matches_mmcv_hard_voxelization(max_points: int, max_voxels: int) -> None:
    pts = random_points(600, seed=max_points * 10 + max_voxels)
    ref_v, ref_c, ref_n = mmcv_hard_voxelize(pts, VS, PCR, max_points, max_voxels)
    out = voxelize(torch.from_numpy(pts), VS, PCR, max_points, max_voxels)
    assert out.coors.tolist() == ref_c.tolist()
    assert out.num_points.tolist() == ref_n.tolist()
    assert np.array_equal(out.voxels.numpy(), ref_v)
    assert len(ref_c) == min(max_voxels, len(ref_c))


def test_voxelize_drops_points_outside_range_and_is_deterministic() -> None:
    pts = torch.tensor(
        [[10.0, 0, 0, 1], [0.1, 0.1, 0.0, 2], [-4.0, -4.0, -2.0, 3], [4.0, 0, 0, 4]]
    )  # x=4.0 is outside [min, max)
    a = voxelize(pts, VS, PCR, 4, 10)
    b = voxelize(pts, VS, PCR, 4, 10)
    assert a.coors.tolist() == [[0, 8, 8], [0, 0, 0]]  # (z, y, x), first-come order
    assert a.num_points.tolist() == [1, 1]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    empty = voxelize(pts[:1], VS, PCR, 4, 10)
    assert empty.voxels.shape == (0, 4, 4)


def test_decorate_offsets_and_zeroed_padding() -> None:
    pts = torch.tensor([[0.1, 0.2, 0.5, 7.0], [0.3, 0.4, -0.5, 9.0]])
    v = voxelize(pts, VS, PCR, 3, 10)
    f = decorate(v.voxels, v.num_points, v.coors, VS, PCR, voxel_center_dims=3)
    assert f.shape == (1, 3, 10)
    # cluster mean (0.2, 0.3, 0.0); pillar centre x = 8*0.5 + 0.25 - 4 = 0.25, y = 0.25, z = 0*4 + 2 - 2 = 0
    torch.testing.assert_close(f[0, 0], torch.tensor([0.1, 0.2, 0.5, 7.0, -0.1, -0.1, 0.5, -0.15, -0.05, 0.5]))
    assert torch.count_nonzero(f[0, 2]) == 0
    f9 = decorate(v.voxels, v.num_points, v.coors, VS, PCR, voxel_center_dims=2)
    assert f9.shape[-1] == 9
    legacy = decorate(v.voxels, v.num_points, v.coors, VS, PCR, voxel_center_dims=3, legacy=True)
    torch.testing.assert_close(legacy[0, 0, :3], f[0, 0, 7:10])  # mmdet3d legacy: raw xyz overwritten by centre offsets


def test_scatter_places_pillars_at_their_cells() -> None:
    feats = torch.arange(6.0).view(3, 1, 2)
    coors = torch.tensor([[0, 1, 2], [0, 0, 0], [0, 3, 1]])
    canvas = scatter_to_bev(feats, coors, ny=4, nx=3)
    assert canvas.shape == (1, 2, 4, 3)
    assert canvas[0, :, 1, 2].tolist() == [0.0, 1.0]
    assert canvas[0, :, 3, 1].tolist() == [4.0, 5.0]
    assert float(canvas.sum()) == 15.0
