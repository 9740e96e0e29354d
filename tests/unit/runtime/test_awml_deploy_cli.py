"""`modeldeploy check-config`, `convert-config` and `run` on AWML-layout deploy configs.

The deploy configs are the project's own fixtures in the exact layout of AWML's deployment
framework (tests/fixtures/awml/deploy/); the runs use the builtin tiny models with their
committed checkpoints and bundled synthetic data, through the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from modeldeploy.cli import main

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures" / "awml" / "deploy"
AWML_SIZE = [
    "centerpoint_deploy_config.py",
    "yolox_opt_elan_deploy_config.py",
    "calibration_status_classification_deploy_config.py",
]
TINY = ["centerpoint_tiny.py", "yolox_opt_elan_tiny.py", "calibration_status_classification_tiny.py"]
PROJECT = {"centerpoint": "centerpoint", "yolox": "yolox", "calibration": "calibration"}


def _project_of(name: str) -> str:
    return next(p for p in PROJECT if name.startswith(p))


def _cli(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELDEPLOY_CACHE": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "modeldeploy", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("modeldeploy: error:")]


# ------------------------------------------------------------------ check-config / convert-config
@pytest.mark.parametrize("name", AWML_SIZE + TINY)
def test_check_config_accepts_the_awml_layout_with_one_info_line(
    name: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modeldeploy.config.awml_deploy")
    rc = main(["check-config", str(FIX / name)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"project={_project_of(name)}" in out.out
    lines = [r.getMessage() for r in caplog.records if r.name == "modeldeploy.config.awml_deploy"]
    assert len(lines) == 1 and "AWML deployment-framework layout" in lines[0] and "converted:" in lines[0]


@pytest.mark.parametrize("name", AWML_SIZE)
def test_spec_project_is_checked_against_the_project_an_awml_config_converts_to(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWML's deploy configs name no project (it comes from the converted task type): the
    operator's MODELDEPLOY_EXPECTED_PROJECT / --project check must read that one."""
    project = _project_of(name)
    assert main(["check-config", str(FIX / name), "--project", project]) == 0
    other = next(p for p in PROJECT if p != project)
    assert main(["check-config", str(FIX / name), "--project", other]) == 2
    assert f"--project '{other}'" in capsys.readouterr().err


@pytest.mark.parametrize("name", AWML_SIZE)
def test_convert_config_output_passes_check_config(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"converted_{name}"
    assert main(["convert-config", str(FIX / name), "-o", str(out)]) == 0
    assert out.read_text().startswith("# modeldeploy deploy config converted from the AWML")
    capsys.readouterr()
    assert main(["check-config", str(out)]) == 0
    assert f"project={_project_of(name)}" in capsys.readouterr().out


def test_convert_config_to_stdout_with_base_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["convert-config", str(FIX / AWML_SIZE[1]), "--base-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"checkpoint_path = '{tmp_path}/work_dirs/yolox_s_opt_elan_t4/epoch_300.pth'" in text
    monkeypatch.chdir(tmp_path)  # default: the working directory, where AWML would have been run
    assert main(["convert-config", str(FIX / AWML_SIZE[1])]) == 0
    text = capsys.readouterr().out
    assert f"made absolute under {tmp_path}" in text and f"'{tmp_path}/work_dirs/yolox_s_opt_elan_t4_deploy'" in text
    assert main(["convert-config", str(FIX / AWML_SIZE[1]), "--base-dir", ""]) == 0  # keep them relative
    text = capsys.readouterr().out
    assert "checkpoint_path = 'work_dirs/yolox_s_opt_elan_t4/epoch_300.pth'" in text and "kept as written" in text


def test_unknown_key_in_an_awml_layout_is_one_line_in_check_config_and_run(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.py"
    cfg.write_text(f"_base_ = ['{FIX / TINY[2]}']\nonnx_config = dict(simplfy=True)\n")
    for args in (
        ("check-config", str(cfg)),
        ("run", str(cfg), "builtin:calibration/resnet18_5ch_tiny.py", "--device", "cpu"),
    ):
        proc = _cli(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = _error_lines(proc)
        assert (
            len(lines) == 1
            and "'onnx_config.simplfy'" in lines[0]
            and "not supported" in lines[0]
            and "fix:" in lines[0]
        )
    assert not (tmp_path / "work_dirs").exists()  # refused before any work


def test_check_config_and_run_agree_that_project_is_required(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.py"
    cfg.write_text("export = dict(mode='onnx', device='cpu')\n")  # our layout, no project, no task_type
    lines = []
    for args in (("check-config", str(cfg)), ("run", str(cfg), "builtin:calibration/resnet18_5ch_tiny.py")):
        proc = _cli(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        (line,) = _error_lines(proc)
        lines.append(line)
    assert all("'project' is not set" in line for line in lines)


# ------------------------------------------------------------------ run on the tiny models
def _onnx_io(path: Path) -> tuple[int, dict[str, list]]:
    m = onnx.load(str(path), load_external_data=False)
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    return opset, {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}


@pytest.fixture(scope="module")
def calibration_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Relative checkpoint_path and work_dir in the deploy config: resolved against the cwd, as AWML does."""
    cwd = tmp_path_factory.mktemp("awml_calibration")
    (cwd / "checkpoints").mkdir()
    shutil.copy(ROOT / "runtime/modeldeploy/projects/calibration/assets/resnet18_5ch_tiny.pth", cwd / "checkpoints")
    proc = _cli(cwd, "run", str(FIX / TINY[2]), "builtin:calibration/resnet18_5ch_tiny.py", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "AWML deployment-framework layout" in proc.stderr
    return cwd


@pytest.mark.slow
def test_run_calibration_tiny_with_awml_deploy_config(calibration_run: Path) -> None:
    work = calibration_run / "work_dirs" / "calibration_tiny"  # export.work_dir, relative to the cwd
    results = json.loads((work / "results.json").read_text())
    assert results["status"] == "succeeded" and results["verification"]["passed"] is True
    assert results["verification"]["tolerance"] == 0.1  # AWML's value carried over
    assert set(results["evaluation"]) == {"pytorch:cpu", "onnxruntime:cpu"}  # tensorrt disabled in the fixture
    opset, inputs = _onnx_io(work / "onnx" / "calibration_classifier.onnx")
    assert opset == 16 and inputs == {"input": ["batch_size", 5, "height", "width"]}  # AWML's dynamic_axes


@pytest.mark.slow
def test_run_with_model_dir_naming_an_onnx_file(calibration_run: Path) -> None:
    """export.mode='none' + evaluation.backends.onnx.model_dir = a (relative) .onnx file from the first run."""
    model = "work_dirs/calibration_tiny/onnx/calibration_classifier.onnx"
    proc = _cli(
        calibration_run,
        "run",
        str(FIX / TINY[2]),
        "builtin:calibration/resnet18_5ch_tiny.py",
        "--device",
        "cpu",
        "--work-dir",
        "work_dirs/eval_only",
        "--cfg-options",
        "export.mode='none'",
        f"evaluation.backends.onnx.model_dir={model}",
        "evaluation.num_samples=4",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((calibration_run / "work_dirs" / "eval_only" / "results.json").read_text())
    assert results["status"] == "succeeded" and set(results["evaluation"]) == {"pytorch:cpu", "onnxruntime:cpu"}
    assert results["evaluation"]["pytorch:cpu"]["metrics"] == results["evaluation"]["onnxruntime:cpu"]["metrics"]
    assert not (calibration_run / "work_dirs" / "eval_only" / "onnx").exists()  # nothing exported


@pytest.mark.slow
def test_run_yolox_tiny_with_awml_deploy_config(tmp_path: Path) -> None:
    proc = _cli(
        tmp_path,
        "run",
        str(FIX / TINY[1]),
        "builtin:yolox/yolox_tiny_256.py",
        "--device",
        "cpu",
        "--work-dir",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["status"] == "succeeded" and results["verification"]["passed"] is True
    opset, inputs = _onnx_io(tmp_path / "out" / "onnx" / "yolox_s_opt_elan.onnx")  # AWML's save_file
    assert opset == 16 and inputs == {"images": [1, 3, 256, 256]}  # batch_size=1 wins over dynamic_axes, as in AWML


@pytest.mark.slow
def test_run_centerpoint_tiny_with_awml_deploy_config(tmp_path: Path) -> None:
    proc = _cli(
        tmp_path,
        "run",
        str(FIX / TINY[0]),
        "builtin:centerpoint/centerpoint_tiny.py",
        "--device",
        "cpu",
        "--work-dir",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["status"] == "succeeded" and results["verification"]["passed"] is True
    # AWML's multi-file layout: one graph per component, named as AWML names them
    _, enc = _onnx_io(tmp_path / "out" / "onnx" / "pts_voxel_encoder.onnx")
    _, head = _onnx_io(tmp_path / "out" / "onnx" / "pts_backbone_neck_head.onnx")
    assert list(enc) == ["input_features"] and list(head) == ["spatial_features"]


AWML_MODEL = ROOT / "tests" / "fixtures" / "awml"
PLAN = {  # AWML-size deploy config → the AWML-style model config fixture it deploys, and the graphs' inputs
    "centerpoint_deploy_config.py": (
        "centerpoint/projects/CenterPoint/configs/t4dataset/Centerpoint/second_secfpn_4xb16_121m_base_amp.py",
        [
            "graph pts_voxel_encoder: input_features[-1, 32, 10]",
            "graph pts_backbone_neck_head: spatial_features[1, 32, 1020, 1020]",
        ],
    ),
    "yolox_opt_elan_deploy_config.py": (
        "yolox/projects/YOLOX_opt_elan/configs/t4dataset/YOLOX_opt-S-DynamicRecognition/yolox-s-opt-elan_960x960_300e_t4dataset.py",
        ["graph yolox: images[1, 3, 960, 960]"],
    ),
    "calibration_status_classification_deploy_config.py": (
        "calibration/projects/CalibrationStatusClassification/configs/t4dataset/resnet18_5ch_1xb16-50e_j6gen2.py",
        ["graph calibration_classifier: input[-1, 5, -1, -1]"],
    ),
}


@pytest.mark.parametrize("name", sorted(PLAN))
def test_check_config_plan_of_awml_size_deploy_config_with_awml_model_config(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dry run (graphs, and for mode 'both' the TensorRT profiles split per engine) agrees
    with the AWML-style model config at AWML size."""
    model, graphs = PLAN[name]
    rc = main(["check-config", str(FIX / name), str(AWML_MODEL / model)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    for g in graphs:
        assert g in out.out
    assert "plan ok" in out.out
    if "mode=both" in out.out:
        assert "TensorRT profiles cover them" in out.out


@pytest.mark.slow
def test_run_centerpoint_awml_deploy_config_on_a_t4_info_file_found_the_awml_way(tmp_path: Path) -> None:
    """AWML's deploy config names only ``runtime_io.info_file`` (relative to the working
    directory); AWML's CenterPoint loader joins the info file's relative lidar paths to the
    model config's ``data_root``, 'data/t4dataset/' when it has none, which is the case for
    this AWML-style tiny model config. The data lives where AWML would look for it."""
    from modeldeploy.projects.centerpoint.synthetic import INFO_FILE_NAME, generate_dataset

    generate_dataset(tmp_path / "data" / "t4dataset", num_frames=3, seed=31)
    model = (
        AWML_MODEL
        / "centerpoint/projects/CenterPoint/configs/t4dataset/Centerpoint/pillar_032_tiny_secfpn_1xb2_25m_base.py"
    )
    proc = _cli(
        tmp_path,
        "run",
        str(FIX / TINY[0]),
        str(model),
        "--device",
        "cpu",
        "--work-dir",
        "out",
        "--cfg-options",
        f"runtime_io.info_file=data/t4dataset/{INFO_FILE_NAME}",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["status"] == "succeeded" and results["verification"]["passed"] is True
    assert set(results["evaluation"]) == {"pytorch:cpu", "onnxruntime:cpu"}
    assert not (tmp_path / "cache" / "datasets").exists()  # the info file's data, not the bundled sample
