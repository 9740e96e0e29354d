"""State-dict compatibility with mmdet3d/AWML checkpoints (strict=True).

The expected names and shapes are written out here from mmdet3d v1.x's construction code
(PillarFeatureNet/PFNLayer, SECOND, SECONDFPN, CenterHead/SeparateHead/ConvModule), not
derived from our model, so a renamed or reordered module fails this test.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch

from modeldeploy.core.checkpoint import load_weights
from modeldeploy.errors import CheckpointError
from modeldeploy.projects.centerpoint.model import build_centerpoint

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# Representative keys of the AWML base/2.x CenterPoint, checked against mmdet3d source.
EXPECTED_SHAPES = {
    "pts_voxel_encoder.pfn_layers.0.linear.weight": (16, 10),  # 4 + 3 cluster + 3 centre; non-last PFN halves units
    "pts_voxel_encoder.pfn_layers.0.norm.running_var": (16,),
    "pts_voxel_encoder.pfn_layers.1.linear.weight": (32, 32),
    "pts_backbone.blocks.0.0.weight": (64, 32, 3, 3),
    "pts_backbone.blocks.0.1.weight": (64,),
    "pts_backbone.blocks.1.0.weight": (128, 64, 3, 3),  # stride-2 conv
    "pts_backbone.blocks.2.15.weight": (256, 256, 3, 3),  # 6th conv of stage 2 (index 3*5)
    "pts_neck.deblocks.0.0.weight": (128, 64, 2, 2),  # upsample 0.5 → Conv2d k=s=2 [out,in,..]
    "pts_neck.deblocks.1.0.weight": (128, 128, 1, 1),  # stride 1 + use_conv_for_no_stride → 1x1 conv
    "pts_neck.deblocks.2.0.weight": (256, 128, 2, 2),  # upsample 2 → ConvTranspose2d [in,out,..]
    "pts_neck.deblocks.2.1.num_batches_tracked": (),
    "pts_bbox_head.shared_conv.conv.weight": (64, 384, 3, 3),
    "pts_bbox_head.shared_conv.bn.weight": (64,),
    "pts_bbox_head.task_heads.0.reg.0.conv.weight": (64, 64, 1, 1),
    "pts_bbox_head.task_heads.0.reg.1.weight": (2, 64, 1, 1),
    "pts_bbox_head.task_heads.0.height.1.bias": (1,),
    "pts_bbox_head.task_heads.0.dim.1.weight": (3, 64, 1, 1),
    "pts_bbox_head.task_heads.0.rot.1.weight": (2, 64, 1, 1),
    "pts_bbox_head.task_heads.0.vel.1.weight": (2, 64, 1, 1),
    "pts_bbox_head.task_heads.0.heatmap.0.bn.running_mean": (64,),
    "pts_bbox_head.task_heads.0.heatmap.1.weight": (5, 64, 1, 1),
}
EXPECTED_TOTAL = 180  # 12 PFN + 96 SECOND + 18 SECONDFPN + 6 shared conv + 48 task head


def mmdet3d_awml_state_dict() -> OrderedDict[str, torch.Tensor]:
    """What mmdet3d builds for the AWML config, in its registration order."""
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()

    def bn(prefix: str, c: int) -> None:
        for n in BN:
            sd[f"{prefix}.{n}"] = torch.tensor(0) if n == "num_batches_tracked" else torch.rand(c) + 0.5

    for i, (cin, units) in enumerate([(10, 16), (32, 32)]):
        sd[f"pts_voxel_encoder.pfn_layers.{i}.norm.weight"] = torch.rand(units)
        for n in BN[1:]:
            sd[f"pts_voxel_encoder.pfn_layers.{i}.norm.{n}"] = (
                torch.tensor(0) if n == "num_batches_tracked" else torch.rand(units) + 0.5
            )
        sd[f"pts_voxel_encoder.pfn_layers.{i}.linear.weight"] = torch.randn(units, cin)
    cin = 32
    for b, (cout, n) in enumerate(zip([64, 128, 256], [3, 5, 5])):
        for j in range(n + 1):
            sd[f"pts_backbone.blocks.{b}.{3 * j}.weight"] = torch.randn(cout, cin if j == 0 else cout, 3, 3) * 0.01
            bn(f"pts_backbone.blocks.{b}.{3 * j + 1}", cout)
        cin = cout
    sd["pts_neck.deblocks.0.0.weight"] = torch.randn(128, 64, 2, 2) * 0.01
    bn("pts_neck.deblocks.0.1", 128)
    sd["pts_neck.deblocks.1.0.weight"] = torch.randn(128, 128, 1, 1) * 0.01
    bn("pts_neck.deblocks.1.1", 128)
    sd["pts_neck.deblocks.2.0.weight"] = torch.randn(256, 128, 2, 2) * 0.01
    bn("pts_neck.deblocks.2.1", 128)
    sd["pts_bbox_head.shared_conv.conv.weight"] = torch.randn(64, 384, 3, 3) * 0.01
    bn("pts_bbox_head.shared_conv.bn", 64)
    for head, c in [("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2), ("heatmap", 5)]:
        p = f"pts_bbox_head.task_heads.0.{head}"
        sd[f"{p}.0.conv.weight"] = torch.randn(64, 64, 1, 1) * 0.01
        bn(f"{p}.0.bn", 64)
        sd[f"{p}.1.weight"] = torch.randn(c, 64, 1, 1) * 0.01
        sd[f"{p}.1.bias"] = torch.randn(c)
    return sd


def test_awml_state_dict_keys_and_shapes_match_mmdet3d(awml_cfg) -> None:
    model = build_centerpoint(awml_cfg)
    ours = model.state_dict()
    assert len(ours) == EXPECTED_TOTAL
    for k, shape in EXPECTED_SHAPES.items():
        assert tuple(ours[k].shape) == shape, k
    ref = mmdet3d_awml_state_dict()
    assert list(ref) == list(ours), "key names or registration order differ from mmdet3d"
    model.load_state_dict(ref, strict=True)
    assert torch.equal(
        model.pts_bbox_head.task_heads[0].heatmap[1].bias, ref["pts_bbox_head.task_heads.0.heatmap.1.bias"]
    )


def test_awml_runner_checkpoint_loads_strict_through_framework(awml_cfg, tmp_path) -> None:
    """An mmengine-Runner-shaped checkpoint (meta + state_dict + optimizer) loads via load_weights."""
    ref = mmdet3d_awml_state_dict()
    ckpt = {
        "meta": {"epoch": 50, "mmdet3d_version": "1.4.0"},
        "state_dict": ref,
        "optimizer": {"state": {}, "param_groups": []},
    }
    path = tmp_path / "epoch_50.pth"
    torch.save(ckpt, path)
    model = load_weights(build_centerpoint(awml_cfg), path)
    assert torch.equal(model.pts_backbone.blocks[2][15].weight, ref["pts_backbone.blocks.2.15.weight"])


def test_checkpoint_with_wrong_class_count_is_a_clear_checkpoint_error(awml_cfg, tmp_path) -> None:
    ref = mmdet3d_awml_state_dict()
    ref["pts_bbox_head.task_heads.0.heatmap.1.weight"] = torch.randn(10, 64, 1, 1)
    ref["pts_bbox_head.task_heads.0.heatmap.1.bias"] = torch.randn(10)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": ref}, path)
    with pytest.raises(CheckpointError, match="heatmap"):
        load_weights(build_centerpoint(awml_cfg), path)


def test_backward_pillar_feature_net_has_nine_input_features(awml_cfg) -> None:
    """AWML base/1.x BackwardPillarFeatureNet: x/y pillar-centre offsets only → 4+3+2 = 9."""
    cfg = copy.deepcopy(awml_cfg)  # session fixture: never mutate it
    cfg.model.pts_voxel_encoder.type = "BackwardPillarFeatureNet"
    cfg.model.pts_voxel_encoder.feat_channels = [32]
    model = build_centerpoint(cfg)
    assert tuple(model.state_dict()["pts_voxel_encoder.pfn_layers.0.linear.weight"].shape) == (32, 9)


def test_committed_tiny_checkpoint_loads_weights_only_and_strict(tiny_cfg) -> None:
    from pathlib import Path

    ckpt = (
        Path(__file__).resolve().parents[4]
        / "runtime"
        / "modeldeploy"
        / "projects"
        / "centerpoint"
        / "assets"
        / "centerpoint_tiny.pth"
    )
    assert ckpt.stat().st_size < 5_000_000
    meta = torch.load(ckpt, weights_only=True)["meta"]
    model = load_weights(build_centerpoint(tiny_cfg), ckpt)
    assert meta["config"] == "builtin:centerpoint/centerpoint_tiny.py"
    assert model.pts_bbox_head.task_heads[0].heatmap[1].bias.abs().sum() > 0
