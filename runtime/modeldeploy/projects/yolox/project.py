"""The ``yolox`` project: YOLOX_opt_elan plugged into the DeploymentRunner."""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

import torch

from modeldeploy.backends.base import BaseBackend
from modeldeploy.core.components import ExportComponent
from modeldeploy.core.project import BaseProject, register_project
from modeldeploy.errors import ConfigError
from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader
from modeldeploy.projects.yolox.evaluator import CocoDetectionEvaluator
from modeldeploy.projects.yolox.export import YOLOXOutput, YOLOXWithNMS
from modeldeploy.projects.yolox.model import YOLOX, build_yolox, replace_relu6
from modeldeploy.projects.yolox.pipeline import MAIN_COMPONENT, NMS_COMPONENT, YOLOXPipeline
from modeldeploy.projects.yolox.preprocess import letterbox
from modeldeploy.projects.yolox.settings import (
    data_settings,
    deploy_section,
    model_cfg_dict,
    model_class_names,
    normalize_settings,
    postprocess_settings,
    uses_bundled_sample,
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

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        cfg = model_cfg_dict(model_cfg)
        if "model" not in cfg:
            raise ConfigError(
                "model config has no 'model' section",
                hint="add model = dict(type='YOLOX', backbone=..., neck=..., bbox_head=...)",
            )
        data_settings(model_cfg)  # fail on a bad data section before any work
        model_class_names(model_cfg)
        normalize_settings(model_cfg)
        return build_yolox(cfg["model"])

    def build_data_loader(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> CocoDetectionDataLoader:
        rio = cfg.runtime_io
        settings = data_settings(model_cfg).model_copy(update={"class_names": model_class_names(model_cfg)})
        loader = CocoDetectionDataLoader.from_runtime_io(rio.info_file, rio.data_root, settings)
        num_classes = int(((model_cfg_dict(model_cfg).get("model") or {}).get("bbox_head") or {}).get("num_classes", 0))
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
        return bool(rio.info_file) or bool(rio.data_root) or uses_bundled_sample(model_cfg)  # '' = unset, as in AWML

    def example_sample(self, cfg: BaseDeploymentConfig, model_cfg: Any) -> dict[str, Any]:
        """One deterministic synthetic image (the bundled set's renderer) at the model's
        ``img_scale``: content with edges and objects rather than a constant, so the ReLU6
        rewrite drift the export logs is measured on something image-like."""
        return example_image_sample(data_settings(model_cfg))

    def prepare_for_export(self, model: torch.nn.Module, cfg: BaseDeploymentConfig) -> torch.nn.Module:
        self._trained_model = model
        if not deploy_section(cfg).replace_relu6:
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
        data = data_settings(model_cfg)
        w, h = data.img_scale
        if io.input_shape and tuple(io.input_shape) != (3, h, w):
            raise ConfigError(
                f"{cfg.source}: 'model_io.input_shape' = {tuple(io.input_shape)} but the model config's img_scale gives (3, {h}, {w})",
                hint=f"set input_shape=(3, {h}, {w}) or change yolox_data.img_scale / IMG_SCALE in the model config",
            )
        if io.additional_inputs or io.additional_outputs:
            raise ConfigError(
                f"{cfg.source}: 'model_io.additional_inputs/additional_outputs' are not used by YOLOX",
                hint="remove them",
            )
        x, _ = letterbox(sample["image"], data.img_scale, data.pad_val, normalize_settings(model_cfg), "cpu")
        self._report_rewrite_drift(net, x)
        sec = deploy_section(cfg)
        outputs = list(YOLOXWithNMS.OUTPUT_NAMES)
        axes: dict[str, dict[int, str]] = {}
        if io.batch_size is not None:
            x = x.repeat(io.batch_size, 1, 1, 1)
        elif io.dynamic_axes:
            allowed = {io.input_name, io.output_name, *(outputs if sec.nms_in_graph else [])}
            unknown = sorted(set(io.dynamic_axes) - allowed)
            if unknown:
                raise ConfigError(
                    f"{cfg.source}: 'model_io.dynamic_axes' names {unknown}, which the graphs do not have",
                    hint=f"use {sorted(allowed)}",
                )
            bad = [(k, a) for k, v in io.dynamic_axes.items() for a in v if a != 0]
            if bad:
                raise ConfigError(
                    f"{cfg.source}: 'model_io.dynamic_axes.{bad[0][0]}' makes axis {bad[0][1]} dynamic; only the batch axis can be",
                    hint="the input is letterboxed to a fixed size; use {0: 'batch_size'}",
                )
            axes = {k: dict(v) for k, v in io.dynamic_axes.items()}
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
            post = postprocess_settings(model_cfg, sec)
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
        data = data_settings(model_cfg)
        head = (model_cfg_dict(model_cfg).get("model") or {}).get("bbox_head") or {}
        strides = tuple(int(s) for s in head.get("strides", (8, 16, 32)))
        ordered = {
            MAIN_COMPONENT: backends[MAIN_COMPONENT],
            **({NMS_COMPONENT: backends[NMS_COMPONENT]} if NMS_COMPONENT in backends else {}),
        }
        return YOLOXPipeline(
            ordered,
            device,
            img_scale=data.img_scale,
            pad_val=data.pad_val,
            norm=normalize_settings(model_cfg),
            post=postprocess_settings(model_cfg, deploy_section(cfg)),
            strides=strides,
            decoded_output=cfg.onnx_config.decode_in_inference,
            input_name=cfg.model_io.input_name,
            output_name=cfg.model_io.output_name,
        )
