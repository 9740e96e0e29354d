"""The ``centerpoint`` project: pillar CenterPoint as two export components.

``pts_voxel_encoder``: ``input_features`` [num_voxels, max_points, C_decorated] (dynamic
num_voxels) → ``pillar_features`` [num_voxels, 1, C] — AWML's ONNX layout; decoration
(cluster/pillar-centre offsets) is done in the pipeline's preprocess, so the graph is only
Linear + BatchNorm + ReLU + ReduceMax.
``pts_backbone_neck_head``: ``spatial_features`` [1, C, ny, nx] → heatmap, reg, height,
dim, rot, vel (AWML's fixed names; per-task outputs concatenated along channels when the
config has several tasks, see ``model.merge_task_outputs``).
Voxelization, scatter, decoding and NMS stay outside the graphs, in torch on the
pipeline's device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.model_config import model_cfg_dict
from modeldeploy.core.model_io import ALL_KEYS, refuse_unsupported
from modeldeploy.core.project import BaseProject, register_project
from modeldeploy.errors import ConfigError
from modeldeploy.projects.centerpoint.data_loader import CenterPointDataLoader, bundled_sample_of
from modeldeploy.projects.centerpoint.deploy_section import CenterPointDeploySection
from modeldeploy.projects.centerpoint.evaluator import CenterPointEvaluator
from modeldeploy.projects.centerpoint.model import (
    HEAD_OUTPUTS,
    BackboneNeckHeadExport,
    CenterPoint,
    VoxelEncoderExport,
    build_centerpoint,
)
from modeldeploy.projects.centerpoint.ops import scatter_to_bev
from modeldeploy.projects.centerpoint.pipeline import (
    BACKBONE_NECK_HEAD,
    VOXEL_ENCODER,
    CenterPointPipeline,
    preprocess_points,
)
from modeldeploy.projects.centerpoint.settings import CenterPointSettings, parse_settings

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig

log = logging.getLogger(__name__)


def log_point_loading(s: CenterPointSettings) -> None:
    """Say once per run which point features the model gets (and when they are AWML's defaults
    rather than the config's own pipeline), because a wrong layout fails silently."""
    if s.point_loading.source.startswith("AWML"):
        log.warning("centerpoint: %s", s.point_loading.describe())
    else:
        log.info("centerpoint: %s", s.point_loading.describe())


def export_components_for(model: CenterPoint, sample: dict[str, Any]) -> list[ExportComponent]:
    """Both components with example inputs from a real (preprocessed) sample."""
    s: CenterPointSettings = model.settings
    with torch.inference_mode():
        pre = preprocess_points(sample["points"], s, torch.device("cpu"))
    feats = pre["input_features"]
    if feats.shape[0] == 0:
        from modeldeploy.errors import DataError

        raise DataError(
            "the export sample has no point inside point_cloud_range", hint="choose another runtime_io.sample_idx"
        )
    enc = VoxelEncoderExport(model.pts_voxel_encoder).eval()
    head = BackboneNeckHeadExport(model).eval()
    with torch.inference_mode():
        pillars = enc(feats)
        spatial = scatter_to_bev(pillars, pre["coors"], *s.output_shape)
    return [
        ExportComponent(
            name=VOXEL_ENCODER,
            module=enc,
            input_names=["input_features"],
            output_names=["pillar_features"],
            sample_inputs={"input_features": feats.clone()},
            dynamic_axes={"input_features": {0: "num_voxels"}, "pillar_features": {0: "num_voxels"}},
        ),
        ExportComponent(
            name=BACKBONE_NECK_HEAD,
            module=head,
            input_names=["spatial_features"],
            output_names=list(HEAD_OUTPUTS),
            sample_inputs={"spatial_features": spatial.clone()},
        ),
    ]


def refuse_model_io(cfg: BaseDeploymentConfig) -> None:
    """The two graphs' names and shapes are the project's (AWML's layout), so any model_io
    setting would be ignored: refuse it instead (one ConfigError line)."""
    refuse_unsupported(
        cfg,
        ALL_KEYS,
        "centerpoint",
        f"its graphs' inputs and outputs are fixed by the project: {VOXEL_ENCODER}(input_features), "
        f"{BACKBONE_NECK_HEAD}(spatial_features)",
        "remove model_io from the deploy config; shape the engines with backend_config.model_inputs",
    )


@dataclass(frozen=True)
class CenterPointProjectSettings:
    """What the project reads from a model config, parsed once (``CenterPointProject.parse_settings``)."""

    model: CenterPointSettings
    bundled_sample: tuple[int, int] | None  # centerpoint_data.bundled_sample (frames, seed); None: not opted in


@register_project
class CenterPointProject(BaseProject):
    name = "centerpoint"
    task_type = "detection3d"
    deploy_section = CenterPointDeploySection

    def parse_settings(self, model_cfg: Any) -> CenterPointProjectSettings:
        return CenterPointProjectSettings(parse_settings(model_cfg), bundled_sample_of(model_cfg_dict(model_cfg)))

    def check_config(self, cfg: BaseDeploymentConfig) -> None:
        refuse_model_io(cfg)  # at check-config / run start, before any work

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        return build_centerpoint(model_cfg, self.settings(model_cfg).model)

    def build_data_loader(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CenterPointDataLoader:
        s = self.settings(model_cfg).model
        log_point_loading(s)
        return CenterPointDataLoader.from_runtime_io(
            cfg.runtime_io.info_file,
            cfg.runtime_io.data_root,
            s.class_names,
            s.point_loading,
            self.settings(model_cfg).bundled_sample,
        )

    def has_data(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> bool:
        """A configured dataset, or the bundled synthetic sample for a model config that opts in
        (the tiny demo does; AWML-size configs do not — synthetic mAP would mean nothing there)."""
        rio = cfg.runtime_io
        return bool(rio.info_file) or bool(rio.data_root) or self.settings(model_cfg).bundled_sample is not None

    def example_sample(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> dict[str, Any]:
        """An export example without any dataset: one synthetic scene (with sweeps) turned into
        the model's point features by the model config's own loading pipeline, in memory —
        nothing is written. Same structure as ``CenterPointDataLoader.load_sample``."""
        from modeldeploy.projects.centerpoint.synthetic import (
            BUNDLED_SEED,
            CLASSES,
            NUM_SWEEPS,
            frame_points,
            frame_with_sweeps,
        )

        s = self.settings(model_cfg).model
        log_point_loading(s)
        frame = frame_with_sweeps(BUNDLED_SEED, 0, NUM_SWEEPS)
        points = frame_points(frame, s.point_loading)
        keep = [
            (inst, s.class_names.index(CLASSES[inst["bbox_label_3d"]]))
            for inst in frame["entry"]["instances"]
            if CLASSES[inst["bbox_label_3d"]] in s.class_names
        ]
        return {
            "points": torch.from_numpy(points),
            "token": frame["entry"]["token"],
            "sample_idx": 0,
            "lidar_path": "",
            "gt_bboxes_3d": np.asarray([inst["bbox_3d"] for inst, _ in keep], dtype=np.float32).reshape(-1, 7),
            "gt_labels_3d": np.asarray([label for _, label in keep], dtype=np.int64),
            "gt_velocity": np.asarray([inst["velocity"] for inst, _ in keep], dtype=np.float32).reshape(-1, 2),
        }

    def build_evaluator(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CenterPointEvaluator:
        return CenterPointEvaluator(self.settings(model_cfg).model.class_names)

    def export_components(
        self, model: torch.nn.Module, cfg: BaseDeploymentConfig, model_cfg: Any, sample: dict[str, Any]
    ) -> list[ExportComponent]:
        if not isinstance(model, CenterPoint):
            raise ConfigError(
                f"centerpoint export needs the project's CenterPoint model, got {type(model).__name__}",
                hint="use build_model / load_model_fn returning CenterPoint",
            )
        refuse_model_io(cfg)
        return export_components_for(model, sample)

    def build_pipeline(
        self, backends: dict[str, BaseBackend], cfg: BaseDeploymentConfig, model_cfg: Any, device: torch.device
    ) -> CenterPointPipeline:
        if self.section(cfg).fast_pipeline:  # centerpoint.fast_pipeline (deploy_section.py)
            from modeldeploy.projects.centerpoint.fast_pipeline import FastCenterPointPipeline

            return FastCenterPointPipeline(backends, self.settings(model_cfg).model, device)
        return CenterPointPipeline(backends, self.settings(model_cfg).model, device)

    def compare_predictions(self, reference: Any, test: Any, model_cfg: Any) -> dict[str, Any]:
        """Final boxes after decode + NMS, matched per class (box_compare): raw heads can
        agree within tolerance while a score at the threshold flips a detection."""
        from modeldeploy.projects.centerpoint.box_compare import compare_box_sets

        return compare_box_sets(reference, test, score_threshold=self.settings(model_cfg).model.score_threshold)
