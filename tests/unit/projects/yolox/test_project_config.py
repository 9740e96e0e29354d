"""The deploy config's ``yolox`` section: declared by the project (``deploy_section``), parsed
when the project is bound to the config — on a fresh interpreter too, without the config layer
importing any project — validated like every section, and applied by the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[4] / "runtime" / "modeldeploy" / "projects" / "yolox" / "configs"


def test_yolox_section_is_known_in_a_fresh_process() -> None:
    code = (
        "import sys; from modeldeploy.config import BaseDeploymentConfig as C; "
        f"c = C.fromfile({str(CONFIGS / 'deploy_tiny.py')!r}); "
        "assert not any(m.startswith('modeldeploy.projects') for m in sys.modules), 'config imported a project'; "
        "from modeldeploy.projects import project_for; print(project_for(c).section(c).nms_in_graph)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


def test_unknown_key_in_yolox_section_is_a_config_error() -> None:
    from modeldeploy.projects import project_for

    with pytest.raises(ConfigError, match=r"unknown key 'yolox\.nms_in_grph'") as exc:
        project_for(BaseDeploymentConfig.from_dict({"project": "yolox", "yolox": {"nms_in_grph": True}}))
    assert "did you mean 'yolox.nms_in_graph'" in (exc.value.hint or "")
    with pytest.raises(ConfigError, match=r"yolox\.pre_nms"):  # TensorRT TopK limit
        project_for(BaseDeploymentConfig.from_dict({"project": "yolox", "yolox": {"pre_nms": 5000}}))


def test_a_section_for_a_project_that_reads_none_is_an_unknown_key() -> None:
    from modeldeploy.projects import project_for

    cfg = BaseDeploymentConfig.from_dict({"project": "calibration", "calibration": {"x": 1}})
    with pytest.raises(ConfigError, match=r"unknown top-level key 'calibration'"):
        project_for(cfg)
    with pytest.raises(ConfigError, match=r"unknown top-level key 'yolox'"):  # another project's section
        BaseDeploymentConfig.from_dict({"project": "calibration", "yolox": {"nms_in_graph": True}})


def test_the_section_survives_a_round_trip_through_to_dict() -> None:
    """The CLI's --device rebuilds the config from its dict: the project's keys must come along."""
    from modeldeploy.projects import project_for

    cfg = BaseDeploymentConfig.from_dict({"project": "yolox", "yolox": {"nms_in_graph": True, "pre_nms": 500}})
    again = BaseDeploymentConfig.from_dict(cfg.to_dict())
    sec = project_for(again).section(again)
    assert sec.nms_in_graph is True and sec.pre_nms == 500


def _cfg(**yolox: object) -> BaseDeploymentConfig:
    return BaseDeploymentConfig.from_dict(
        {
            "project": "yolox",
            "model_io": {"input_name": "images", "dynamic_axes": {"images": {0: "b"}, "output": {0: "b"}}},
            "yolox": yolox,
        }
    )


def test_components_follow_the_section(tiny_cfg, coco_dir) -> None:
    from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader
    from modeldeploy.projects.yolox.project import YOLOXProject

    proj = YOLOXProject()
    model = proj.build_model(tiny_cfg)
    sample = CocoDetectionDataLoader(coco_dir / "annotations.json").load_sample(0)
    cfg = _cfg(nms_in_graph=True, replace_relu6=True)
    prepared = proj.prepare_for_export(model, cfg)
    assert prepared is not model and not any(isinstance(m, torch.nn.ReLU6) for m in prepared.modules())
    assert any(isinstance(m, torch.nn.ReLU6) for m in model.modules())  # the loaded model is untouched
    comps = proj.export_components(prepared, cfg, tiny_cfg, sample)
    assert [c.name for c in comps] == ["yolox", "yolox_nms"] and comps[1].file_name == "model_nms.onnx"
    assert comps[1].dynamic_axes["det_boxes"] == {0: "b"} and comps[0].sample_inputs["images"].shape == (1, 3, 256, 256)
    assert proj.prepare_for_export(model, _cfg(replace_relu6=False)) is model
    assert [c.name for c in proj.export_components(model, _cfg(), tiny_cfg, sample)] == ["yolox"]


def test_nms_in_graph_needs_the_legacy_exporter(tiny_cfg, coco_dir) -> None:
    from modeldeploy.projects.yolox.data_loader import CocoDetectionDataLoader
    from modeldeploy.projects.yolox.project import YOLOXProject

    cfg = BaseDeploymentConfig.from_dict(
        {"project": "yolox", "onnx_config": {"exporter": "dynamo"}, "yolox": {"nms_in_graph": True}}
    )
    proj = YOLOXProject()
    with pytest.raises(ConfigError, match="exporter='legacy'"):
        proj.export_components(
            proj.build_model(tiny_cfg),
            cfg,
            tiny_cfg,
            CocoDetectionDataLoader(coco_dir / "annotations.json").load_sample(0),
        )
