"""`modeldeploy check-config DEPLOY MODEL`: the dry run of the whole export plan (no
checkpoint, no data, no GPU) — the graphs `run` would export and their TensorRT profiles."""

from __future__ import annotations

import json

from modeldeploy.cli import main

DEPLOY, MODEL = "builtin:yolox/deploy_tiny.py", "builtin:yolox/yolox_tiny_256.py"
BOTH = ["export.mode=both", "export.device=cuda"]


def _profile(component: str) -> dict:
    shape = {"min_shape": [1, 3, 256, 256], "opt_shape": [1, 3, 256, 256], "max_shape": [2, 3, 256, 256]}
    return {"component": component, "input_shapes": {"images": shape}}


def test_check_config_with_model_cfg_lists_the_graphs_and_checks_profiles(capsys) -> None:
    rc = main(["check-config", DEPLOY, MODEL, "--cfg-options", *BOTH])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "graph yolox: images[-1, 3, 256, 256]" in out.out and "graph yolox_nms:" in out.out
    assert "plan ok (2 graph(s), TensorRT profiles cover them)" in out.out
    # the tiny deploy config evaluates only pytorch/onnxruntime: the engine it would build is flagged
    assert "warning:" in out.out and "does not evaluate it" in out.out


def test_check_config_refuses_a_plan_whose_graph_has_no_profile_in_one_line(capsys) -> None:
    only_main = json.dumps([_profile("yolox")])
    rc = main(["check-config", DEPLOY, MODEL, "--cfg-options", *BOTH, f"backend_config.model_inputs={only_main}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "yolox_nms" in err[0] and "has no profile" in err[0] and "fix:" in err[0]


def test_check_config_without_model_cfg_reads_only_the_deploy_config(capsys) -> None:
    rc = main(["check-config", DEPLOY])
    out = capsys.readouterr().out
    assert rc == 0 and "graph" not in out and "project=yolox" in out
