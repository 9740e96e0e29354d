"""A project bound to its configs once (issue #13 item 5): its own deploy section is declared on
the class and parsed when the project is bound, its model-config settings are parsed once per
run, and ``model_io`` is checked by one shared helper — CenterPoint refuses what it cannot honour.

The runner tests use the toy project (a test double for a model family, real ONNX export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.config.sections import Section
from modeldeploy.core import model_io
from modeldeploy.errors import ConfigError
from modeldeploy.runners import DeploymentRunner
from tests.unit.runtime.toy_project import ToyProject

ROOT = Path(__file__).resolve().parents[3]


class ToySection(Section):
    batch_hint: int = 1


class SettingsToy(ToyProject):
    """The toy project with a deploy section and model-config settings read by several hooks."""

    deploy_section = ToySection

    def __init__(self) -> None:
        self.parsed = 0
        self.seen_sections: list[ToySection] = []

    def parse_settings(self, model_cfg: Any) -> dict[str, Any]:
        self.parsed += 1
        return {"model_keys": sorted(model_cfg.keys())}

    def build_model(self, model_cfg: Any) -> torch.nn.Module:
        assert self.settings(model_cfg)["model_keys"]
        return super().build_model(model_cfg)

    def build_data_loader(self, cfg: Any, model_cfg: Any) -> Any:
        self.settings(model_cfg)
        self.seen_sections.append(self.section(cfg))
        return super().build_data_loader(cfg, model_cfg)

    def build_evaluator(self, cfg: Any, model_cfg: Any) -> Any:
        self.settings(model_cfg)
        return super().build_evaluator(cfg, model_cfg)

    def build_pipeline(self, backends: Any, cfg: Any, model_cfg: Any, device: torch.device) -> Any:
        self.settings(model_cfg)
        return super().build_pipeline(backends, cfg, model_cfg, device)


def _cfg(tmp_path: Path, **over: Any) -> BaseDeploymentConfig:
    raw = {
        "project": "toy",
        "export": {"mode": "onnx", "work_dir": str(tmp_path / "work")},
        "onnx_config": {"save_file": "toy.onnx"},
        "verification": {"num_verify_samples": 2, "tolerance": 1e-4},
        "evaluation": {"num_samples": 4, "warmup": 1},
        **over,
    }
    return BaseDeploymentConfig.from_dict(raw)


def test_a_run_parses_the_settings_once_and_hands_hooks_the_typed_section(
    tmp_path: Path, toy_files: dict[str, Path]
) -> None:
    project = SettingsToy()
    cfg = _cfg(tmp_path, toy={"batch_hint": 4})
    out = DeploymentRunner(
        cfg,
        str(toy_files["model_cfg"]),
        str(toy_files["checkpoint"]),
        project=project,
        resolve_fn=Path,
        termination_log=str(tmp_path / "term.log"),
    ).run()
    assert out.exit_code == 0, out.results["failure"]
    assert project.parsed == 1  # build_model, data loader, evaluator, pipelines (one per backend): one parse
    assert project.seen_sections and all(s == ToySection(batch_hint=4) for s in project.seen_sections)


def test_a_bad_key_in_the_declared_section_fails_before_any_work(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    cfg = _cfg(tmp_path, toy={"batch_hnt": 4})  # the config alone cannot know the toy's section
    with pytest.raises(ConfigError, match=r"unknown key 'toy\.batch_hnt'") as exc:
        DeploymentRunner(cfg, str(toy_files["model_cfg"]), project=SettingsToy(), resolve_fn=Path)
    assert "did you mean 'toy.batch_hint'" in (exc.value.hint or "")
    assert not (tmp_path / "work").exists()


def test_a_section_for_a_project_that_declares_none_is_an_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown top-level key 'toy'"):
        ToyProject.from_configs(_cfg(tmp_path, toy={"batch_hint": 4}))


def test_centerpoint_refuses_model_io_it_cannot_honour() -> None:
    from modeldeploy.projects import project_for

    for io, key in (
        ({"input_name": "voxels"}, "input_name"),
        ({"dynamic_axes": {"voxels": {0: "n"}}}, "dynamic_axes"),
        ({"input_dtype": "float16"}, "input_dtype"),
    ):
        cfg = BaseDeploymentConfig.from_dict({"project": "centerpoint", "model_io": io})
        with pytest.raises(ConfigError, match=rf"'model_io\.{key}' = .* is not used by centerpoint") as exc:
            project_for(cfg)
        assert "\n" not in exc.value.one_line() and "remove model_io" in (exc.value.hint or "")
    project_for(BaseDeploymentConfig.from_dict({"project": "centerpoint"}))  # none set: fine


def test_an_awml_centerpoint_config_converts_without_its_informational_model_io() -> None:
    """AWML's CenterPoint deploy config carries a model_io nobody reads; the conversion drops it
    (and says so), so the converted config binds to the project that refuses model_io."""
    from modeldeploy.config.awml_deploy import convert
    from modeldeploy.config.deploy_config import load_mmengine_config
    from modeldeploy.projects import project_for

    fixture = ROOT / "tests" / "fixtures" / "awml" / "deploy" / "centerpoint_deploy_config.py"
    conv = convert(load_mmengine_config(fixture), source=str(fixture))
    assert "model_io" not in conv.data
    assert any(n.key == "model_io" and n.action == "dropped" for n in conv.notes)
    project_for(BaseDeploymentConfig(conv.data, source=str(fixture)))


def test_model_io_helper_checks_names_axes_and_batch() -> None:
    cfg = BaseDeploymentConfig.from_dict({"model_io": {"dynamic_axes": {"images": {0: "b"}}}})
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ConfigError, match=r"names \['images'\], which the exported graphs do not have"):
        model_io.batch_and_axes(cfg, x, ("input", "output"), ("output",), "why")
    cfg = BaseDeploymentConfig.from_dict({"model_io": {"dynamic_axes": {"output": {1: "c"}}}})
    with pytest.raises(ConfigError, match=r"'model_io\.dynamic_axes\.output' makes axis 1 dynamic"):
        model_io.batch_and_axes(cfg, x, ("input", "output"), ("output",), "why")
    cfg = BaseDeploymentConfig.from_dict({"model_io": {"batch_size": 3, "input_shape": (3, 4, 4)}})
    xb, axes = model_io.batch_and_axes(cfg, x, ("input", "output"), ("output",), "why")
    assert xb.shape == (3, 3, 4, 4) and axes == {}
    assert model_io.check_input_shape(cfg, (3, None, None), "why", "hint") == (3, 4, 4)
    with pytest.raises(ConfigError, match=r"'model_io\.input_shape' = \(3, 4, 4\): expected \(5, \*, \*\)"):
        model_io.check_input_shape(cfg, (5, None, None), "why", "hint")
