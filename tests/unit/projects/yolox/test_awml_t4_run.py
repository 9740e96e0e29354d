"""What an AWML YOLOX user brings, end to end: the project's AWML-style model config
(tests/fixtures/awml, ``_base_`` chain with the T4 dataset base and its class list), an
``epoch_N.pth`` written by mmengine's own Runner with EMAHook, and a T4 2D info file —
``modeldeploy run ... --device cpu`` exports, verifies PyTorch against ONNX Runtime on the
T4 images and scores them with the COCO view of the info file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.unit.awml import runner_checkpoints as rc
from tests.unit.projects.yolox.test_t4_info import _write_t4

FIXTURE = (
    Path(__file__).resolve().parents[3]
    / "fixtures"
    / "awml"
    / "yolox"
    / "projects"
    / "YOLOX_opt_elan"
    / "configs"
    / "t4dataset"
    / "YOLOX_opt-S-DynamicRecognition"
    / "yolox-tiny-opt-elan_256x256_t4dataset.py"
)


@pytest.fixture(scope="module")
def runner_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modeldeploy.config.deploy_config import read_mmengine_config
    from modeldeploy.projects.yolox.project import YOLOXProject

    torch.manual_seed(0)
    net = YOLOXProject().build_model(read_mmengine_config(FIXTURE))
    return rc.train_with_runner(
        net, rc.yolox_samples(64), rc.yolox_loss, tmp_path_factory.mktemp("yolox_runner"), ema=True, optimizer="SGD"
    )


def test_awml_config_runner_checkpoint_and_t4_info_verify_and_evaluate(tmp_path: Path, runner_ckpt: Path) -> None:
    info = _write_t4(tmp_path / "t4")
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        textwrap.dedent(f"""
        project = "yolox"
        export = dict(mode="onnx")
        runtime_io = dict(info_file={str(info)!r}, data_root={str(info.parent)!r})
        model_io = dict(input_name="images", input_shape=(3, 256, 256), output_name="output",
                        dynamic_axes={{"images": {{0: "batch_size"}}, "output": {{0: "batch_size"}}}})
        onnx_config = dict(save_file="yolox.onnx", decode_in_inference=False, exporter="legacy")
        yolox = dict(nms_in_graph=False, replace_relu6=True)
        verification = dict(enabled=True, num_verify_samples=3, tolerance=1e-3)
        evaluation = dict(enabled=True, num_samples=-1, warmup=0, backends=dict(pytorch=dict(), onnxruntime=dict()))
    """)
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, torch; torch.set_num_threads(1); from modeldeploy.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            str(deploy),
            str(FIXTURE),
            str(runner_ckpt),
            "--device",
            "cpu",
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "work" / "results.json").read_text())
    assert res["status"] == "succeeded"
    v = res["verification"]
    assert v["passed"] and v["num_samples"] == 3 and {c["test"] for c in v["comparisons"]} == {"onnxruntime:cpu"}
    assert all(c["samples"] == 3 and c["max_abs_diff"] <= 1e-3 for c in v["comparisons"])
    for backend in ("pytorch:cpu", "onnxruntime:cpu"):
        m = res["evaluation"][backend]["metrics"]
        assert m["num_images"] == 3 and set(m["per_class"]) == {
            "unknown",
            "car",
            "truck",
            "bus",
            "trailer",
            "motorcycle",
            "pedestrian",
            "bicycle",
        }
        assert 0.0 <= m["mAP"] <= 1.0
    names = {Path(a["name"]).name for a in res["artifacts"]}
    assert {"yolox.onnx", "ground_truth.json", "onnxruntime_cpu.json"} <= names
