"""CenterPoint pipeline: voxelize → pts_voxel_encoder → scatter → pts_backbone_neck_head → decode/NMS.

The same class runs every backend (one per export component). Stages timed with the
framework's StageTimer, names fixed for dashboards: ``voxelize`` (inside ``preprocess``:
voxelization + point decoration), ``voxel_encoder``, ``scatter``, ``backbone_neck_head``,
``decode_nms`` (inside ``postprocess``), plus the framework's ``preprocess``,
``postprocess`` and end-to-end total.

``run_model`` returns the head outputs by name (heatmap, reg, height, dim, rot, vel), so
verification compares raw outputs; ``postprocess`` returns the decoded boxes.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.pipeline import BasePipeline
from modeldeploy.core.timing import StageTimer
from modeldeploy.errors import DataError
from modeldeploy.projects.centerpoint.boxes import decode_and_nms
from modeldeploy.projects.centerpoint.model import HEAD_OUTPUTS, split_task_outputs
from modeldeploy.projects.centerpoint.ops import decorate, scatter_to_bev, voxelize
from modeldeploy.projects.centerpoint.settings import CenterPointSettings

VOXEL_ENCODER = "pts_voxel_encoder"
BACKBONE_NECK_HEAD = "pts_backbone_neck_head"
STAGES = ("voxelize", "voxel_encoder", "scatter", "backbone_neck_head", "decode_nms")


def check_points(points: Any, in_channels: int) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        raise DataError(
            f"sample 'points' is a {type(points).__name__}, not a torch.Tensor",
            hint="load samples with the centerpoint data loader",
        )
    if points.ndim != 2 or points.shape[1] != in_channels:
        raise DataError(
            f"points must be an N×{in_channels} tensor (the features the model config's test pipeline selects), got shape {tuple(points.shape)}",
            hint="load samples with the centerpoint data loader; check use_dim in the model config's LoadPointsFromFile/LoadPointsFromMultiSweeps",
        )
    if not points.is_floating_point():
        raise DataError(f"points have dtype {points.dtype}, expected float", hint="store .bin points as float32")
    return points


def preprocess_points(points: torch.Tensor, s: CenterPointSettings, device: torch.device) -> dict[str, torch.Tensor]:
    """Voxelize + decorate on ``device`` → the voxel encoder's ``input_features`` and ``coors``."""
    pts = check_points(points, s.in_channels).to(device=device, dtype=torch.float32)
    vox = voxelize(pts, s.voxel_size, s.point_cloud_range, s.max_num_points, s.max_voxels)
    feats = decorate(
        vox.voxels,
        vox.num_points,
        vox.coors,
        s.voxel_size,
        s.point_cloud_range,
        with_cluster_center=s.with_cluster_center,
        with_voxel_center=s.with_voxel_center,
        voxel_center_dims=s.voxel_center_dims,
        with_distance=s.with_distance,
        legacy=s.legacy,
    )
    return {"input_features": feats, "coors": vox.coors, "num_points": vox.num_points}


class CenterPointPipeline(BasePipeline):
    def __init__(
        self, backends: dict[str, BaseBackend], settings: CenterPointSettings, device: str | torch.device = "cpu"
    ) -> None:
        missing = [n for n in (VOXEL_ENCODER, BACKBONE_NECK_HEAD) if n not in backends]
        if missing:
            raise ValueError(f"CenterPointPipeline needs backends for {missing}")
        super().__init__(backends, device)
        self.settings = settings

    def preprocess(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "points" not in sample:
            raise DataError("sample has no 'points'", hint="load samples with the centerpoint data loader")
        with self.stage("voxelize"):
            return preprocess_points(sample["points"], self.settings, self.device)

    def run_model(self, inputs: dict[str, torch.Tensor], timer: StageTimer) -> dict[str, torch.Tensor]:
        spatial = self._spatial_features(inputs, timer)
        with timer.stage("backbone_neck_head"):
            out = self.backends[BACKBONE_NECK_HEAD].infer({"spatial_features": spatial})
        return {k: out[k] for k in HEAD_OUTPUTS}

    def _spatial_features(self, inputs: dict[str, torch.Tensor], timer: StageTimer | None = None) -> torch.Tensor:
        """Voxel encoder, then scatter of the pillar features to the BEV canvas the second graph takes."""
        s = self.settings
        feats, coors = inputs["input_features"], inputs["coors"].to(self.device)
        ny, nx = s.output_shape
        with timer.stage("voxel_encoder") if timer is not None else nullcontext():
            if feats.shape[0] > 0:
                pillars = self.backends[VOXEL_ENCODER].infer({"input_features": feats})["pillar_features"]
            else:  # no point inside the range: an empty canvas, not a zero-sized graph input
                pillars = torch.zeros((0, 1, s.pillar_channels), device=self.device)
        with timer.stage("scatter") if timer is not None else nullcontext():
            return scatter_to_bev(pillars.to(self.device), coors, ny, nx)

    def component_inputs(self, name: str, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Why an override: the second graph does not take the pipeline's inputs — INT8
        calibration must feed it the BEV canvas the first graph's output scatters to."""
        inputs = self.model_inputs(sample)
        if name == VOXEL_ENCODER:
            return {"input_features": inputs["input_features"]}
        if name == BACKBONE_NECK_HEAD:
            with torch.inference_mode():
                return {"spatial_features": self._spatial_features(inputs)}
        return super().component_inputs(name, sample)

    def postprocess(self, raw: dict[str, torch.Tensor], sample: dict[str, Any]) -> dict[str, Any]:
        with self.stage("decode_nms"):
            per_task = split_task_outputs(
                {k: v.to(self.device) for k, v in raw.items()}, self.settings.task_num_classes
            )
            det = decode_and_nms(per_task, self.settings).to("cpu")
        return {
            "token": sample.get("token", str(sample.get("sample_idx", ""))),
            "bboxes_3d": det.bboxes.numpy(),
            "scores_3d": det.scores.numpy(),
            "labels_3d": det.labels.numpy(),
        }
