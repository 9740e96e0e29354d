"""AWML-style model configs (the project's own fixtures in tests/fixtures/awml, written in
the shape of tier4/AWML's files) load as written and build the AWML models."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

from modeldeploy.config.deploy_config import read_mmengine_config
from modeldeploy.core.awml_config import STAND_IN_ROOT, model_type_names
from modeldeploy.errors import ConfigError
from modeldeploy.projects import get_project
from tests.unit.awml.conftest import FIXTURES, MODEL_CONFIGS, build

BUILTIN_AWML = {
    "calibration": "resnet18_5ch.py",
    "centerpoint": "centerpoint_awml.py",
    "yolox": "yolox_s_opt_elan_960.py",
}
PKG = Path(__import__("modeldeploy").__file__).parent / "projects"


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("key", sorted(MODEL_CONFIGS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_fixture_config_loads_without_importing_awml_modules(
    key: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="modeldeploy.core.awml_config"):
        cfg = read_mmengine_config(MODEL_CONFIGS[key])
    imports = list(cfg.custom_imports["imports"])
    assert imports and all(m.split(".")[0] in ("projects", "autoware_ml") for m in imports)
    assert not [m for m in sys.modules if m == "projects" or m.startswith(("projects.", "autoware_ml"))]
    assert "custom_imports not imported" in caplog.text and imports[0] in caplog.text
    # training-only sections are there (the file loaded as written) and simply unused
    assert "param_scheduler" in cfg and "default_hooks" in cfg


@pytest.mark.parametrize("project", sorted(BUILTIN_AWML))
def test_awml_style_fixture_builds_the_awml_size_model(project: str) -> None:
    """Same keys and shapes as the builtin AWML-size config, whose names/shapes the
    projects' key tests check against upstream (tests/unit/projects/*/test_model_keys.py)."""
    _, model = build(project, "awml")
    builtin = read_mmengine_config(PKG / project / "configs" / BUILTIN_AWML[project])
    reference = get_project(project).build_model(builtin)
    assert shapes(model) == shapes(reference)


def test_centerpoint_v1_and_v2_sizes() -> None:
    _, v2 = build("centerpoint", "awml")
    _, v1 = build("centerpoint", "awml_v1")
    assert v2.settings.grid_size == (1020, 1020, 1) and v1.settings.grid_size == (760, 760, 1)
    assert v1.settings.voxel_size == (0.32, 0.32, 8.0)
    assert shapes(v1) == shapes(v2)  # the grid is not in the weights
    # merged through the _base_ chain: common_heads and share_conv_channel come from default/second_secfpn_base.py
    assert v2.pts_bbox_head.task_heads[0].vel[1].weight.shape == (2, 64, 1, 1)
    assert v2.settings.point_loading.out_dims == (0, 1, 2, 4)  # lidar_sweep_dims of the test pipeline


def test_mmpretrain_bases_resolve_to_the_stand_ins_when_mmpretrain_is_absent(caplog: pytest.LogCaptureFixture) -> None:
    assert "mmpretrain" not in sys.modules
    with caplog.at_level(logging.INFO, logger="modeldeploy.core.awml_config"):
        cfg = read_mmengine_config(MODEL_CONFIGS[("calibration", "awml")])
    assert "stand-in" in caplog.text and str(STAND_IN_ROOT / "mmpretrain") in caplog.text
    assert cfg.default_scope == "mmpretrain"  # from the default_runtime base
    assert cfg.model.head.topk == (1,) and cfg.model.head.num_classes == 2  # the child's values win the merge
    assert cfg.model.head.loss.type == "LabelSmoothLoss"


def test_installed_package_configs_are_preferred_over_stand_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With mmpretrain installed, its own ``.mim/configs`` base is read (found, not imported)."""
    base = tmp_path / "mmpretrain" / ".mim" / "configs" / "_base_" / "models" / "resnet18.py"
    base.parent.mkdir(parents=True)
    (tmp_path / "mmpretrain" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    base.write_text(
        "model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18), neck=dict(type='GlobalAveragePooling'),"
        " head=dict(type='LinearClsHead', num_classes=7, in_channels=512, topk=(1, 5)))\nmarker = 'installed'\n"
    )
    (tmp_path / "mmpretrain" / ".mim" / "configs" / "_base_" / "default_runtime.py").write_text(
        "default_scope = 'mmpretrain'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = read_mmengine_config(MODEL_CONFIGS[("calibration", "awml")])
    assert cfg.marker == "installed"
    assert "mmpretrain" not in sys.modules


def test_scoped_base_that_is_neither_installed_nor_shipped_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        '_base_ = ["mmdet3d::_base_/models/centerpoint_pillar02_second_secfpn_nus.py"]\nmodel = dict(type="CenterPoint")\n'
    )
    with pytest.raises(ConfigError) as exc:
        read_mmengine_config(cfg)
    line = exc.value.one_line()
    assert (
        "\n" not in line
        and "mmdet3d::_base_/models/centerpoint_pillar02_second_secfpn_nus.py" in line
        and str(cfg) in line
    )
    assert "pkg_resources" not in line


def test_wrong_letter_case_base_names_the_file_and_the_near_miss() -> None:
    cfg = (
        FIXTURES
        / "yolox/projects/YOLOX_opt_elan/configs/t4dataset/YOLOX_opt-S-DynamicRecognition/yolox-s-opt-elan_wrong_case_base.py"
    )
    with pytest.raises(ConfigError) as exc:
        read_mmengine_config(cfg)
    line = exc.value.one_line()
    assert "\n" not in line and exc.value.exit_code == 2
    assert (
        str(cfg) in line and "t4dataset_DynamicRecognition.py" in line and "'t4dataset_dynamic_recognition.py'" in line
    )


def test_pure_letter_case_mistake(tmp_path: Path) -> None:
    (tmp_path / "Base.py").write_text("x = 1\n")
    cfg = tmp_path / "child.py"
    cfg.write_text('_base_ = ["./base.py"]\n')
    with pytest.raises(ConfigError, match="'Base.py' in that folder differs only in letter case"):
        read_mmengine_config(cfg)


@pytest.mark.parametrize(
    ("project", "edits", "names"),
    [
        ("centerpoint", {"pts_backbone": "SECONDDSV", "pts_neck": "FPN"}, ["'SECONDDSV'", "'FPN'"]),
        ("yolox", {"backbone": "CSPDarknet"}, ["'CSPDarknet'"]),
        ("calibration", {"neck": "GeneralizedMeanPooling"}, ["'GeneralizedMeanPooling'"]),
    ],
)
def test_unknown_type_names_are_listed_in_one_line(project: str, edits: dict[str, str], names: list[str]) -> None:
    cfg = read_mmengine_config(MODEL_CONFIGS[(project, "tiny")])
    for section, typ in edits.items():
        cfg.model[section].type = typ
    with pytest.raises(ConfigError) as exc:
        get_project(project).build_model(cfg)
    line = exc.value.one_line()
    assert "\n" not in line and f"the {project} project does not implement" in line
    for n in names:
        assert n in line


def test_training_only_type_names_are_not_checked() -> None:
    cfg = read_mmengine_config(MODEL_CONFIGS[("centerpoint", "awml")])
    names = {n for _, n in model_type_names(cfg.model)}
    assert "CenterPoint" in names and "CustomSeparateHead" in names
    assert not names & {"AmpGaussianFocalLoss", "L1Loss", "GaussianFocalLoss"}  # losses are training-only
    yolox = read_mmengine_config(MODEL_CONFIGS[("yolox", "awml")])
    assert not {n for _, n in model_type_names(yolox.model)} & {"SimOTAAssigner", "BatchSyncRandomResize"}
