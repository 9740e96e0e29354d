"""Pillar CenterPoint in pure PyTorch, with mmdet3d's module names.

Attribute names and registration order reproduce mmdet3d v1.x (and AWML's
``BackwardPillarFeatureNet``) so that ``model.load_state_dict(awml_ckpt['state_dict'],
strict=True)`` works. The mapping, verified against the mmdet3d / AWML sources
(pillar_encoder.py + voxel_encoders/utils.py PFNLayer, pillar_scatter.py, second.py,
second_fpn.py, centerpoint_head.py; AWML projects/CenterPoint/models/voxel_encoders):

======================================  ==============================================
mmdet3d module                          state-dict keys (shape, AWML base/2.x sizes)
======================================  ==============================================
PillarFeatureNet.pfn_layers[i]          ``pts_voxel_encoder.pfn_layers.{i}.linear.weight``
  (PFNLayer: Linear(bias=False), BN1d)   [units, in] — units = out//2 except the last layer
                                        ``pts_voxel_encoder.pfn_layers.{i}.norm.{weight,bias,
                                        running_mean,running_var,num_batches_tracked}``
                                        e.g. layer0 linear [16, 10], layer1 linear [32, 32]
PointPillarsScatter                     no parameters
SECOND.blocks[i] (nn.Sequential)        ``pts_backbone.blocks.{i}.{3k}.weight`` conv [out,in,3,3]
                                        (no bias), ``.{3k+1}.*`` BatchNorm2d, ``.{3k+2}`` ReLU
SECONDFPN.deblocks[i] (nn.Sequential)   ``pts_neck.deblocks.{i}.0.weight``: ConvTranspose2d
                                        [in,out,s,s] when stride>1, Conv2d [out,in,1/s,1/s]
                                        when stride<1 or ==1 with use_conv_for_no_stride;
                                        ``.1.*`` BatchNorm2d
CenterHead.shared_conv (ConvModule)     ``pts_bbox_head.shared_conv.conv.weight`` [64,384,3,3]
                                        (bias='auto' → no bias), ``.bn.*``
CenterHead.task_heads[t] (SeparateHead) ``pts_bbox_head.task_heads.{t}.{head}.{j}.conv.weight``,
  heads: reg,height,dim,rot,vel,heatmap  ``.{j}.bn.*`` for the num_conv-1 ConvModules, then
  (common_heads order, heatmap last)     ``.{num_conv-1}.weight/.bias`` final Conv2d(bias=True)
======================================  ==============================================

Voxelization (mmdet3d ``Det3DDataPreprocessor``) has no parameters and lives in
``ops.voxelize``; the point decoration of PillarFeatureNet is ``ops.decorate`` so that the
exported ONNX voxel encoder can take pre-decorated features like AWML's
``PillarFeatureNetONNX``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from modeldeploy.core.awml_config import check_model_types
from modeldeploy.core.model_config import to_plain
from modeldeploy.errors import ConfigError
from modeldeploy.projects.centerpoint.ops import decorate, scatter_to_bev
from modeldeploy.projects.centerpoint.settings import CenterPointSettings, parse_settings

HEAD_OUTPUTS = ("heatmap", "reg", "height", "dim", "rot", "vel")


def build_norm(cfg: Mapping[str, Any] | None, channels: int, default: str) -> nn.Module:
    cfg = dict(cfg or {"type": default})
    typ = cfg.pop("type", default)
    eps = float(cfg.pop("eps", 1e-5))
    momentum = float(cfg.pop("momentum", 0.1))
    cfg.pop("requires_grad", None)
    if cfg:
        raise ConfigError(f"model config: norm_cfg keys {sorted(cfg)} are not supported", hint="use type/eps/momentum")
    if typ in ("BN", "BN2d", "SyncBN"):
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    if typ == "BN1d":
        return nn.BatchNorm1d(channels, eps=eps, momentum=momentum)
    raise ConfigError(f"model config: norm type {typ!r} is not supported", hint="use BN, BN1d or BN2d")


class PFNLayer(nn.Module):
    """mmdet3d PFNLayer (mode='max')."""

    def __init__(
        self, in_channels: int, out_channels: int, norm_cfg: Mapping[str, Any] | None, last_layer: bool
    ) -> None:
        super().__init__()
        self.last_vfe = last_layer
        self.units = out_channels if last_layer else out_channels // 2
        self.norm = build_norm(norm_cfg, self.units, "BN1d")
        self.linear = nn.Linear(in_channels, self.units, bias=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.linear(inputs)
        x = self.norm(x.permute(0, 2, 1).contiguous()).permute(0, 2, 1).contiguous()
        x = torch.relu(x)
        x_max = torch.max(x, dim=1, keepdim=True)[0]
        if self.last_vfe:
            return x_max
        return torch.cat([x, x_max.repeat(1, inputs.shape[1], 1)], dim=2)


class PillarFeatureNet(nn.Module):
    """mmdet3d PillarFeatureNet: decoration (``ops.decorate``) + PFN layers."""

    voxel_center_dims = 3

    def __init__(
        self,
        in_channels: int = 4,
        feat_channels: Sequence[int] = (64,),
        with_distance: bool = False,
        with_cluster_center: bool = True,
        with_voxel_center: bool = True,
        voxel_size: Sequence[float] = (0.2, 0.2, 4),
        point_cloud_range: Sequence[float] = (0, -40, -3, 70.4, 40, 1),
        norm_cfg: Mapping[str, Any] | None = None,
        mode: str = "max",
        legacy: bool = True,
        **unused: Any,
    ) -> None:
        super().__init__()
        if mode != "max":
            raise ConfigError(f"model config: pts_voxel_encoder.mode={mode!r} unsupported", hint="use mode='max'")
        unused.pop("type", None)
        unused.pop("frozen_stages", None)
        if unused:
            raise ConfigError(
                f"model config: pts_voxel_encoder keys {sorted(unused)} are not supported", hint="remove them"
            )
        norm_cfg = norm_cfg or {"type": "BN1d", "eps": 1e-3, "momentum": 0.01}
        self.raw_channels = in_channels
        self.with_distance, self.with_cluster_center, self.with_voxel_center = (
            with_distance,
            with_cluster_center,
            with_voxel_center,
        )
        self.legacy = legacy
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.in_channels = (
            in_channels + 3 * with_cluster_center + self.voxel_center_dims * with_voxel_center + with_distance
        )
        chans = [self.in_channels] + list(feat_channels)
        self.pfn_layers = nn.ModuleList(
            PFNLayer(chans[i], chans[i + 1], norm_cfg, last_layer=i >= len(chans) - 2) for i in range(len(chans) - 1)
        )

    def decorate(self, voxels: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor) -> torch.Tensor:
        return decorate(
            voxels,
            num_points,
            coors,
            self.voxel_size,
            self.point_cloud_range,
            with_cluster_center=self.with_cluster_center,
            with_voxel_center=self.with_voxel_center,
            voxel_center_dims=self.voxel_center_dims,
            with_distance=self.with_distance,
            legacy=self.legacy,
        )

    def forward_decorated(self, features: torch.Tensor) -> torch.Tensor:
        """[num_voxels, max_points, C_decorated] → [num_voxels, 1, C_out] (AWML ONNX layout)."""
        for pfn in self.pfn_layers:
            features = pfn(features)
        return features

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor) -> torch.Tensor:
        return self.forward_decorated(self.decorate(voxels, num_points, coors)).squeeze(1)


class BackwardPillarFeatureNet(PillarFeatureNet):
    """AWML's BackwardPillarFeatureNet: voxel-centre offset in x/y only (9 features for xyzi)."""

    voxel_center_dims = 2


class PointPillarsScatter(nn.Module):
    def __init__(self, in_channels: int, output_shape: Sequence[int], **unused: Any) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.ny, self.nx = int(output_shape[0]), int(output_shape[1])

    def forward(self, pillar_features: torch.Tensor, coors: torch.Tensor) -> torch.Tensor:
        return scatter_to_bev(pillar_features, coors, self.ny, self.nx)


class SECOND(nn.Module):
    def __init__(
        self,
        in_channels: int = 128,
        out_channels: Sequence[int] = (128, 128, 256),
        layer_nums: Sequence[int] = (3, 5, 5),
        layer_strides: Sequence[int] = (2, 2, 2),
        norm_cfg: Mapping[str, Any] | None = None,
        conv_cfg: Mapping[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        super().__init__()
        if not (len(out_channels) == len(layer_nums) == len(layer_strides)):
            raise ConfigError(
                "model config: pts_backbone out_channels/layer_nums/layer_strides lengths differ",
                hint="give one entry per stage",
            )
        norm_cfg = norm_cfg or {"type": "BN", "eps": 1e-3, "momentum": 0.01}
        bias = bool((conv_cfg or {}).get("bias", False))
        in_filters = [in_channels, *out_channels[:-1]]
        blocks = []
        for i, n in enumerate(layer_nums):
            layers: list[nn.Module] = [
                nn.Conv2d(in_filters[i], out_channels[i], 3, stride=layer_strides[i], padding=1, bias=bias),
                build_norm(norm_cfg, out_channels[i], "BN"),
                nn.ReLU(inplace=True),
            ]
            for _ in range(n):
                layers += [
                    nn.Conv2d(out_channels[i], out_channels[i], 3, padding=1, bias=bias),
                    build_norm(norm_cfg, out_channels[i], "BN"),
                    nn.ReLU(inplace=True),
                ]
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return tuple(outs)


class SECONDFPN(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int] = (128, 128, 256),
        out_channels: Sequence[int] = (256, 256, 256),
        upsample_strides: Sequence[float] = (1, 2, 4),
        norm_cfg: Mapping[str, Any] | None = None,
        upsample_cfg: Mapping[str, Any] | None = None,
        conv_cfg: Mapping[str, Any] | None = None,
        use_conv_for_no_stride: bool = False,
        **unused: Any,
    ) -> None:
        super().__init__()
        if not (len(in_channels) == len(out_channels) == len(upsample_strides)):
            raise ConfigError(
                "model config: pts_neck in_channels/out_channels/upsample_strides lengths differ",
                hint="give one entry per level",
            )
        norm_cfg = norm_cfg or {"type": "BN", "eps": 1e-3, "momentum": 0.01}
        up_bias = bool((upsample_cfg or {}).get("bias", False))
        conv_bias = bool((conv_cfg or {}).get("bias", False))
        deblocks = []
        for i, out in enumerate(out_channels):
            s = upsample_strides[i]
            if s > 1 or (s == 1 and not use_conv_for_no_stride):
                up: nn.Module = nn.ConvTranspose2d(in_channels[i], out, int(s), stride=int(s), bias=up_bias)
            else:
                k = int(round(1 / s))
                up = nn.Conv2d(in_channels[i], out, k, stride=k, bias=conv_bias)
            deblocks.append(nn.Sequential(up, build_norm(norm_cfg, out, "BN"), nn.ReLU(inplace=True)))
        self.deblocks = nn.ModuleList(deblocks)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        ups = [deblock(feats[i]) for i, deblock in enumerate(self.deblocks)]
        return torch.cat(ups, dim=1) if len(ups) > 1 else ups[0]


class ConvModule(nn.Module):
    """mmcv ConvModule subset: conv (no bias when normed) + ``bn`` + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int, norm_cfg: Mapping[str, Any] | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=False)
        self.bn = build_norm(norm_cfg, cout, "BN2d")
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SeparateHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        heads: Mapping[str, Sequence[int]],
        head_conv: int = 64,
        final_kernel: int = 1,
        init_bias: float = -2.19,
        norm_cfg: Mapping[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        super().__init__()
        self.heads = dict(heads)
        for head, (classes, num_conv) in self.heads.items():
            layers: list[nn.Module] = []
            c_in = in_channels
            for _ in range(num_conv - 1):
                layers.append(ConvModule(c_in, head_conv, final_kernel, final_kernel // 2, norm_cfg))
                c_in = head_conv
            layers.append(nn.Conv2d(head_conv, classes, final_kernel, padding=final_kernel // 2, bias=True))
            seq = nn.Sequential(*layers)
            if head == "heatmap":
                nn.init.constant_(cast(torch.Tensor, seq[-1].bias), init_bias)  # the Conv2d above, bias=True
            self.add_module(head, seq)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {head: getattr(self, head)(x) for head in self.heads}


class CenterHead(nn.Module):
    def __init__(
        self,
        in_channels: int = 128,
        tasks: Sequence[Mapping[str, Any]] = (),
        common_heads: Mapping[str, Sequence[int]] | None = None,
        separate_head: Mapping[str, Any] | None = None,
        share_conv_channel: int = 64,
        num_heatmap_convs: int = 2,
        norm_cfg: Mapping[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        super().__init__()
        common_heads = dict(common_heads or {})
        missing = [h for h in HEAD_OUTPUTS[1:] if h not in common_heads]
        if missing:
            raise ConfigError(
                f"model config: pts_bbox_head.common_heads lacks {missing}",
                hint="common_heads=dict(reg=(2,2), height=(1,2), dim=(3,2), rot=(2,2), vel=(2,2))",
            )
        sep = dict(separate_head or {"type": "SeparateHead", "init_bias": -2.19, "final_kernel": 3})
        sep_type = sep.pop("type", "SeparateHead")
        if sep_type not in ("SeparateHead", "CustomSeparateHead"):
            raise ConfigError(f"model config: separate_head.type={sep_type!r} unsupported", hint="use SeparateHead")
        self.num_classes = [len(t["class_names"]) for t in tasks]
        self.shared_conv = ConvModule(int(in_channels), share_conv_channel, 3, 1, norm_cfg)
        self.task_heads = nn.ModuleList()
        for n in self.num_classes:
            heads = copy.deepcopy(common_heads)
            heads["heatmap"] = (n, num_heatmap_convs)
            self.task_heads.append(SeparateHead(share_conv_channel, heads, **{"norm_cfg": norm_cfg, **sep}))

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        x = self.shared_conv(x)
        return [task(x) for task in self.task_heads]


def merge_task_outputs(per_task: Sequence[Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Fixed ONNX outputs (heatmap, reg, height, dim, rot, vel).

    With one task (AWML's only supported case) these are exactly the head tensors; with
    several tasks each output is the per-task tensors concatenated along channels, task
    order preserved (heatmap: sum(num_classes) channels, reg: 2*T, …). ``split_task_outputs``
    undoes it.
    """
    if len(per_task) == 1:
        return tuple(per_task[0][k] for k in HEAD_OUTPUTS)
    return tuple(torch.cat([t[k] for t in per_task], dim=1) for k in HEAD_OUTPUTS)


def split_task_outputs(
    outputs: Mapping[str, torch.Tensor], task_num_classes: Sequence[int]
) -> list[dict[str, torch.Tensor]]:
    n_tasks = len(task_num_classes)
    per_task: list[dict[str, torch.Tensor]] = [{} for _ in range(n_tasks)]
    for k in HEAD_OUTPUTS:
        t = outputs[k]
        sizes = list(task_num_classes) if k == "heatmap" else [t.shape[1] // n_tasks] * n_tasks
        for i, part in enumerate(torch.split(t, sizes, dim=1)):
            per_task[i][k] = part
    return per_task


class CenterPoint(nn.Module):
    """Container with mmdet3d's top-level names (no voxel layer: it has no parameters)."""

    def __init__(self, settings: CenterPointSettings, model: Mapping[str, Any]) -> None:
        super().__init__()
        self.settings = settings
        enc_cfg = dict(model["pts_voxel_encoder"])
        enc_cls = {"PillarFeatureNet": PillarFeatureNet, "BackwardPillarFeatureNet": BackwardPillarFeatureNet}[
            enc_cfg.pop("type", "PillarFeatureNet")
        ]
        enc_cfg.setdefault("voxel_size", settings.voxel_size)
        enc_cfg.setdefault("point_cloud_range", settings.point_cloud_range)
        self.pts_voxel_encoder = enc_cls(**enc_cfg)
        mid = dict(model["pts_middle_encoder"])
        mid.pop("type", None)
        self.pts_middle_encoder = PointPillarsScatter(**mid)
        bb = dict(model["pts_backbone"])
        if bb.pop("type", "SECOND") != "SECOND":
            raise ConfigError(
                f"model config: pts_backbone.type={model['pts_backbone'].get('type')!r} unsupported", hint="use SECOND"
            )
        self.pts_backbone = SECOND(**bb)
        neck = dict(model["pts_neck"])
        if neck.pop("type", "SECONDFPN") != "SECONDFPN":
            raise ConfigError(
                f"model config: pts_neck.type={model['pts_neck'].get('type')!r} unsupported", hint="use SECONDFPN"
            )
        self.pts_neck = SECONDFPN(**neck)
        head = dict(model["pts_bbox_head"])
        if head.pop("type", "CenterHead") not in ("CenterHead", "CenterHeadONNX"):
            raise ConfigError(
                f"model config: pts_bbox_head.type={model['pts_bbox_head'].get('type')!r} unsupported",
                hint="use CenterHead",
            )
        self.pts_bbox_head = CenterHead(**head)

    def backbone_neck_head(self, spatial_features: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return self.pts_bbox_head(self.pts_neck(self.pts_backbone(spatial_features)))

    def forward(
        self, voxels: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor
    ) -> list[dict[str, torch.Tensor]]:
        """Single-sample forward from hard voxels (coors in (z, y, x) order)."""
        pillars = self.pts_voxel_encoder(voxels, num_points, coors)
        return self.backbone_neck_head(self.pts_middle_encoder(pillars, coors))


class VoxelEncoderExport(nn.Module):
    """ONNX component ``pts_voxel_encoder``: input_features → pillar_features [N, 1, C]."""

    def __init__(self, encoder: PillarFeatureNet) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_decorated(input_features)


class BackboneNeckHeadExport(nn.Module):
    """ONNX component ``pts_backbone_neck_head``: spatial_features → HEAD_OUTPUTS."""

    def __init__(self, model: CenterPoint) -> None:
        super().__init__()
        self.pts_backbone, self.pts_neck, self.pts_bbox_head = model.pts_backbone, model.pts_neck, model.pts_bbox_head

    def forward(self, spatial_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return merge_task_outputs(self.pts_bbox_head(self.pts_neck(self.pts_backbone(spatial_features))))


# AWML / mmdet3d registered ``type=`` names → what builds them here. AWML configs name these
# through ``custom_imports`` of AWML modules we never import; any other name in the model
# section (outside training-only keys) is refused in one line (core.awml_config).
AWML_TYPES: dict[str, Any] = {
    "CenterPoint": CenterPoint,
    "CenterPointONNX": CenterPoint,
    "Det3DDataPreprocessor": "pipeline.preprocess_points (hard voxelization, outside the graph)",
    "PillarFeatureNet": PillarFeatureNet,
    "BackwardPillarFeatureNet": BackwardPillarFeatureNet,
    "PointPillarsScatter": PointPillarsScatter,
    "SECOND": SECOND,
    "SECONDFPN": SECONDFPN,
    "CenterHead": CenterHead,
    "CenterHeadONNX": CenterHead,
    "SeparateHead": SeparateHead,
    "CustomSeparateHead": SeparateHead,
    "CenterPointBBoxCoder": "boxes.decode_and_nms (outside the graph)",
    "BN": nn.BatchNorm2d,
    "BN2d": nn.BatchNorm2d,
    "SyncBN": nn.BatchNorm2d,
    "BN1d": nn.BatchNorm1d,
    "Conv2d": nn.Conv2d,
    "deconv": nn.ConvTranspose2d,
}


def build_centerpoint(model_cfg: Any, settings: CenterPointSettings | None = None) -> CenterPoint:
    """``settings``: ``parse_settings(model_cfg)`` when the caller has it already (the project)."""
    model_dict = model_cfg["model"] if isinstance(model_cfg, Mapping) else model_cfg.model
    check_model_types(model_dict, AWML_TYPES, "centerpoint")
    settings = settings if settings is not None else parse_settings(model_cfg)
    return CenterPoint(settings, to_plain(model_dict)).eval()
