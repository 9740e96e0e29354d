"""The ``yolox`` project: YOLOX_opt_elan plugged into the DeploymentRunner."""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.model_config import model_cfg_dict
from modeldeploy.core.model_io import batch_and_axes, check_input_shape, refuse_unsupported
from modeldeploy.core.project import BaseProject, register_project
from modeldeploy.errors import ConfigError
from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader
from modeldeploy.projects.yolox.evaluator import CocoDetectionEvaluator
from modeldeploy.projects.yolox.export import YOLOXOutput, YOLOXWithNMS
from modeldeploy.projects.yolox.model import YOLOX, build_yolox, replace_relu6
from modeldeploy.projects.yolox.pipeline import MAIN_COMPONENT, NMS_COMPONENT, YOLOXPipeline
from modeldeploy.projects.yolox.preprocess import letterbox
from modeldeploy.projects.yolox.settings import (
    YOLOXDeploySection,
    YOLOXSettings,
    parse_settings,
    postprocess_settings,
)
from modeldeploy.projects.yolox.synthetic import example_image_sample

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig

log = logging.getLogger(__name__)


def _unwrap(module: torch.nn.Module) -> YOLOX:
    return module if isinstance(module, YOLOX) else module.model  # type: ignore[return-value]


@register_project
class YOLOXProject(BaseProject):
    name = "yolox"
    task_type = "detection2d"
    deploy_section = YOLOXDeploySection

    def parse_settings(self, model_cfg: Any) -> YOLOXSettings:
        """``yolox_data`` / test pipeline, class names, normalisation and ``test_cfg``."""
        return parse_settings(model_cfg)

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        cfg = model_cfg_dict(model_cfg)
        if "model" not in cfg:
            raise ConfigError(
                "model config has no 'model' section",
                hint="add model = dict(type='YOLOX', backbone=..., neck=..., bbox_head=...)",
            )
        self.settings(model_cfg)  # fail on a bad data section before any work
        return build_yolox(cfg["model"])

    def build_data_loader(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CocoDetectionDataLoader:
        rio = cfg.runtime_io
        s = self.settings(model_cfg)
        settings = s.data.model_copy(update={"class_names": s.class_names})
        loader = CocoDetectionDataLoader.from_runtime_io(rio.info_file, rio.data_root, settings)
        num_classes = s.num_classes
        if num_classes and len(loader.class_names) != num_classes:
            raise ConfigError(
                f"the annotation file {loader.ann_file} has {len(loader.class_names)} categories {list(loader.class_names)} but the model predicts {num_classes} classes",
                hint="evaluate on data with the model's classes, or use the matching model config",
            )
        return loader

    def build_evaluator(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CocoDetectionEvaluator:
        loader = self.build_data_loader(cfg, model_cfg)
        return CocoDetectionEvaluator(
            loader.ann_file, loader.class_names, loader.coco.category_ids, gt_doc=loader.coco.gt_doc
        )

    def has_data(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> bool:
        """A configured dataset, or the bundled sample for a model config that opts into it."""
        rio = cfg.runtime_io
        # the bundled synthetic set is data only for a model trained on it: the config opts in
        # by naming yolox_data.bundled_sample
        named = "bundled_sample" in self.settings(model_cfg).data.model_fields_set
        return bool(rio.info_file) or bool(rio.data_root) or named  # '' = unset, as in AWML

    def example_sample(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> dict[str, Any]:
        """One deterministic synthetic image (the bundled set's renderer) at the model's
        ``img_scale``: content with edges and objects rather than a constant, so the ReLU6
        rewrite drift the export logs is measured on something image-like."""
        return example_image_sample(self.settings(model_cfg).data)

    def prepare_for_export(self, model: torch.nn.Module, cfg: BaseDeploymentConfig) -> torch.nn.Module:
        self._trained_model = model
        if not self.section(cfg).replace_relu6:
            return model
        export_model = copy.deepcopy(model)
        n = replace_relu6(export_model)
        if n:
            log.info("replaced %d ReLU6 with ReLU for export (yolox.replace_relu6=True, as AWML)", n)
        return export_model

    def _report_rewrite_drift(self, export_net: YOLOX, x: torch.Tensor) -> None:
        """Verification compares backends of the *rewritten* network, so it cannot see what the
        ReLU6→ReLU rewrite itself changed; measure that once on the export sample and say it."""
        trained = getattr(self, "_trained_model", None)
        if trained is None or trained is export_net:
            return
        with torch.no_grad():
            a = YOLOXOutput(_unwrap(trained))(x[:1])
            b = YOLOXOutput(export_net)(x[:1])
        drift = float((a[..., 4:] - b[..., 4:]).abs().max())
        level = logging.WARNING if drift > 0.05 else logging.INFO
        log.log(
            level,
            "ReLU6→ReLU rewrite changes the export sample's scores by up to %.4f (max |Δ| of sigmoid obj/cls)%s",
            drift,
            "; if accuracy drops, set yolox.replace_relu6=False" if drift > 0.05 else "",
        )

    def export_components(
        self, model: torch.nn.Module, cfg: BaseDeploymentConfig, model_cfg: Any, sample: dict[str, Any]
    ) -> list[ExportComponent]:
        net = _unwrap(model)
        io = cfg.model_io
        s = self.settings(model_cfg)
        w, h = s.data.img_scale
        check_input_shape(
            cfg,
            (3, h, w),
            "the model config's img_scale",
            hint=f"set input_shape=(3, {h}, {w}) or change yolox_data.img_scale / IMG_SCALE in the model config",
        )
        refuse_unsupported(
            cfg, ("additional_inputs", "additional_outputs"), "YOLOX", "one input, one output", "remove them"
        )
        x, _ = letterbox(sample["image"], s.data.img_scale, s.data.pad_val, s.normalize, "cpu")
        self._report_rewrite_drift(net, x)
        sec: YOLOXDeploySection = self.section(cfg)
        outputs = list(YOLOXWithNMS.OUTPUT_NAMES)
        names = [io.input_name, io.output_name, *(outputs if sec.nms_in_graph else [])]
        x, axes = batch_and_axes(
            cfg,
            x,
            names=names,
            batch_only=names,
            why_batch_only="the input is letterboxed to a fixed size; use {0: 'batch_size'}",
        )
        main_axes = {k: v for k, v in axes.items() if k in (io.input_name, io.output_name)}
        comps = [
            ExportComponent(
                name=MAIN_COMPONENT,
                module=YOLOXOutput(net, cfg.onnx_config.decode_in_inference).eval(),
                input_names=[io.input_name],
                output_names=[io.output_name],
                sample_inputs={io.input_name: x},
                dynamic_axes=main_axes,
                file_name=cfg.onnx_config.save_file,
            )
        ]
        if sec.nms_in_graph:
            if cfg.onnx_config.exporter != "legacy":
                raise ConfigError(
                    f"{cfg.source}: 'yolox.nms_in_graph=True' needs onnx_config.exporter='legacy'",
                    hint="the NonMaxSuppression node is emitted through the TorchScript exporter's symbolic; set exporter='legacy'",
                )
            post = postprocess_settings(s, sec)
            nms_axes = {k: v for k, v in axes.items() if k == io.input_name or k in outputs}
            if io.input_name in axes:
                nms_axes.update({o: {0: axes[io.input_name].get(0, "batch_size")} for o in outputs})
            module = YOLOXWithNMS(
                net, score_thr=post.score_thr, iou_thr=post.iou_thr, max_per_img=post.max_per_img, pre_nms=post.pre_nms
            ).eval()
            comps.append(
                ExportComponent(
                    name=NMS_COMPONENT,
                    module=module,
                    input_names=[io.input_name],
                    output_names=outputs,
                    sample_inputs={io.input_name: x},
                    dynamic_axes=nms_axes,
                    file_name=cfg.onnx_config.save_file.removesuffix(".onnx") + "_nms.onnx",
                )
            )
        return comps

    def build_pipeline(
        self, backends: dict[str, BaseBackend], cfg: BaseDeploymentConfig, model_cfg: Any, device: torch.device
    ) -> YOLOXPipeline:
        unknown = sorted(set(backends) - {MAIN_COMPONENT, NMS_COMPONENT})
        if MAIN_COMPONENT not in backends or unknown:
            raise ConfigError(
                f"the yolox pipeline runs '{MAIN_COMPONENT}' (+ optional '{NMS_COMPONENT}'), got {sorted(backends)}",
                hint="export the yolox components",
            )
        s = self.settings(model_cfg)
        ordered = {
            MAIN_COMPONENT: backends[MAIN_COMPONENT],
            **({NMS_COMPONENT: backends[NMS_COMPONENT]} if NMS_COMPONENT in backends else {}),
        }
        return YOLOXPipeline(
            ordered,
            device,
            img_scale=s.data.img_scale,
            pad_val=s.data.pad_val,
            norm=s.normalize,
            post=postprocess_settings(s, self.section(cfg)),
            strides=s.strides,
            decoded_output=cfg.onnx_config.decode_in_inference,
            input_name=cfg.model_io.input_name,
            output_name=cfg.model_io.output_name,
        )
