"""CenterPoint pipeline on the fixed-shape pre/post path: no host synchronisation between stages.

Same components, stage names and results as ``CenterPointPipeline``; what changes is how
pre/post-processing reach them (``fixed_ops``):

* ``voxelize``: mmcv hard voxelization into ``max_voxels`` rows plus a device-side count,
  decoration by one Triton kernel on CUDA;
* ``voxel_encoder`` runs on all ``max_voxels`` rows — one fixed input shape, so an engine or
  a CUDA graph never sees a new shape — and the scatter skips the padding rows on the GPU;
* ``scatter`` writes the BEV canvas straight into channels_last memory;
* ``decode_nms`` selects, decodes and suppresses with fixed sizes (greedy NMS in one Triton
  program) and reads the number of boxes once, when the result goes to the host.

Why a subclass and not a flag: the reference pipeline stays the plain, exact-size
transcription the tests compare everything against.
"""

from __future__ import annotations

from typing import Any

import torch

from modeldeploy.core.timing import StageTimer
from modeldeploy.errors import DataError
from modeldeploy.projects.centerpoint import fixed_ops as fx
from modeldeploy.projects.centerpoint.model import HEAD_OUTPUTS, split_task_outputs
from modeldeploy.projects.centerpoint.pipeline import (
    BACKBONE_NECK_HEAD,
    VOXEL_ENCODER,
    CenterPointPipeline,
    check_points,
)


class FastCenterPointPipeline(CenterPointPipeline):
    def preprocess(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "points" not in sample:
            raise DataError("sample has no 'points'", hint="load samples with the centerpoint data loader")
        s = self.settings
        with self.stage("voxelize"):
            pts = check_points(sample["points"], s.in_channels).to(device=self.device, dtype=torch.float32)
            vox = fx.voxelize_fixed(pts, s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
            feats = fx.decorate_fixed(
                pts,
                vox,
                s.voxel_size,
                s.point_cloud_range,
                with_cluster_center=s.with_cluster_center,
                with_voxel_center=s.with_voxel_center,
                voxel_center_dims=s.voxel_center_dims,
                with_distance=s.with_distance,
                legacy=s.legacy,
            )
        return {"input_features": feats, "coors": vox.coors, "num_points": vox.num_points, "voxel_count": vox.count}

    def run_model(self, inputs: dict[str, torch.Tensor], timer: StageTimer) -> dict[str, torch.Tensor]:
        s = self.settings
        ny, nx = s.output_shape
        with timer.stage("voxel_encoder"):
            pillars = self.backends[VOXEL_ENCODER].infer({"input_features": inputs["input_features"]})[
                "pillar_features"
            ]
        with timer.stage("scatter"):
            spatial = fx.scatter_fixed(pillars.to(self.device), inputs["coors"], inputs["voxel_count"], ny, nx)
            if self.device.type != "cuda":  # CPU convolutions take NCHW (and then match the reference bit for bit)
                spatial = spatial.contiguous()
        with timer.stage("backbone_neck_head"):
            out = self.backends[BACKBONE_NECK_HEAD].infer({"spatial_features": spatial})
        return {k: out[k] for k in HEAD_OUTPUTS}

    def postprocess(self, raw: dict[str, torch.Tensor], sample: dict[str, Any]) -> dict[str, Any]:
        with self.stage("decode_nms"):
            per_task = split_task_outputs(
                {k: v.to(self.device) for k, v in raw.items()}, self.settings.task_num_classes
            )
            det = fx.decode_and_nms_fixed(per_task, self.settings).compact().to("cpu")
        return {
            "token": sample.get("token", str(sample.get("sample_idx", ""))),
            "bboxes_3d": det.bboxes.numpy(),
            "scores_3d": det.scores.numpy(),
            "labels_3d": det.labels.numpy(),
        }
