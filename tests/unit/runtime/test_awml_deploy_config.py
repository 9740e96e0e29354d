"""AWML deployment-framework deploy configs → ours (config/awml_deploy.py), rule by rule.

The fixtures under tests/fixtures/awml/deploy/ are written for this project in the exact
layout of vividf/AWML@65fdbffe's deploy configs (CenterPoint, YOLOX_opt_elan,
CalibrationStatusClassification). Everything here runs the real converter and the real
config validator; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeldeploy.config.awml_deploy import (
    PROFILE_INPUT_COMPONENT,
    convert,
    convert_file,
    is_awml_layout,
    load_deploy_config,
)
from modeldeploy.config.deploy_config import BaseDeploymentConfig, load_mmengine_config
from modeldeploy.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures" / "awml" / "deploy"
CENTERPOINT = FIX / "centerpoint_deploy_config.py"
YOLOX = FIX / "yolox_opt_elan_deploy_config.py"
CALIB = FIX / "calibration_status_classification_deploy_config.py"
BUILTIN_CONFIGS = sorted((ROOT / "runtime" / "modeldeploy" / "projects").glob("*/configs/deploy_*.py"))


def _raw(path: Path) -> dict[str, Any]:
    return load_mmengine_config(path)


def _minimal(**over: Any) -> dict[str, Any]:
    """The smallest AWML-layout config: task_type and an export section."""
    raw: dict[str, Any] = {"task_type": "classification", "export": {"mode": "onnx", "work_dir": "work_dirs/x"}}
    raw.update(over)
    return raw


def _one_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    line = exc.value.one_line()
    assert "\n" not in line and "fix:" in line
    return line


# ------------------------------------------------------------------ whole fixtures
@pytest.mark.parametrize("path", [CENTERPOINT, YOLOX, CALIB], ids=lambda p: p.stem)
def test_awml_fixture_is_detected_and_converts_to_a_valid_config(path: Path) -> None:
    raw = _raw(path)
    assert is_awml_layout(raw)
    conv = convert(raw, source=str(path))
    cfg = BaseDeploymentConfig(conv.data, source=str(path))
    assert (
        cfg.project
        == {"detection3d": "centerpoint", "detection2d": "yolox", "classification": "calibration"}[raw["task_type"]]
    )
    assert cfg.checkpoint_path == raw["checkpoint_path"]  # relative, as AWML reads it
    assert cfg.onnx_config.opset_version == raw["onnx_config"]["opset_version"]
    assert cfg.verification.tolerance == raw["verification"]["tolerance"]
    assert set(cfg.evaluation.backends) <= {"pytorch", "onnxruntime", "tensorrt"}
    assert conv.summary() and all(n.why for n in conv.notes)


@pytest.mark.parametrize("path", BUILTIN_CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_our_own_configs_are_not_taken_for_awml(path: Path) -> None:
    assert not is_awml_layout(_raw(path))


def test_centerpoint_fixture_mapping() -> None:
    conv = convert(_raw(CENTERPOINT))
    d = conv.data
    assert d["export"] == {"mode": "both", "work_dir": "work_dirs/centerpoint_base_2x_deploy", "device": "cuda:0"}
    # one AWML profile entry, split per engine by input name
    comps = {e["component"]: set(e["input_shapes"]) for e in d["backend_config"]["model_inputs"]}
    assert comps == {"pts_voxel_encoder": {"input_features"}, "pts_backbone_neck_head": {"spatial_features"}}
    assert (
        "save_file" not in d["onnx_config"]
        and "simplify" not in d["onnx_config"]
        and "multi_file" not in d["onnx_config"]
    )
    # mode both exports ONNX and TensorRT: AWML evaluates the fresh exports before model_dir/engine_dir
    be = d["evaluation"]["backends"]
    assert (
        set(be) == {"pytorch", "onnxruntime", "tensorrt"}
        and "model_dir" not in be["onnxruntime"]
        and "model_dir" not in be["tensorrt"]
    )
    both = d["verification"]["scenarios"]["both"]
    assert both[0] == {
        "ref_backend": "pytorch",
        "ref_device": "cpu",
        "test_backend": "onnxruntime",
        "test_device": "cpu",
    }
    assert both[1] == {
        "ref_backend": "onnxruntime",
        "ref_device": "cuda:0",
        "test_backend": "tensorrt",
        "test_device": "cuda:0",
    }
    assert d["verification"]["scenarios"]["none"] == []


def test_centerpoint_profile_table_matches_the_projects_graphs() -> None:
    from modeldeploy.projects.centerpoint import pipeline

    table = PROFILE_INPUT_COMPONENT["centerpoint"]
    assert set(table.values()) == {pipeline.VOXEL_ENCODER, pipeline.BACKBONE_NECK_HEAD}
    src = (ROOT / "runtime/modeldeploy/projects/centerpoint/project.py").read_text()
    assert 'input_names=["input_features"]' in src and 'input_names=["spatial_features"]' in src


def test_yolox_fixture_mapping() -> None:
    conv = convert(_raw(YOLOX))
    d = conv.data
    assert (
        d["model_io"]["batch_size"] == 1 and "dynamic_axes" not in d["model_io"]
    )  # AWML ignores them for an int batch
    assert d["backend_config"]["model_inputs"] == []  # the profile names 'input', which the graph does not have
    assert d["evaluation"]["backends"]["tensorrt"]["model_dir"].endswith(
        "yolox_s_opt_elan.engine"
    )  # engine_dir naming a file
    assert "model_dir" not in d["evaluation"]["backends"]["onnxruntime"]  # mode onnx exports it
    assert d["onnx_config"]["decode_in_inference"] is False  # AWML's wrapper exports the raw box regression
    assert (
        convert({**_raw(YOLOX), "onnx_config": {"decode_in_inference": True}}).data["onnx_config"][
            "decode_in_inference"
        ]
        is True
    )
    keys = {n.key for n in conv.notes}
    assert {
        "model_io.dynamic_axes",
        "backend_config.model_inputs[0].input_shapes.input",
        "evaluation.backends.tensorrt.engine_dir",
    } <= keys


def test_calibration_fixture_mapping() -> None:
    conv = convert(_raw(CALIB))
    d = conv.data
    assert d["project"] == "calibration" and "codebase_config" not in d
    assert "type" not in d["onnx_config"] and d["backend_config"]["type"] == "tensorrt"
    assert d["model_io"]["dynamic_axes"]["input"] == {0: "batch_size", 2: "height", 3: "width"}
    assert d["backend_config"]["model_inputs"][0]["input_shapes"]["input"]["opt_shape"] == [1, 5, 1860, 2880]
    assert {"codebase_config", "onnx_config.type", "onnx_config.simplify"} <= {
        n.key for n in conv.notes if n.action == "dropped"
    }


# ------------------------------------------------------------------ single keys
def test_devices_aliases_are_resolved_in_scenarios_and_backends() -> None:
    raw = _minimal(
        devices={"cpu": "cpu", "cuda": "cuda:1"},
        export={"mode": "both", "work_dir": "w"},
        verification={
            "devices": {"cpu": "cpu", "gpu": "cuda:2"},
            "scenarios": {
                "both": [
                    {"ref_backend": "pytorch", "ref_device": "cuda", "test_backend": "tensorrt", "test_device": "gpu"}
                ]
            },
        },
        evaluation={"enabled": True, "backends": {"pytorch": {"enabled": True, "device": "cuda"}}},
    )
    d = convert(raw).data
    assert d["export"]["device"] == "cuda:1"  # TensorRT needs CUDA: devices.cuda
    assert d["verification"]["scenarios"]["both"][0] == {
        "ref_backend": "pytorch",
        "ref_device": "cuda:1",
        "test_backend": "tensorrt",
        "test_device": "cuda:2",
    }
    assert d["evaluation"]["backends"]["pytorch"]["device"] == "cuda:1"
    assert "devices" not in d and "devices" not in d["verification"]
    BaseDeploymentConfig(d)


def test_devices_cuda_shorthand_and_cpu_mode() -> None:
    d = convert(_minimal(devices={"cuda": "cuda"}, export={"mode": "trt", "work_dir": "w"})).data
    assert d["export"]["device"] == "cuda:0"
    assert convert(_minimal()).data["export"]["device"] == "cpu"


def test_backend_name_onnx_is_onnxruntime() -> None:
    raw = _minimal(
        evaluation={"enabled": True, "backends": {"onnx": {"enabled": True, "device": "cpu"}}},
        verification={
            "scenarios": {
                "onnx": [{"ref_backend": "pytorch", "ref_device": "cpu", "test_backend": "onnx", "test_device": "cpu"}]
            }
        },
    )
    d = convert(raw).data
    assert list(d["evaluation"]["backends"]) == ["onnxruntime"]
    assert d["verification"]["scenarios"]["onnx"][0]["test_backend"] == "onnxruntime"
    assert BaseDeploymentConfig(d).evaluation_backends()["onnxruntime"].device == "cpu"


@pytest.mark.parametrize("model_dir", ["work_dirs/x/onnx/", "work_dirs/x/onnx/end2end.onnx"])
def test_model_dir_file_or_folder_is_kept_when_this_run_does_not_export(model_dir: str) -> None:
    raw = _minimal(
        export={"mode": "none", "work_dir": "w"},
        evaluation={"enabled": True, "backends": {"onnx": {"enabled": True, "device": "cpu", "model_dir": model_dir}}},
    )
    d = convert(raw).data
    assert d["evaluation"]["backends"]["onnxruntime"] == {"enabled": True, "device": "cpu", "model_dir": model_dir}


def test_engine_dir_maps_to_model_dir_and_a_fresh_export_wins() -> None:
    be = {"tensorrt": {"enabled": True, "device": "cuda:0", "engine_dir": "w/tensorrt/m.engine"}}
    d = convert(_minimal(export={"mode": "none", "work_dir": "w"}, evaluation={"enabled": True, "backends": be})).data
    assert d["evaluation"]["backends"]["tensorrt"]["model_dir"] == "w/tensorrt/m.engine"
    d = convert(_minimal(export={"mode": "both", "work_dir": "w"}, evaluation={"enabled": True, "backends": be})).data
    assert "model_dir" not in d["evaluation"]["backends"]["tensorrt"]


def test_a_backend_without_any_model_is_disabled_as_awml_skips_it() -> None:
    be = {"tensorrt": {"enabled": True, "device": "cuda:0", "engine_dir": None}}
    conv = convert(_minimal(evaluation={"enabled": True, "backends": be}))  # mode onnx: no engine this run
    assert conv.data["evaluation"]["backends"]["tensorrt"]["enabled"] is False
    assert any(n.key == "evaluation.backends.tensorrt.enabled" for n in conv.notes)


def test_batch_size_with_dynamic_axes() -> None:
    io = {"input_name": "input", "output_name": "output", "dynamic_axes": {"input": {0: "batch_size"}}}
    d = convert(_minimal(model_io={**io, "batch_size": 2})).data
    assert d["model_io"]["batch_size"] == 2 and "dynamic_axes" not in d["model_io"]
    d = convert(_minimal(model_io={**io, "batch_size": None})).data
    assert "batch_size" not in d["model_io"] and d["model_io"]["dynamic_axes"] == {"input": {0: "batch_size"}}
    BaseDeploymentConfig(d)


def test_onnx_config_awml_keys() -> None:
    raw = _minimal(
        onnx_config={"type": "onnx", "simplify": True, "multi_file": False, "verbose": False, "save_file": "m.onnx"}
    )
    d = convert(raw).data
    assert d["onnx_config"] == {"save_file": "m.onnx", "opset_version": 16}  # AWML's default opset written out
    with pytest.raises(ConfigError) as exc:
        convert(_minimal(onnx_config={"type": "tensorrt"}))
    assert "onnx_config.type" in _one_line(exc)


def test_codebase_config_alone_names_the_project() -> None:
    raw = {"codebase_config": {"type": "mmpretrain", "task": "Classification"}, "export": {"mode": "onnx"}}
    assert convert(raw).data["project"] == "calibration"


def test_relative_paths_kept_or_resolved_against_base_dir(tmp_path: Path) -> None:
    raw = _minimal(
        checkpoint_path="work_dirs/a/epoch_1.pth",
        runtime_io={"info_file": "data/info.pkl", "sample_idx": 0},
        export={"mode": "none", "work_dir": "work_dirs/out", "onnx_path": "work_dirs/out/onnx"},
        evaluation={"enabled": True, "backends": {"onnx": {"enabled": True, "model_dir": "work_dirs/out/onnx/m.onnx"}}},
    )
    kept = convert(raw).data
    assert kept["checkpoint_path"] == "work_dirs/a/epoch_1.pth" and kept["export"]["work_dir"] == "work_dirs/out"
    d = convert(raw, base_dir=tmp_path).data
    assert d["checkpoint_path"] == str(tmp_path / "work_dirs/a/epoch_1.pth")
    assert d["runtime_io"]["info_file"] == str(tmp_path / "data/info.pkl")
    assert d["export"]["work_dir"] == str(tmp_path / "work_dirs/out") and d["export"]["onnx_path"] == str(
        tmp_path / "work_dirs/out/onnx"
    )
    assert d["evaluation"]["backends"]["onnxruntime"]["model_dir"] == str(tmp_path / "work_dirs/out/onnx/m.onnx")
    uris = convert(_minimal(checkpoint_path="builtin:yolox/yolox_tiny_256.pth"), base_dir=tmp_path).data
    assert uris["checkpoint_path"] == "builtin:yolox/yolox_tiny_256.pth"
    assert (
        convert(_minimal(checkpoint_path="s3://b/k.pth"), base_dir=tmp_path).data["checkpoint_path"] == "s3://b/k.pth"
    )


def test_awml_defaults_are_written_explicitly() -> None:
    d = convert({"task_type": "detection2d", "export": {}}).data
    assert (
        d["export"]["mode"] == "both" and d["export"]["work_dir"] == "work_dirs" and d["export"]["device"] == "cuda:0"
    )
    assert d["evaluation"] == {"enabled": False, "num_samples": 10, "verbose": False}
    assert d["verification"] == {"enabled": True, "tolerance": 0.1, "num_verify_samples": 3}
    assert d["onnx_config"]["opset_version"] == 16


def test_missing_export_section_is_refused_like_awml() -> None:
    with pytest.raises(ConfigError) as exc:
        convert({"task_type": "detection2d"})
    assert "export" in _one_line(exc)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (_minimal(my_setting=1), "'my_setting'"),
        (_minimal(onnx_config={"simplfy": True}), "'onnx_config.simplfy'"),
        (_minimal(export={"mode": "onnx", "workdir": "x"}), "'export.workdir'"),
        (
            _minimal(evaluation={"backends": {"onnx": {"enabled": True, "engine_dir": "x"}}}),
            "'evaluation.backends.onnx.engine_dir'",
        ),
        (_minimal(evaluation={"backends": {"openvino": {"enabled": True}}}), "'evaluation.backends.openvino'"),
        (_minimal(task_type="segmentation"), "'task_type'"),
    ],
    ids=["top", "onnx_config", "export", "engine_dir-on-onnx", "backend", "task_type"],
)
def test_unsupported_key_is_one_line_naming_key_why_and_fix(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        convert(raw, source="deploy.py")
    line = _one_line(exc)
    assert key in line and "deploy.py" in line and "not supported" in line


def test_our_own_keys_pass_through_an_awml_layout() -> None:
    raw = _minimal(
        use_ema=True,
        export={"mode": "onnx", "work_dir": "w", "verify": False, "device": "cpu"},
        evaluation={"enabled": True, "warmup": 1},
        yolox={"nms_in_graph": False},
        task_type="detection2d",
    )
    d = convert(raw).data
    assert d["use_ema"] is True and d["export"]["verify"] is False and d["evaluation"]["warmup"] == 1
    assert d["yolox"] == {"nms_in_graph": False}
    BaseDeploymentConfig(d)


def test_convert_file_writes_a_loadable_config_listing_every_decision(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "deploy_converted.py"
    text = convert_file(CENTERPOINT, out)
    assert out.read_text() == text
    header = [line for line in text.splitlines() if line.startswith("#   ")]
    conv = convert(_raw(CENTERPOINT), source=str(CENTERPOINT))
    assert len(header) == len(conv.notes)
    for key in (
        "devices",
        "onnx_config.simplify",
        "onnx_config.multi_file",
        "verification.devices",
        "evaluation.backends.onnx",
        "evaluation.backends.tensorrt.engine_dir",
    ):
        assert any(line.startswith(f"#   {key}:") for line in header), key
    again = load_deploy_config(out)
    assert again.to_dict() == BaseDeploymentConfig(conv.data).to_dict()
    assert not is_awml_layout(load_mmengine_config(out))
    assert [p.name for p in out.parent.iterdir()] == ["deploy_converted.py"]  # no temp file left


def test_convert_file_refuses_a_config_already_in_our_layout(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        convert_file(ROOT / "runtime/modeldeploy/projects/yolox/configs/deploy_tiny.py", tmp_path / "x.py")
    assert "already in modeldeploy's layout" in _one_line(exc)
    assert not (tmp_path / "x.py").exists()


# ------------------------------------------------------------------ runner: model_dir naming a file
def _runner_with_components(tmp_path: Path, names: list[str], model_dir: str):  # -> DeploymentRunner
    """A DeploymentRunner on the toy project (a test double for a model project) whose
    export components are set by hand; only the model-file lookup is exercised."""
    import torch

    from modeldeploy.core.components import ExportComponent
    from modeldeploy.runners import DeploymentRunner
    from tests.unit.runtime.toy_project import ToyProject

    cfg = BaseDeploymentConfig.from_dict(
        {
            "project": "calibration",
            "export": {"mode": "none", "device": "cpu", "work_dir": str(tmp_path / "w")},
            "evaluation": {"backends": {"onnxruntime": {"model_dir": model_dir}}},
        }
    )
    runner = DeploymentRunner(cfg, "unused.py", "unused.pth", project=ToyProject(), resolve_fn=Path)
    x = torch.zeros(1)
    runner.state.components = [ExportComponent(n, torch.nn.Identity(), ["x"], ["y"], {"x": x}) for n in names]
    return runner


def test_model_dir_naming_a_file_is_used_for_a_single_graph_toy_double(tmp_path: Path) -> None:
    f = tmp_path / "end2end.onnx"
    f.write_bytes(b"onnx")
    runner = _runner_with_components(tmp_path, ["model"], str(f))
    assert runner._model_file("onnxruntime", runner.state.components[0]) == f
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.onnx").write_bytes(b"onnx")
    runner = _runner_with_components(tmp_path, ["model"], str(tmp_path / "models"))  # a folder still works
    assert runner._model_file("onnxruntime", runner.state.components[0]) == tmp_path / "models" / "model.onnx"


def test_model_dir_naming_a_file_for_two_graphs_is_one_line_toy_double(tmp_path: Path) -> None:
    f = tmp_path / "centerpoint.onnx"
    f.write_bytes(b"onnx")
    runner = _runner_with_components(tmp_path, ["pts_voxel_encoder", "pts_backbone_neck_head"], str(f))
    with pytest.raises(ConfigError) as exc:
        runner._model_file("onnxruntime", runner.state.components[0])
    line = _one_line(exc)
    assert "is a file" in line and "pts_voxel_encoder.onnx, pts_backbone_neck_head.onnx" in line


def test_onnx_and_onnxruntime_entries_merge_with_the_later_one_winning() -> None:
    """An AWML file's 'onnx' entry plus our 'onnxruntime' key (e.g. from --cfg-options)."""
    be = {"onnx": {"enabled": True, "device": "cuda:0"}, "onnxruntime": {"device": "cpu"}}
    d = convert(_minimal(evaluation={"enabled": True, "backends": be})).data
    assert d["evaluation"]["backends"] == {"onnxruntime": {"enabled": True, "device": "cpu"}}


def test_backend_enum_members_as_keys_and_scenario_backends() -> None:
    """AWML documents ``deployment.core.Backend`` members in place of the strings; the file
    imports it, and the import stays lazy (the package is not installed)."""
    cfg = load_deploy_config(FIX / "backend_enum_keys.py")
    assert {k: v.enabled for k, v in cfg.evaluation.backends.items()} == {
        "pytorch": True,
        "onnxruntime": True,
        "tensorrt": False,
    }
    (sc,) = cfg.verification.scenarios["onnx"]
    assert (sc.ref_backend, sc.test_backend) == ("pytorch", "onnxruntime")


def test_real_enum_members_map_by_value() -> None:
    import enum

    class Backend(str, enum.Enum):  # the shape of AWML's deployment.core.Backend
        PYTORCH = "pytorch"
        ONNX = "onnx"

    raw = _minimal(
        evaluation={"enabled": True, "backends": {Backend.ONNX: {"enabled": True}}},
        verification={
            "scenarios": {
                "onnx": [
                    {
                        "ref_backend": Backend.PYTORCH,
                        "ref_device": "cpu",
                        "test_backend": Backend.ONNX,
                        "test_device": "cpu",
                    }
                ]
            }
        },
    )
    assert is_awml_layout(raw)
    d = convert(raw).data
    assert list(d["evaluation"]["backends"]) == ["onnxruntime"]
    assert d["verification"]["scenarios"]["onnx"][0]["test_backend"] == "onnxruntime"


# ------------------------------------------------------------------ where the info file's paths point
def test_data_root_comes_from_the_model_config_as_in_awml() -> None:
    raw = _raw(CENTERPOINT)  # info_file set, no data_root (AWML's deploy configs have none)
    assert convert(raw, model_cfg={"data_root": "/data/t4"}).data["runtime_io"]["data_root"] == "/data/t4"
    assert convert(raw).data["runtime_io"]["data_root"] == "data/t4dataset/"  # AWML CenterPoint's own fallback
    cal = convert(_raw(CALIB), model_cfg={"data_root": "/workspace/data/t4dataset"}).data["runtime_io"]
    assert cal["data_root"] == "/workspace/data/t4dataset"
    assert "data_root" not in convert(_raw(CALIB)).data["runtime_io"]  # AWML requires it in the model config
    assert convert(_raw(YOLOX)).data["runtime_io"]["data_root"] == "."  # img_path used as written
    no_info = convert(_minimal(runtime_io={"info_file": "", "sample_idx": 0}), model_cfg={"data_root": "/x"}).data[
        "runtime_io"
    ]
    assert "data_root" not in no_info


def test_load_deploy_config_reads_the_model_configs_data_root_only_when_needed(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text("data_root = 'data/my_t4/'\n")
    cfg = load_deploy_config(CENTERPOINT, model_cfg_path=model)
    assert cfg.runtime_io.data_root == str(Path.cwd() / "data/my_t4")  # relative paths: against the cwd, as AWML
    assert cfg.runtime_io.info_file == str(Path.cwd() / "data/t4dataset/info/t4dataset_base_infos_val.pkl")
    calls = []
    cfg = load_deploy_config(FIX / "centerpoint_tiny.py", model_cfg_path=lambda: calls.append(1) or model)
    assert calls == [] and cfg.runtime_io.data_root is None  # no info file: the model config is not read
