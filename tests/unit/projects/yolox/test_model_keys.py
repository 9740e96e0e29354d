"""State-dict names and shapes of the AWML YOLOX_opt_elan config, derived here from AWML's
module definitions (ELANDarknet/ELAN/Stem/DarknetBottleneckOpt, YOLOXPAFPN_ELAN, mmdet
YOLOXHead, mmcv ConvModule) independently of ``model.py``, so a renamed attribute or a
wrong channel count in the model fails this test."""

from __future__ import annotations

import pytest
import torch

from modeldeploy.errors import ConfigError
from modeldeploy.projects.yolox.model import build_yolox, replace_relu6


def conv_module(p: str, cin: int, cout: int, k: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{p}.conv.weight": (cout, cin, k, k),
        f"{p}.bn.weight": (cout,),
        f"{p}.bn.bias": (cout,),
        f"{p}.bn.running_mean": (cout,),
        f"{p}.bn.running_var": (cout,),
        f"{p}.bn.num_batches_tracked": (),
    }


def elan(p: str, cin: int, cout: int, expand: float, n: int) -> dict[str, tuple[int, ...]]:
    mid = int(cout * expand)
    keys = {
        **conv_module(f"{p}.main_conv", cin, mid, 1),
        **conv_module(f"{p}.short_conv", cin, mid, 1),
        **conv_module(f"{p}.final_conv", (n + 1) * mid, cout, 1),
    }
    for j in range(n):
        keys |= conv_module(f"{p}.blocks.{j}.conv1", mid, mid, 3) | conv_module(f"{p}.blocks.{j}.conv2", mid, mid, 3)
    return keys


def awml_expected_keys(num_classes: int = 8) -> dict[str, tuple[int, ...]]:
    """ELANDarknet(P5, deepen 2, widen 1) + YOLOXPAFPN_ELAN([128,256,512]→128, 2 blocks) + YOLOXHead(128, 128)."""
    keys = conv_module("backbone.stem.conv.0", 3, 32, 3) | conv_module("backbone.stem.conv.1", 32, 32, 3)
    for i, (cin, cout, n) in enumerate([(32, 64, 1), (64, 128, 3), (128, 256, 3), (256, 512, 1)], start=1):
        keys |= conv_module(f"backbone.stage{i}.0", cin, cout, 3) | elan(
            f"backbone.stage{i}.1", cout, cout, 0.5, max(round(n * 2), 1)
        )
    c = [128, 256, 512]
    for j, idx in enumerate([2, 1]):  # top-down, from the deepest level
        keys |= conv_module(f"neck.reduce_layers.{j}", c[idx], c[idx - 1], 1) | elan(
            f"neck.top_down_blocks.{j}", c[idx - 1] * 2, c[idx - 1], 0.5, 2
        )
    for idx in range(2):
        keys |= conv_module(f"neck.downsamples.{idx}", c[idx], c[idx], 3) | elan(
            f"neck.bottom_up_blocks.{idx}", c[idx] * 2, c[idx + 1], 0.5, 2
        )
    for i in range(3):
        keys |= conv_module(f"neck.out_convs.{i}", c[i], 128, 1)
    for lvl in range(3):
        for branch in ("cls", "reg"):
            for s in range(2):
                keys |= conv_module(f"bbox_head.multi_level_{branch}_convs.{lvl}.{s}", 128, 128, 3)
        for name, out in (("cls", num_classes), ("reg", 4), ("obj", 1)):
            keys[f"bbox_head.multi_level_conv_{name}.{lvl}.weight"] = (out, 128, 1, 1)
            keys[f"bbox_head.multi_level_conv_{name}.{lvl}.bias"] = (out,)
    return keys


def test_awml_config_has_exactly_the_awml_state_dict(awml_cfg) -> None:
    model = build_yolox(awml_cfg.model)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = awml_expected_keys()
    assert sorted(set(got) - set(want)) == [] and sorted(set(want) - set(got)) == []
    assert {k for k in want if got[k] != want[k]} == set()
    # 97 ConvModules (stem 2, stages 4 + ELANs 7/15/15/7, neck 35, head 12) x 6 tensors + 18 head 1x1 conv tensors
    assert len(want) == 97 * 6 + 18


def test_awml_named_state_dict_loads_strictly(awml_cfg) -> None:
    model = build_yolox(awml_cfg.model)
    gen = torch.Generator().manual_seed(0)
    sd = {
        k: (torch.zeros((), dtype=torch.long) if k.endswith("num_batches_tracked") else torch.randn(s, generator=gen))
        for k, s in awml_expected_keys().items()
    }
    model.load_state_dict(sd, strict=True)
    assert torch.equal(
        model.state_dict()["bbox_head.multi_level_conv_cls.2.bias"], sd["bbox_head.multi_level_conv_cls.2.bias"]
    )


def test_awml_model_feature_shapes_at_960(awml_cfg) -> None:
    model = build_yolox(awml_cfg.model)
    feats = model.backbone(torch.zeros(1, 3, 960, 960))
    assert [tuple(f.shape) for f in feats] == [(1, 128, 120, 120), (1, 256, 60, 60), (1, 512, 30, 30)]


def test_relu6_replacement_counts_and_changes_only_large_activations(tiny_cfg) -> None:
    model = build_yolox(tiny_cfg.model)
    n6 = sum(isinstance(m, torch.nn.ReLU6) for m in model.modules())
    assert n6 > 20
    assert replace_relu6(model) == n6
    assert not any(isinstance(m, torch.nn.ReLU6) for m in model.modules())


@pytest.mark.parametrize(
    "path,value,needle",
    [
        (("backbone", "type"), "CSPDarknet", "model.backbone.type"),
        (("neck", "in_channels"), [64, 128, 256], "model.neck.in_channels"),
        (("bbox_head", "in_channels"), 64, "model.bbox_head.in_channels"),
        (("backbone", "use_depthwise"), True, "use_depthwise"),
        (("bbox_head", "act_cfg"), {"type": "GELU"}, "GELU"),
        (("neck", "bogus"), 1, "model.neck.bogus"),
    ],
)
def test_bad_model_config_is_a_config_error(tiny_cfg, path, value, needle) -> None:
    cfg = tiny_cfg.model.to_dict()
    cfg[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        build_yolox(cfg)
