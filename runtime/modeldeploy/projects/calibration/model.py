"""mmpretrain ``ImageClassifier`` (ResNet + GlobalAveragePooling + LinearClsHead) in pure PyTorch.

Why a re-implementation: the runtime image carries no mmcv/mmpretrain, yet AWML's
CalibrationStatusClassification checkpoints must load with ``strict=True``. So the module
tree reproduces mmpretrain's attribute names exactly; only the names matter for loading.

State-dict naming, verified against open-mmlab/mmpretrain ``mmpretrain/models/backbones/resnet.py``
(``ResNet``, ``ResLayer``, ``BasicBlock``) and ``models/classifiers/image.py`` /
``models/heads/linear_head.py``:

===============================  ==================================================
mmpretrain source                 state-dict key
===============================  ==================================================
ResNet._make_stem_layer           ``backbone.conv1.weight`` (7x7, stride 2, no bias)
  build_norm_layer(postfix=1)     ``backbone.bn1.{weight,bias,running_mean,running_var,num_batches_tracked}``
  (``norm1_name`` is ``'bn1'`` for type='BN'; ``deep_stem=False`` so no ``stem.*``)
ResNet.add_module(f'layer{i+1}')  ``backbone.layer{1..4}``; ``ResLayer`` is an ``nn.Sequential`` → ``.0``, ``.1``
BasicBlock                        ``.conv1.weight``, ``.bn1.*``, ``.conv2.weight``, ``.bn2.*``
ResLayer downsample               ``.downsample.0.weight`` (1x1 conv), ``.downsample.1.*`` (BN) — only when
                                  stride != 1 or in != out (layer2..4 for the default widths)
GlobalAveragePooling              no parameters
LinearClsHead                     ``head.fc.weight``, ``head.fc.bias``
ClsDataPreprocessor mean/std      non-persistent buffers: not in the state dict
===============================  ==================================================

Depth 18 with the default widths gives 122 tensors (62 parameters + 60 BN buffers).
``forward`` returns the head's logits, as mmpretrain's ``mode='tensor'`` does and as AWML
exports them (softmax happens in postprocess).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from modeldeploy.core.awml_config import check_model_types
from modeldeploy.errors import ConfigError

ARCH_SETTINGS: dict[int, tuple[int, ...]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # BasicBlock depths only


class BasicBlock(nn.Module):
    """mmpretrain BasicBlock (expansion 1): conv3x3-bn-relu-conv3x3-bn + identity, relu."""

    expansion = 1

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """mmpretrain ``ResNet`` restricted to BasicBlock depths (18, 34), ``style`` pytorch, plain stem."""

    def __init__(
        self,
        depth: int = 18,
        in_channels: int = 3,
        stem_channels: int = 64,
        base_channels: int = 64,
        num_stages: int = 4,
        strides: Sequence[int] = (1, 2, 2, 2),
        out_indices: Sequence[int] = (3,),
    ) -> None:
        super().__init__()
        self.out_indices = tuple(out_indices)
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res_layers: list[str] = []
        cin, cout = stem_channels, base_channels
        for i, num_blocks in enumerate(ARCH_SETTINGS[depth][:num_stages]):
            stride = strides[i]
            downsample = None
            if stride != 1 or cin != cout:
                downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            blocks = [BasicBlock(cin, cout, stride, downsample)] + [
                BasicBlock(cout, cout) for _ in range(1, num_blocks)
            ]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.res_layers.append(f"layer{i + 1}")
            cin, cout = cout, cout * 2
        self.feat_dim = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class GlobalAveragePooling(nn.Module):
    """mmpretrain GlobalAveragePooling (dim=2): (B,C,H,W) per level → (B,C)."""

    def __init__(self) -> None:
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(torch.flatten(self.gap(x), 1) for x in inputs)


class LinearClsHead(nn.Module):
    """mmpretrain LinearClsHead: ``fc`` on the last feature level; returns logits."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.fc(feats[-1])


class ImageClassifier(nn.Module):
    """backbone → neck → head; ``forward(input) -> logits`` (B, num_classes)."""

    def __init__(self, backbone: ResNet, neck: GlobalAveragePooling, head: LinearClsHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    @property
    def in_channels(self) -> int:
        return self.backbone.conv1.in_channels

    @property
    def num_classes(self) -> int:
        return self.head.fc.out_features

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(self.backbone(input)))

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """mmpretrain's defaults: Kaiming convs, BN=1, zero-init residual bn2, head N(0, 0.01)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
        nn.init.normal_(self.head.fc.weight, 0.0, 0.01, generator=generator)
        nn.init.zeros_(self.head.fc.bias)


# ---------------------------------------------------------------- config → model
# Keys mmpretrain accepts that do not change the inference graph or the state-dict names.
_BACKBONE_INERT = {
    "frozen_stages",
    "norm_eval",
    "with_cp",
    "zero_init_residual",
    "init_cfg",
    "drop_path_rate",
    "conv_cfg",
    "expansion",
}
_BACKBONE_KEYS = {
    "type",
    "depth",
    "in_channels",
    "stem_channels",
    "base_channels",
    "num_stages",
    "strides",
    "dilations",
    "out_indices",
    "style",
    "deep_stem",
    "avg_down",
    "norm_cfg",
} | _BACKBONE_INERT
_HEAD_KEYS = {"type", "num_classes", "in_channels", "loss", "topk", "init_cfg", "cal_acc"}
_MODEL_KEYS = {"type", "backbone", "neck", "head", "data_preprocessor", "init_cfg", "train_cfg", "pretrained"}


def _type_name(value: Any) -> str:
    """``'mmpretrain.ResNet'`` and ``'ResNet'`` name the same class (AWML writes the scoped form)."""
    return str(value).rsplit(".", 1)[-1]


def _require(cond: bool, key: str, value: Any, problem: str, fix: str) -> None:
    if not cond:
        raise ConfigError(f"model config: '{key}' = {value!r}: {problem}", hint=fix)


def _mapping(value: Any, key: str, problem: str, fix: str) -> Mapping[str, Any]:
    """``_require(isinstance(value, Mapping), ...)`` that hands back the value typed as the mapping it was checked to be."""
    _require(isinstance(value, Mapping), key, value, problem, fix)
    return cast(Mapping[str, Any], value)


def _check_keys(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    _require(
        not unknown,
        f"{where}.{unknown[0] if unknown else ''}",
        section.get(unknown[0]) if unknown else None,
        "unsupported key for this project's pure-PyTorch model",
        f"remove it; supported keys: {', '.join(sorted(allowed))}",
    )


# AWML (mmpretrain) registered ``type=`` names → what builds them here. Any other name in
# the model section (outside training-only keys: losses, init_cfg, …) is refused in one
# line (core.awml_config).
AWML_TYPES: dict[str, Any] = {
    "ImageClassifier": ImageClassifier,
    "ResNet": ResNet,
    "GlobalAveragePooling": GlobalAveragePooling,
    "LinearClsHead": LinearClsHead,
    "BN": nn.BatchNorm2d,
}


def build_classifier(model: Mapping[str, Any]) -> ImageClassifier:
    """Build from an mmengine ``model = dict(type='ImageClassifier', ...)``; ConfigError on anything unsupported."""
    _require(
        isinstance(model, Mapping), "model", model, "must be a dict", "write model = dict(type='ImageClassifier', ...)"
    )
    check_model_types(model, AWML_TYPES, "calibration")
    _check_keys(model, _MODEL_KEYS, "model")
    _require(
        _type_name(model.get("type")) == "ImageClassifier",
        "model.type",
        model.get("type"),
        "only ImageClassifier is supported",
        "use type='ImageClassifier'",
    )

    bb = _mapping(
        model.get("backbone"),
        "model.backbone",
        "missing or not a dict",
        "add backbone=dict(type='ResNet', depth=18, in_channels=5)",
    )
    _check_keys(bb, _BACKBONE_KEYS, "model.backbone")
    _require(
        _type_name(bb.get("type")) == "ResNet",
        "model.backbone.type",
        bb.get("type"),
        "only mmpretrain's ResNet is implemented",
        "use type='ResNet'",
    )
    depth = bb.get("depth", 18)
    _require(
        depth in ARCH_SETTINGS,
        "model.backbone.depth",
        depth,
        "only BasicBlock depths are implemented",
        f"use one of {sorted(ARCH_SETTINGS)}",
    )
    ints = {
        k: bb.get(k, d)
        for k, d in (("in_channels", 3), ("stem_channels", 64), ("base_channels", 64), ("num_stages", 4))
    }
    for k, v in ints.items():
        _require(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1,
            f"model.backbone.{k}",
            v,
            "must be a positive int",
            "fix the value",
        )
    num_stages = ints["num_stages"]
    _require(num_stages <= 4, "model.backbone.num_stages", num_stages, "ResNet has at most 4 stages", "use 1..4")
    strides = tuple(bb.get("strides", (1, 2, 2, 2)))
    _require(
        len(strides) == num_stages and all(s in (1, 2) for s in strides),
        "model.backbone.strides",
        strides,
        "need one stride (1 or 2) per stage",
        "e.g. strides=(1, 2, 2, 2)",
    )
    dilations = tuple(bb.get("dilations", (1,) * num_stages))
    _require(
        dilations == (1,) * num_stages,
        "model.backbone.dilations",
        dilations,
        "dilated stages are not implemented",
        "remove dilations",
    )
    out_indices = tuple(bb.get("out_indices", (3,)))
    _require(
        out_indices == (num_stages - 1,),
        "model.backbone.out_indices",
        out_indices,
        "GlobalAveragePooling + LinearClsHead use the last stage only",
        f"use out_indices=({num_stages - 1},)",
    )
    _require(
        bb.get("style", "pytorch") in ("pytorch", "caffe"),
        "model.backbone.style",
        bb.get("style"),
        "unknown style",
        "use 'pytorch'",
    )
    _require(
        not bb.get("deep_stem", False),
        "model.backbone.deep_stem",
        bb.get("deep_stem"),
        "ResNetV1c/V1d stems are not implemented",
        "remove deep_stem",
    )
    _require(
        not bb.get("avg_down", False),
        "model.backbone.avg_down",
        bb.get("avg_down"),
        "avg_down is not implemented",
        "remove avg_down",
    )
    norm = bb.get("norm_cfg", {"type": "BN"})
    _require(
        isinstance(norm, Mapping) and norm.get("type") == "BN" and set(norm) <= {"type", "requires_grad"},
        "model.backbone.norm_cfg",
        norm,
        "only BatchNorm ('BN') is implemented",
        "use norm_cfg=dict(type='BN', requires_grad=True)",
    )
    _require(
        bb.get("conv_cfg") is None,
        "model.backbone.conv_cfg",
        bb.get("conv_cfg"),
        "custom conv layers are not implemented",
        "remove conv_cfg",
    )
    _require(
        bb.get("expansion") in (None, 1),
        "model.backbone.expansion",
        bb.get("expansion"),
        "BasicBlock has expansion 1",
        "remove expansion",
    )

    neck = model.get("neck")
    _require(
        isinstance(neck, Mapping)
        and _type_name(neck.get("type")) == "GlobalAveragePooling"
        and set(neck) <= {"type", "dim"}
        and neck.get("dim", 2) == 2,
        "model.neck",
        neck,
        "only GlobalAveragePooling (dim=2) is implemented",
        "use neck=dict(type='GlobalAveragePooling')",
    )

    head = _mapping(
        model.get("head"),
        "model.head",
        "missing or not a dict",
        "add head=dict(type='LinearClsHead', num_classes=2, in_channels=512)",
    )
    _check_keys(head, _HEAD_KEYS, "model.head")
    _require(
        _type_name(head.get("type")) == "LinearClsHead",
        "model.head.type",
        head.get("type"),
        "only LinearClsHead is implemented",
        "use type='LinearClsHead'",
    )
    num_classes: Any  # user config values: checked by the _require calls below, not by their type
    head_in: Any
    num_classes, head_in = head.get("num_classes"), head.get("in_channels")
    _require(
        isinstance(num_classes, int) and num_classes >= 2,
        "model.head.num_classes",
        num_classes,
        "must be an int >= 2",
        "use num_classes=2",
    )

    backbone = ResNet(
        depth, ints["in_channels"], ints["stem_channels"], ints["base_channels"], num_stages, strides, out_indices
    )
    _require(
        head_in == backbone.feat_dim,
        "model.head.in_channels",
        head_in,
        f"the backbone's last stage has {backbone.feat_dim} channels",
        f"set in_channels={backbone.feat_dim}",
    )
    return ImageClassifier(backbone, GlobalAveragePooling(), LinearClsHead(num_classes, head_in))
