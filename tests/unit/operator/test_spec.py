import json
import shlex

import pytest

from modeldeploy_operator import spec as specmod

from .samples import deployment


def test_spec_hash_is_stable_under_key_order_and_changes_with_content():
    a = deployment()["spec"]
    b = json.loads(json.dumps(a, sort_keys=True))
    reordered = dict(reversed(list(b.items())))
    assert specmod.spec_hash(a) == specmod.spec_hash(reordered)
    changed = deployment(export={"mode": "onnx", "precision": "fp16", "opset": 18})["spec"]
    assert specmod.spec_hash(changed) != specmod.spec_hash(a)
    assert len(specmod.spec_hash(a)) == 64


def test_spec_hash_golden_value_pins_the_canonical_form():
    # Changing canonical_json would give every existing CR a new hash → a re-run of every
    # deployment after an operator upgrade. This pins it.
    assert specmod.spec_hash({"b": 1, "a": [1, "x"]}) == specmod.spec_hash({"a": [1, "x"], "b": 1})
    assert specmod.canonical_json({"b": 1, "a": [1, "x"]}) == '{"a":[1,"x"],"b":1}'


@pytest.mark.parametrize("name", ["demo", "a" * 63, "x" * 200, "ends-with-dash-" + "-" * 60])
def test_child_name_is_a_valid_63_char_name_with_hash_suffix(name):
    out = specmod.child_name(name, "0123456789abcdef")
    assert len(out) <= 63
    assert out.endswith("-01234567")
    assert not out.startswith("-") and "--01234567" not in out


def test_cfg_options_render_only_set_fields_with_runtime_keys():
    spec = deployment(
        export={
            "mode": "trt",
            "precision": "fp16",
            "opset": 17,
            "workspaceMiB": 2048,
            "profiles": [{"input": "input", "min": [1, 5, 64, 64], "opt": [1, 5, 256, 256], "max": [4, 5, 512, 512]}],
        },
        verification={"enabled": True, "tolerance": 0.01, "numSamples": 3},
        evaluation={"enabled": False},
        dataset={"uri": "s3://data/calib/", "infoFile": "info.pkl"},
    )["spec"]
    opts = specmod.cfg_options(spec)
    assert "export.mode=trt" in opts
    assert "backend_config.common_config.precision_policy=fp16" in opts
    assert "onnx_config.opset_version=17" in opts
    assert f"backend_config.common_config.max_workspace_size={2048 << 20}" in opts
    assert "verification.tolerance=0.01" in opts and "verification.num_verify_samples=3" in opts
    assert "evaluation.enabled=false" in opts and "verification.enabled=true" in opts
    assert "runtime_io.data_root=s3://data/calib/" in opts and "runtime_io.info_file=info.pkl" in opts
    prof = [o for o in opts if o.startswith("backend_config.model_inputs=")][0]
    value = json.loads(prof.split("=", 1)[1])
    assert value == [
        {
            "component": None,
            "input_shapes": {
                "input": {"min_shape": [1, 5, 64, 64], "opt_shape": [1, 5, 256, 256], "max_shape": [4, 5, 512, 512]}
            },
        }
    ]
    assert not any(o.startswith("evaluation.num_samples") for o in opts)


def test_cfg_options_absent_sections_render_nothing():
    spec = deployment()["spec"]
    spec.pop("export")
    assert specmod.cfg_options(spec) == []


def test_command_line_quoting_is_shell_safe_and_round_trips():
    hostile = "s3://b/k; rm -rf / $(whoami) 'quote\" `tick`"
    spec = deployment(dataset={"uri": hostile})["spec"]
    args = specmod.runtime_args(spec, "f" * 64)
    # The hostile value is one argv element, glued to its key, never split into options.
    assert f"runtime_io.data_root={hostile}" in args
    assert shlex.split(specmod.command_line(args)) == ["modeldeploy", *args]


def test_runtime_args_follow_the_contract():
    spec = deployment()["spec"]
    args = specmod.runtime_args(spec, "abcdef0123456789" * 4)
    assert args[:4] == [
        "run",
        "/etc/modeldeploy/job/deploy_config.py",
        "builtin:calibration/model.py",
        "s3://models/calib/epoch_10.pth",
    ]
    i = args.index("--artifact-uri")
    assert args[i + 1] == "s3://artifacts/calib/abcdef01"
    assert args[args.index("--termination-log") + 1] == "/dev/termination-log"
    assert args[args.index("--log-format") + 1] == "json"
    assert args[args.index("--work-dir") + 1] == "/work"
    assert args[args.index("--device") + 1] == "cpu"
    # spec.project travels as MODELDEPLOY_EXPECTED_PROJECT (jobs.py), not as a flag an older runtime would refuse
    assert "--project" not in args


def test_config_map_key_ref_maps_to_user_mount():
    spec = deployment(modelConfig={"configMapKeyRef": {"name": "cfgs", "key": "m.py"}})["spec"]
    assert specmod.config_location(spec, "modelConfig") == "/etc/modeldeploy/user/modelConfig/model_config.py"


def test_device_defaults_to_cuda_for_tensorrt():
    assert specmod.effective_device(deployment(export={"mode": "both"})["spec"]) == "cuda"
    assert specmod.effective_device(deployment(export={"mode": "onnx"})["spec"]) == "cpu"
    assert specmod.effective_device(deployment(runtime={"device": "cuda"})["spec"]) == "cuda"


def test_artifact_prefix_is_per_namespace_name_and_generation():
    spec = deployment()["spec"]
    h = specmod.spec_hash(spec)
    a = specmod.artifact_uri(spec, h, "team-a", "demo", 1)
    b = specmod.artifact_uri(spec, h, "team-b", "demo", 1)
    assert a == "s3://artifacts/calib/team-a/demo/g1" and b == "s3://artifacts/calib/team-b/demo/g1"
    assert specmod.artifact_uri(spec, h, "team-a", "demo", 2) == "s3://artifacts/calib/team-a/demo/g2"
    args = specmod.runtime_args(spec, h, namespace="team-a", name="demo", generation=3)
    assert args[args.index("--artifact-uri") + 1] == "s3://artifacts/calib/team-a/demo/g3"
