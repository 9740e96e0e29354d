"""Export without data: a deploy config, a model config and a checkpoint are enough.

Per project, ``modeldeploy run DEPLOY MODEL_CFG CKPT --device cpu`` (a real subprocess)
with no ``runtime_io`` and a model config that names no bundled sample: exit 0, valid ONNX
whose inputs/outputs are the deploy config's ``model_io``, verification/evaluation skipped
with a logged line. A deploy config that *configures* verification or evaluation without
data ends with exit 2 and one DataError line, before any export.
CenterPoint's hook is covered by its own project's tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

CONFIGS = Path(__file__).resolve().parents[3] / "runtime" / "modeldeploy" / "projects"

# project → (model config written for the test, deploy config body, checkpoint,
#            {onnx file: ({input: graph dims}, {output: shape ORT returns for a batch of 2, or None})})
CASES = {
    "yolox": (
        # the tiny demo model, minus its opt-in to the bundled synthetic set: no data at all
        f"""
        _base_ = [{str(CONFIGS / "yolox" / "configs" / "yolox_tiny_256.py")!r}]
        yolox_data = dict(_delete_=True, img_scale=(256, 256), pad_val=114.0)
        """,
        """
        project = "yolox"
        export = dict(mode="onnx")
        model_io = dict(input_name="images", input_shape=(3, 256, 256), output_name="output",
                        dynamic_axes={"images": {0: "batch_size"}, "output": {0: "batch_size"}})
        onnx_config = dict(save_file="yolox_tiny.onnx", decode_in_inference=False, exporter="legacy")
        yolox = dict(nms_in_graph=True, replace_relu6=False)
        """,
        "builtin:yolox/yolox_tiny_256.pth",
        {
            "yolox_tiny.onnx": ({"images": ["batch_size", 3, 256, 256]}, {"output": (2, 1344, 9)}),
            "yolox_tiny_nms.onnx": (
                {"images": ["batch_size", 3, 256, 256]},
                {"num_dets": None, "det_boxes": None, "det_scores": None, "det_classes": None},
            ),
        },
    ),
    "calibration": (
        f"""
        _base_ = [{str(CONFIGS / "calibration" / "configs" / "resnet18_5ch_tiny.py")!r}]
        calibration_data = dict(_delete_=True, max_depth=128.0, dilation_size=1)
        """,
        """
        project = "calibration"
        export = dict(mode="onnx")
        model_io = dict(input_name="input", input_shape=(5, 120, 200), output_name="output",
                        dynamic_axes={"input": {0: "batch_size", 2: "height", 3: "width"}, "output": {0: "batch_size"}})
        onnx_config = dict(save_file="calibration_classifier.onnx")
        """,
        "builtin:calibration/resnet18_5ch_tiny.pth",
        {"calibration_classifier.onnx": ({"input": ["batch_size", 5, "height", "width"]}, {"output": (2, 2)})},
    ),
}


def _write(tmp_path: Path, project: str, extra_deploy: str = "") -> tuple[Path, Path, str]:
    model_text, deploy_text, ckpt, _ = CASES[project]
    model = tmp_path / "model_cfg.py"
    model.write_text(textwrap.dedent(model_text))
    deploy = tmp_path / "deploy.py"
    deploy.write_text(textwrap.dedent(deploy_text) + textwrap.dedent(extra_deploy))
    return deploy, model, ckpt


def _run(tmp_path: Path, deploy: Path, model: Path, ckpt: str) -> subprocess.CompletedProcess[str]:
    env_cmd = [
        sys.executable,
        "-c",
        "import sys, torch; torch.set_num_threads(1); from modeldeploy.cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    return subprocess.run(
        [*env_cmd, "run", str(deploy), str(model), ckpt, "--device", "cpu", "--work-dir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("project", sorted(CASES))
def test_export_only_without_data_exits_0_with_valid_onnx(tmp_path: Path, project: str) -> None:
    deploy, model, ckpt = _write(tmp_path, project)
    proc = _run(tmp_path, deploy, model, ckpt)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exporting from a synthesised example input" in proc.stderr
    assert (
        "verification skipped: no dataset configured" in proc.stderr
        and "evaluation skipped: no dataset configured" in proc.stderr
    )
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["status"] == "succeeded" and results["verification"] is None and results["evaluation"] == {}
    expected = CASES[project][3]
    onnx_names = sorted(Path(a["name"]).name for a in results["artifacts"] if a["kind"] == "onnx")
    assert onnx_names == sorted(expected)
    for name, (inputs, outputs) in expected.items():
        path = tmp_path / "work" / "onnx" / name
        m = onnx.load(str(path))
        onnx.checker.check_model(m, full_check=True)
        assert {i.name: _dims(i) for i in m.graph.input} == inputs
        assert {o.name for o in m.graph.output} == set(outputs)
        # the graph runs on an input of the declared shape (batch 2) and gives finite outputs
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {
            i.name: np.random.default_rng(0)
            .uniform(0, 1, [2 if d == "batch_size" else (d if isinstance(d, int) else 64) for d in _dims(i)])
            .astype(np.float32)
            for i in m.graph.input
        }
        names = [o.name for o in sess.get_outputs()]
        for out_name, out in zip(names, sess.run(None, feed)):
            assert np.isfinite(out.astype(np.float64)).all()
            if outputs[out_name] is not None:
                assert out.shape == outputs[out_name]


@pytest.mark.parametrize(
    "project,extra,stage",
    [
        ("yolox", "verification = dict(enabled=True)\n", "verification"),
        ("calibration", "evaluation = dict(num_samples=10)\n", "evaluation"),
    ],
    ids=["yolox-verification", "calibration-evaluation"],
)
def test_configured_stage_without_data_is_one_data_error_line(
    tmp_path: Path, project: str, extra: str, stage: str
) -> None:
    deploy, model, ckpt = _write(tmp_path, project, extra)
    proc = _run(tmp_path, deploy, model, ckpt)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("modeldeploy: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert (
        f"DataError: {stage} needs data but no dataset is configured" in lines[0] and "runtime_io.info_file" in lines[0]
    )
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["status"] == "failed" and results["failure"]["stage"] == "load"
    assert not (tmp_path / "work" / "onnx").exists()  # refused before any export work


def test_stages_switched_off_explicitly_export_without_data_in_process(tmp_path: Path) -> None:
    """The documented export-only override (enabled=False) for a config that configures both stages."""
    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.runners import DeploymentRunner

    extra = "verification = dict(enabled=True, tolerance=1e-3)\nevaluation = dict(num_samples=10)\n"
    deploy, model, ckpt = _write(tmp_path, "calibration", extra)
    cfg = BaseDeploymentConfig.fromfile(
        deploy, {"export.work_dir": str(tmp_path / "work"), "verification.enabled": False, "evaluation.enabled": False}
    )
    out = DeploymentRunner(cfg, str(model), ckpt).run()
    assert out.exit_code == 0, out.results["failure"]
    assert out.results["verification"] is None and out.results["evaluation"] == {}
    onnx.checker.check_model(onnx.load(str(tmp_path / "work" / "onnx" / "calibration_classifier.onnx")))


def test_tensorrt_stage_builds_from_the_data_free_onnx_with_a_tensorrt_double(tmp_path: Path) -> None:
    """TensorRT cannot be installed here: a test double stands in for the engine builder and
    records what the runner hands it. Mode 'both' on CUDA, no data: the builder gets the ONNX
    traced from the synthesised input; the default (unconfigured) verification is skipped."""
    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.exporters.base import ExportedModel
    from modeldeploy.runners import DeploymentRunner

    deploy, model, ckpt = _write(tmp_path, "calibration")
    cfg = BaseDeploymentConfig.fromfile(
        deploy, {"export.work_dir": str(tmp_path / "work"), "export.mode": "both", "export.device": "cuda:0"}
    )
    seen: dict[str, Path] = {}

    def fake_trt(onnx_models: dict, out_dir: Path, cfg: BaseDeploymentConfig) -> dict:
        out_dir.mkdir(parents=True, exist_ok=True)
        engines = {}
        for name, m in onnx_models.items():
            onnx.checker.check_model(onnx.load(str(m.path)))
            seen[name] = m.path
            engine = out_dir / (m.path.stem + ".engine")
            engine.write_bytes(b"test double, not an engine")
            engines[name] = ExportedModel(name, engine, input_names=m.input_names, output_names=m.output_names)
        return engines

    out = DeploymentRunner(cfg, str(model), ckpt, export_tensorrt_fn=fake_trt).run()
    assert out.exit_code == 0, out.results["failure"]
    assert (
        set(seen) == {"calibration_classifier"} and seen["calibration_classifier"].name == "calibration_classifier.onnx"
    )
    assert {a["kind"] for a in out.results["artifacts"]} >= {"onnx", "engine"} and out.results["verification"] is None


def test_explicit_int8_without_data_is_refused_at_load_in_process(tmp_path: Path) -> None:
    """In-process (no subprocess): the runner refuses INT8 Q/DQ calibration without data."""
    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.runners import DeploymentRunner

    deploy, model, ckpt = _write(
        tmp_path, "calibration", "backend_config = dict(common_config=dict(precision_policy='explicit_int8'))\n"
    )
    cfg = BaseDeploymentConfig.fromfile(deploy, {"export.work_dir": str(tmp_path / "work")})
    out = DeploymentRunner(cfg, str(model), ckpt).run()
    assert out.exit_code == 2 and out.results["failure"]["stage"] == "load"
    assert "explicit_int8 quantization needs calibration data" in out.results["failure"]["message"]


@pytest.mark.slow
def test_awml_size_yolox_exports_without_data(tmp_path: Path) -> None:
    """The builtin AWML-size deploy config (export only) with the AWML-size model config and a
    checkpoint of that architecture (random weights: what is under test is the data-free
    export, not accuracy). Single graph (no NMS variant) to keep it within a minute on a CPU."""
    import torch
    from mmengine.config import Config

    from modeldeploy.projects.yolox.project import YOLOXProject

    torch.manual_seed(0)
    net = YOLOXProject().build_model(Config.fromfile(str(CONFIGS / "yolox" / "configs" / "yolox_s_opt_elan_960.py")))
    ckpt = tmp_path / "epoch_300.pth"
    torch.save({"meta": {"epoch": 300}, "state_dict": net.state_dict()}, ckpt)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, torch; torch.set_num_threads(1); from modeldeploy.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            "builtin:yolox/deploy_awml_960_onnx.py",
            "builtin:yolox/yolox_s_opt_elan_960.py",
            str(ckpt),
            "--device",
            "cpu",
            "--work-dir",
            str(tmp_path / "work"),
            "--cfg-options",
            "yolox.nms_in_graph=False",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = tmp_path / "work" / "onnx" / "yolox_opt_elan.onnx"
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    assert {i.name: _dims(i) for i in m.graph.input} == {"images": ["batch_size", 3, 960, 960]}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"images": np.full((1, 3, 960, 960), 114.0, np.float32)})
    assert out.shape == (1, 120 * 120 + 60 * 60 + 30 * 30, 4 + 1 + 8) and np.isfinite(out).all()  # 8 AWML classes


AWML_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "awml"


@pytest.mark.parametrize("project", ["calibration", "yolox"])
def test_awml_style_config_and_runner_checkpoint_export_without_data_in_process(tmp_path: Path, project: str) -> None:
    """AWML's config files (the project's AWML-style fixtures: _base_ chains, custom_imports,
    no bundled sample) and an mmengine Runner checkpoint, no data at all: export succeeds."""
    import torch

    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.config.deploy_config import read_mmengine_config
    from modeldeploy.projects import get_project
    from modeldeploy.runners import DeploymentRunner
    from tests.unit.awml import runner_checkpoints as rc

    if project == "calibration":
        model_cfg = (
            AWML_FIXTURES
            / "calibration/projects/CalibrationStatusClassification/configs/t4dataset/resnet18_5ch_tiny_1xb4-1e_j6gen2.py"
        )
    else:
        model_cfg = (
            AWML_FIXTURES
            / "yolox/projects/YOLOX_opt_elan/configs/t4dataset/YOLOX_opt-S-DynamicRecognition/yolox-tiny-opt-elan_256x256_t4dataset.py"
        )
    torch.manual_seed(0)
    net = get_project(project).build_model(read_mmengine_config(model_cfg))
    if project == "calibration":
        ckpt = rc.train_with_runner(net, rc.calibration_samples(), rc.calibration_loss, tmp_path / "train", ema=False)
    else:
        ckpt = rc.train_with_runner(
            net, rc.yolox_samples(64), rc.yolox_loss, tmp_path / "train", ema=True, optimizer="SGD"
        )
    _, deploy_text, _, expected = CASES[project]
    deploy = tmp_path / "deploy.py"
    deploy.write_text(textwrap.dedent(deploy_text))
    cfg = BaseDeploymentConfig.fromfile(deploy, {"export.work_dir": str(tmp_path / "work")})
    out = DeploymentRunner(cfg, str(model_cfg), str(ckpt)).run()
    assert out.exit_code == 0, out.results["failure"]
    assert out.results["verification"] is None and out.results["evaluation"] == {}
    for name in expected:
        onnx.checker.check_model(onnx.load(str(tmp_path / "work" / "onnx" / name)))
