"""YOLOX_opt_elan in pure PyTorch: AWML's ``ELANDarknet`` + ``YOLOXPAFPN_ELAN`` and mmdet's ``YOLOXHead``.

Why re-implemented: the runtime image carries no mmcv/mmdet. Module and attribute names
follow mmcv/mmdet/AWML exactly, so an AWML checkpoint's ``state_dict`` loads with
``strict=True``. The mapping that was checked against AWML/mmdet sources (and is pinned
by ``tests/unit/projects/yolox/test_model_keys.py``):

=========================================  ===============================================
AWML / mmdet module                        state-dict prefix (ConvModule = conv + bn)
=========================================  ===============================================
mmcv ``ConvModule``                        ``<p>.conv.weight`` (no bias: norm follows),
                                           ``<p>.bn.{weight,bias,running_mean,running_var,
                                           num_batches_tracked}``; activation ``activate``
                                           has no parameters
``Stem`` (csp_darknet_opt)                 ``backbone.stem.conv.{0,1}``: 3x3 s2, 3x3 s1
``ELANDarknet`` stage i (1..4)             ``backbone.stage{i}.0`` 3x3 s2 ConvModule,
                                           ``backbone.stage{i}.1`` ELAN
``ELAN`` (layers/elan_layer)               ``main_conv``, ``short_conv`` (1x1),
                                           ``blocks.{j}.conv1/conv2`` (3x3, DarknetBottleneckOpt),
                                           ``final_conv`` (1x1 over (n+1)·mid channels)
``YOLOXPAFPN_ELAN``                        ``neck.reduce_layers.{0,1}``, ``neck.top_down_blocks.{0,1}``,
                                           ``neck.downsamples.{0,1}``, ``neck.bottom_up_blocks.{0,1}``,
                                           ``neck.out_convs.{0,1,2}``
mmdet ``YOLOXHead``                        ``bbox_head.multi_level_cls_convs.{l}.{0..}``,
                                           ``bbox_head.multi_level_reg_convs.{l}.{0..}``,
                                           ``bbox_head.multi_level_conv_{cls,reg,obj}.{l}``
                                           (1x1 Conv2d with bias)
=========================================  ===============================================

Not supported (a ConfigError says so): depthwise convolutions, the ``P5_ASPP`` arch,
norms other than BN/SyncBN.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from modeldeploy.core.awml_config import check_model_types
from modeldeploy.errors import ConfigError

DEFAULT_NORM = {"type": "BN", "momentum": 0.03, "eps": 0.001}

# ELANDarknet arch "P5": in_channels, out_channels, num_blocks, expand_ratio, add_identity, use_aspp
ARCH_P5: tuple[tuple[int, int, int, float, bool, bool], ...] = (
    (32, 64, 1, 0.5, True, False),
    (64, 128, 3, 0.5, True, False),
    (128, 256, 3, 0.5, True, False),
    (256, 512, 1, 0.5, False, False),
)


class Swish(nn.Module):
    """mmcv's ``Swish`` (x·sigmoid(x)); written out so every exporter emits plain ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def build_activation(act_cfg: Mapping[str, Any] | None) -> nn.Module:
    if act_cfg is None:
        return nn.Identity()
    cfg = dict(act_cfg)
    kind = str(cfg.pop("type", "")).split(".")[-1]
    cfg.pop("inplace", None)
    if kind == "ReLU":
        return nn.ReLU()
    if kind == "ReLU6":
        return nn.ReLU6()
    if kind in ("Swish", "SiLU"):
        return Swish()
    if kind == "LeakyReLU":
        return nn.LeakyReLU(float(cfg.get("negative_slope", 0.01)))
    if kind == "Sigmoid":
        return nn.Sigmoid()
    raise ConfigError(
        f"model config: activation type {kind!r} is not supported",
        hint="use ReLU, ReLU6, Swish/SiLU, LeakyReLU or Sigmoid",
    )


def _bn(channels: int, norm_cfg: Mapping[str, Any] | None) -> nn.BatchNorm2d:
    cfg = dict(norm_cfg or DEFAULT_NORM)
    kind = str(cfg.get("type", "BN")).split(".")[-1]
    if kind not in ("BN", "BN2d", "SyncBN"):
        raise ConfigError(
            f"model config: norm type {kind!r} is not supported",
            hint="use norm_cfg=dict(type='BN', momentum=0.03, eps=0.001)",
        )
    return nn.BatchNorm2d(channels, eps=float(cfg.get("eps", 1e-5)), momentum=float(cfg.get("momentum", 0.1)))


class ConvModule(nn.Module):
    """mmcv ``ConvModule`` (conv → bn → activate) with mmcv's attribute names."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, bias=False)
        self.bn = _bn(out_channels, norm_cfg)
        self.activate = build_activation(act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class Stem(nn.Module):
    """AWML's slice-free stem: two 3x3 ConvModules, the first with stride 2."""

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: Any, act_cfg: Any) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ConvModule(in_channels, out_channels, 3, 2, 1, norm_cfg, act_cfg),
            ConvModule(out_channels, out_channels, 3, 1, 1, norm_cfg, act_cfg),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DarknetBottleneckOpt(nn.Module):
    """Two 3x3 ConvModules (expansion 1.0) with an optional residual."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, add_identity: bool, norm_cfg: Any, act_cfg: Any
    ) -> None:
        super().__init__()
        self.conv1 = ConvModule(in_channels, out_channels, kernel_size, 1, 1, norm_cfg, act_cfg)
        self.conv2 = ConvModule(out_channels, out_channels, kernel_size, 1, 1, norm_cfg, act_cfg)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ELAN(nn.Module):
    """AWML ELAN: short 1x1 branch + every intermediate of a bottleneck chain, concatenated."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        expand_ratio: float = 1.0,
        num_blocks: int = 3,
        add_identity: bool = True,
        norm_cfg: Any = None,
        act_cfg: Any = None,
    ) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.main_conv = ConvModule(in_channels, mid, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.short_conv = ConvModule(in_channels, mid, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.final_conv = ConvModule((num_blocks + 1) * mid, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.blocks = nn.Sequential(
            *[DarknetBottleneckOpt(mid, mid, kernel_size, add_identity, norm_cfg, act_cfg) for _ in range(num_blocks)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.short_conv(x)]
        y = self.main_conv(x)
        for block in self.blocks:
            y = block(y)
            feats.append(y)
        return self.final_conv(torch.cat(feats, dim=1))


class ELANDarknet(nn.Module):
    def __init__(
        self,
        arch: str = "P5",
        deepen_factor: float = 2.0,
        widen_factor: float = 1.0,
        out_indices: Sequence[int] = (2, 3, 4),
        use_depthwise: bool = False,
        arch_overwrite: Sequence[Sequence[Any]] | None = None,
        norm_cfg: Any = None,
        act_cfg: Any = None,
        **_ignored: Any,
    ) -> None:
        super().__init__()
        if use_depthwise:
            raise ConfigError(
                "model config: 'model.backbone.use_depthwise=True' is not supported", hint="set use_depthwise=False"
            )
        if arch != "P5" and not arch_overwrite:
            raise ConfigError(f"model config: 'model.backbone.arch' = {arch!r} is not supported", hint="use arch='P5'")
        settings = [tuple(s) for s in (arch_overwrite or ARCH_P5)]
        if any(bool(s[5]) for s in settings):
            raise ConfigError("model config: ASPP stages (use_aspp) are not supported", hint="use arch='P5'")
        norm_cfg = norm_cfg or DEFAULT_NORM
        act_cfg = act_cfg or {"type": "ReLU"}
        self.out_indices = tuple(out_indices)
        self.stem = Stem(3, int(settings[0][0] * widen_factor), norm_cfg, act_cfg)
        self.layers = ["stem"]
        self.out_channels: list[int] = []
        for i, (cin, cout, n, expand, add_identity, _aspp) in enumerate(settings):
            cin, cout = int(cin * widen_factor), int(cout * widen_factor)
            n = max(round(n * deepen_factor), 1)
            stage = nn.Sequential(
                ConvModule(cin, cout, 3, 2, 1, norm_cfg, act_cfg),
                ELAN(cout, cout, 3, float(expand), n, bool(add_identity), norm_cfg, act_cfg),
            )
            self.add_module(f"stage{i + 1}", stage)
            self.layers.append(f"stage{i + 1}")
            if i + 1 in self.out_indices:
                self.out_channels.append(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class YOLOXPAFPN_ELAN(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_elan_blocks: int = 2,
        use_depthwise: bool = False,
        upsample_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Any = None,
        act_cfg: Any = None,
        **_ignored: Any,
    ) -> None:
        super().__init__()
        if use_depthwise:
            raise ConfigError(
                "model config: 'model.neck.use_depthwise=True' is not supported", hint="set use_depthwise=False"
            )
        norm_cfg = norm_cfg or DEFAULT_NORM
        act_cfg = act_cfg or {"type": "Swish"}
        up = dict(upsample_cfg or {"scale_factor": 2, "mode": "nearest"})
        self.in_channels = list(in_channels)
        self.upsample = nn.Upsample(**up)
        c = self.in_channels
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(len(c) - 1, 0, -1):
            self.reduce_layers.append(ConvModule(c[idx], c[idx - 1], 1, norm_cfg=norm_cfg, act_cfg=act_cfg))
            self.top_down_blocks.append(
                ELAN(c[idx - 1] * 2, c[idx - 1], 3, 0.5, num_elan_blocks, False, norm_cfg, act_cfg)
            )
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(len(c) - 1):
            self.downsamples.append(ConvModule(c[idx], c[idx], 3, 2, 1, norm_cfg, act_cfg))
            self.bottom_up_blocks.append(
                ELAN(c[idx] * 2, c[idx + 1], 3, 0.5, num_elan_blocks, False, norm_cfg, act_cfg)
            )
        self.out_convs = nn.ModuleList(
            [ConvModule(ci, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg) for ci in c]
        )

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        n = len(self.in_channels) - 1
        inner = [inputs[-1]]
        for idx in range(n, 0, -1):
            high = self.reduce_layers[n - idx](inner[0])
            inner[0] = high
            inner.insert(0, self.top_down_blocks[n - idx](torch.cat([self.upsample(high), inputs[idx - 1]], 1)))
        outs = [inner[0]]
        for idx in range(n):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner[idx + 1]], 1)))
        return tuple(conv(o) for conv, o in zip(self.out_convs, outs))


class YOLOXHead(nn.Module):
    """mmdet ``YOLOXHead`` (inference part): decoupled cls / reg+obj branches per level."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 2,
        strides: Sequence[int] = (8, 16, 32),
        use_depthwise: bool = False,
        dcn_on_last_conv: bool = False,
        conv_bias: Any = "auto",
        norm_cfg: Any = None,
        act_cfg: Any = None,
        **_ignored: Any,
    ) -> None:
        super().__init__()
        if use_depthwise or dcn_on_last_conv:
            raise ConfigError(
                "model config: YOLOXHead use_depthwise / dcn_on_last_conv are not supported", hint="set both to False"
            )
        if conv_bias not in ("auto", False):
            raise ConfigError(
                f"model config: 'model.bbox_head.conv_bias' = {conv_bias!r} is not supported",
                hint="use conv_bias='auto'",
            )
        norm_cfg = norm_cfg or DEFAULT_NORM
        act_cfg = act_cfg or {"type": "Swish"}
        self.num_classes = int(num_classes)
        self.strides = tuple(int(s) for s in strides)

        def stack() -> nn.Sequential:
            return nn.Sequential(
                *[
                    ConvModule(in_channels if i == 0 else feat_channels, feat_channels, 3, 1, 1, norm_cfg, act_cfg)
                    for i in range(stacked_convs)
                ]
            )

        self.multi_level_cls_convs = nn.ModuleList([stack() for _ in self.strides])
        self.multi_level_reg_convs = nn.ModuleList([stack() for _ in self.strides])
        self.multi_level_conv_cls = nn.ModuleList([nn.Conv2d(feat_channels, self.num_classes, 1) for _ in self.strides])
        self.multi_level_conv_reg = nn.ModuleList([nn.Conv2d(feat_channels, 4, 1) for _ in self.strides])
        self.multi_level_conv_obj = nn.ModuleList([nn.Conv2d(feat_channels, 1, 1) for _ in self.strides])

    def init_prior_bias(self, prior_prob: float = 0.01) -> None:
        """mmdet's init: cls/obj biases so sigmoid starts at ``prior_prob`` (stable early training)."""
        b = -torch.log(torch.tensor((1 - prior_prob) / prior_prob)).item()
        for conv in list(self.multi_level_conv_cls) + list(self.multi_level_conv_obj):
            nn.init.constant_(cast(torch.Tensor, conv.bias), b)  # 1x1 Conv2d built with its bias

    def forward(
        self, feats: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        cls_scores, bbox_preds, objectnesses = [], [], []
        for i, x in enumerate(feats):
            c = self.multi_level_cls_convs[i](x)
            r = self.multi_level_reg_convs[i](x)
            cls_scores.append(self.multi_level_conv_cls[i](c))
            bbox_preds.append(self.multi_level_conv_reg[i](r))
            objectnesses.append(self.multi_level_conv_obj[i](r))
        return cls_scores, bbox_preds, objectnesses


class YOLOX(nn.Module):
    """mmdet ``YOLOX`` detector: backbone → neck → bbox_head; returns the head's raw maps."""

    def __init__(self, backbone: ELANDarknet, neck: YOLOXPAFPN_ELAN, bbox_head: YOLOXHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = bbox_head

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    @property
    def strides(self) -> tuple[int, ...]:
        return self.bbox_head.strides

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        return self.bbox_head(self.neck(self.backbone(images)))


_BACKBONE_KEYS = {
    "arch",
    "deepen_factor",
    "widen_factor",
    "out_indices",
    "frozen_stages",
    "use_depthwise",
    "aspp_dilations",
    "arch_overwrite",
    "conv_cfg",
    "norm_cfg",
    "act_cfg",
    "norm_eval",
    "init_cfg",
}
_NECK_KEYS = {
    "in_channels",
    "out_channels",
    "num_elan_blocks",
    "use_depthwise",
    "upsample_cfg",
    "conv_cfg",
    "norm_cfg",
    "act_cfg",
    "init_cfg",
}
_HEAD_KEYS = {
    "num_classes",
    "in_channels",
    "feat_channels",
    "stacked_convs",
    "strides",
    "use_depthwise",
    "dcn_on_last_conv",
    "conv_bias",
    "conv_cfg",
    "norm_cfg",
    "act_cfg",
    "loss_cls",
    "loss_bbox",
    "loss_obj",
    "loss_l1",
    "train_cfg",
    "test_cfg",
    "init_cfg",
}


def _section(cfg: Mapping[str, Any], key: str, types: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
    sub = cfg.get(key)
    if not isinstance(sub, Mapping):
        raise ConfigError(
            f"model config: 'model.{key}' is missing", hint=f"add model.{key} = dict(type='{types[0]}', ...)"
        )
    sub = dict(sub)
    kind = str(sub.pop("type", "")).split(".")[-1]
    if kind not in types:
        raise ConfigError(
            f"model config: 'model.{key}.type' = {kind!r} is not supported by the yolox project",
            hint=f"use {types[0]!r}",
        )
    unknown = sorted(set(sub) - allowed)
    if unknown:
        raise ConfigError(
            f"model config: unknown key 'model.{key}.{unknown[0]}'", hint=f"known keys: {', '.join(sorted(allowed))}"
        )
    if sub.get("conv_cfg") not in (None, {"type": "Conv2d"}, {"type": "Conv"}):
        raise ConfigError(
            f"model config: 'model.{key}.conv_cfg' = {sub['conv_cfg']!r} is not supported",
            hint="remove conv_cfg (plain Conv2d)",
        )
    return sub


# AWML (YOLOX_opt_elan) / mmdet registered ``type=`` names → what builds them here. AWML
# configs name these through ``custom_imports`` of AWML modules we never import; any other
# name in the model section (outside training-only keys) is refused in one line
# (core.awml_config).
AWML_TYPES: dict[str, Any] = {
    "YOLOX": YOLOX,
    "DetDataPreprocessor": "preprocess.letterbox (outside the graph)",
    "ELANDarknet": ELANDarknet,
    "YOLOXPAFPN_ELAN": YOLOXPAFPN_ELAN,
    "YOLOXHead": YOLOXHead,
    "ReLU": nn.ReLU,
    "ReLU6": nn.ReLU6,
    "Swish": Swish,
    "SiLU": Swish,
    "LeakyReLU": nn.LeakyReLU,
    "Sigmoid": nn.Sigmoid,
    "BN": nn.BatchNorm2d,
    "BN2d": nn.BatchNorm2d,
    "SyncBN": nn.BatchNorm2d,
    "Conv2d": nn.Conv2d,
    "Conv": nn.Conv2d,
    "nms": "ops / pipeline NMS (outside the graph unless yolox.nms_in_graph)",
}


def build_yolox(model: Mapping[str, Any]) -> YOLOX:
    """Build from an mmdet-style ``model = dict(type='YOLOX', backbone=..., neck=..., bbox_head=...)``."""
    check_model_types(model, AWML_TYPES, "yolox")
    model = copy.deepcopy(dict(model))
    if str(model.get("type", "")).split(".")[-1] != "YOLOX":
        raise ConfigError(
            f"model config: 'model.type' = {model.get('type')!r}; the yolox project builds type='YOLOX'",
            hint="use AWML's YOLOX_opt_elan model config",
        )
    b = _section(model, "backbone", ("ELANDarknet",), _BACKBONE_KEYS)
    n = _section(model, "neck", ("YOLOXPAFPN_ELAN",), _NECK_KEYS)
    h = _section(model, "bbox_head", ("YOLOXHead",), _HEAD_KEYS)
    for k in ("conv_cfg", "frozen_stages", "norm_eval", "init_cfg", "aspp_dilations"):
        b.pop(k, None)
    for k in ("conv_cfg", "init_cfg"):
        n.pop(k, None)
    for k in ("conv_cfg", "loss_cls", "loss_bbox", "loss_obj", "loss_l1", "train_cfg", "test_cfg", "init_cfg"):
        h.pop(k, None)
    backbone = ELANDarknet(**b)
    if list(n.get("in_channels", [])) != backbone.out_channels:
        raise ConfigError(
            f"model config: 'model.neck.in_channels' = {list(n.get('in_channels', []))} but the backbone outputs {backbone.out_channels}",
            hint=f"set neck.in_channels={backbone.out_channels} (backbone channels × widen_factor)",
        )
    neck = YOLOXPAFPN_ELAN(**n)
    if int(h.get("in_channels", -1)) != int(n["out_channels"]):
        raise ConfigError(
            f"model config: 'model.bbox_head.in_channels' = {h.get('in_channels')} but the neck outputs {n['out_channels']}",
            hint=f"set bbox_head.in_channels={n['out_channels']}",
        )
    if int(h.get("num_classes", 0)) < 1:
        raise ConfigError(
            f"model config: 'model.bbox_head.num_classes' = {h.get('num_classes')!r}", hint="set num_classes >= 1"
        )
    head = YOLOXHead(**h)
    if len(head.strides) != len(neck.in_channels):
        raise ConfigError(
            f"model config: {len(head.strides)} head strides for {len(neck.in_channels)} neck levels",
            hint="use strides=(8, 16, 32)",
        )
    return YOLOX(backbone, neck, head).eval()


def replace_relu6(module: nn.Module) -> int:
    """Swap every ``nn.ReLU6`` for ``nn.ReLU`` in place (AWML does this before export); returns the count.

    Why AWML does it: TensorRT fuses Conv+BN+ReLU, and ReLU quantises better than a clipped
    ReLU6. It changes the numbers wherever an activation exceeds 6, so it is a deploy
    config choice (``yolox.replace_relu6``) and both PyTorch and the exported graph use
    the same rewritten module.
    """
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.ReLU6):
            setattr(module, name, nn.ReLU())
            count += 1
        else:
            count += replace_relu6(child)
    return count
