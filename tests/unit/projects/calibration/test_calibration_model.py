"""Model structure: mmpretrain state-dict names, config validation, strict checkpoint loading."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import modeldeploy.projects.calibration as calibration_pkg
from modeldeploy.config import load_mmengine_config
from modeldeploy.core.checkpoint import load_weights
from modeldeploy.errors import CheckpointError, ConfigError
from modeldeploy.projects.calibration.model import build_classifier
from modeldeploy.projects.calibration.project import CalibrationProject

CONFIG_DIR = Path(calibration_pkg.__file__).parent / "configs"

AWML_MODEL = dict(
    type="mmpretrain.ImageClassifier",
    backbone=dict(
        type="ResNet",
        depth=18,
        in_channels=5,
        num_stages=4,
        out_indices=(3,),
        frozen_stages=-1,
        style="pytorch",
        norm_cfg=dict(type="BN", requires_grad=True),
    ),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(
        type="LinearClsHead",
        num_classes=2,
        in_channels=512,
        loss=dict(type="LabelSmoothLoss", loss_weight=1.0, label_smooth_val=0.1, reduction="mean"),
        topk=(1,),
    ),
)

# Names copied from an mmpretrain ResNet-18 ImageClassifier state dict (spot checks).
MMPRETRAIN_KEYS = [
    "backbone.conv1.weight",
    "backbone.bn1.weight",
    "backbone.bn1.bias",
    "backbone.bn1.running_mean",
    "backbone.bn1.running_var",
    "backbone.bn1.num_batches_tracked",
    "backbone.layer1.0.conv1.weight",
    "backbone.layer1.0.bn1.weight",
    "backbone.layer1.0.bn1.running_var",
    "backbone.layer1.0.conv2.weight",
    "backbone.layer1.0.bn2.bias",
    "backbone.layer1.1.bn2.num_batches_tracked",
    "backbone.layer2.0.conv1.weight",
    "backbone.layer2.0.downsample.0.weight",
    "backbone.layer2.0.downsample.1.weight",
    "backbone.layer2.0.downsample.1.running_mean",
    "backbone.layer2.0.downsample.1.num_batches_tracked",
    "backbone.layer3.1.conv2.weight",
    "backbone.layer4.0.downsample.0.weight",
    "backbone.layer4.1.bn2.running_var",
    "head.fc.weight",
    "head.fc.bias",
]
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def mmpretrain_resnet18_state_dict(in_channels: int = 5, num_classes: int = 2) -> OrderedDict[str, torch.Tensor]:
    """An independent enumeration of mmpretrain's ResNet-18 naming and shapes (as in an AWML checkpoint)."""
    g = torch.Generator().manual_seed(0)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()

    def bn(prefix: str, c: int) -> None:
        for n in _BN:
            sd[f"{prefix}.{n}"] = torch.tensor(7) if n == "num_batches_tracked" else torch.rand(c, generator=g) + 0.5

    sd["backbone.conv1.weight"] = torch.randn(64, in_channels, 7, 7, generator=g) * 0.05
    bn("backbone.bn1", 64)
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for blk in range(2):
            p = f"backbone.layer{stage}.{blk}"
            first_in = cin if blk == 0 else cout
            sd[f"{p}.conv1.weight"] = torch.randn(cout, first_in, 3, 3, generator=g) * 0.05
            bn(f"{p}.bn1", cout)
            sd[f"{p}.conv2.weight"] = torch.randn(cout, cout, 3, 3, generator=g) * 0.05
            bn(f"{p}.bn2", cout)
            if blk == 0 and stage > 1:
                sd[f"{p}.downsample.0.weight"] = torch.randn(cout, cin, 1, 1, generator=g) * 0.05
                bn(f"{p}.downsample.1", cout)
        cin = cout
    sd["head.fc.weight"] = torch.randn(num_classes, 512, generator=g) * 0.05
    sd["head.fc.bias"] = torch.zeros(num_classes)
    return sd


def test_state_dict_keys_follow_mmpretrain_names() -> None:
    keys = list(build_classifier(AWML_MODEL).state_dict())
    missing = [k for k in MMPRETRAIN_KEYS if k not in keys]
    assert not missing, missing
    assert len(keys) == 122  # 62 parameters + 60 BN buffers for ResNet-18
    assert not any(k.startswith("neck.") for k in keys)  # GlobalAveragePooling has no parameters
    assert "backbone.layer1.0.downsample.0.weight" not in keys  # stem 64 -> layer1 64: no projection


def test_mmpretrain_shaped_state_dict_loads_strict_and_is_used() -> None:
    model = build_classifier(AWML_MODEL).eval()
    sd = mmpretrain_resnet18_state_dict()
    assert set(sd) == set(model.state_dict())
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.head.fc.weight, sd["head.fc.weight"])
    out = model(torch.rand(2, 5, 64, 96))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_tiny_config_builds_a_narrow_resnet18() -> None:
    model = CalibrationProject().build_model(load_mmengine_config(CONFIG_DIR / "resnet18_5ch_tiny.py"))
    sd = model.state_dict()
    assert len(sd) == 122  # stem 16 == base 16: same layout as the 64-wide model
    assert sd["backbone.conv1.weight"].shape == (16, 5, 7, 7)
    assert sd["head.fc.weight"].shape == (2, 128)
    assert not model.training


def test_awml_size_config_matches_awml_checkpoint_layout() -> None:
    model = CalibrationProject().build_model(load_mmengine_config(CONFIG_DIR / "resnet18_5ch.py"))
    sd = mmpretrain_resnet18_state_dict()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("backbone", "depth"), 50, "depth"),
        (("backbone", "deep_stem"), True, "deep_stem"),
        (("backbone", "out_indices"), (2, 3), "out_indices"),
        (("backbone", "norm_cfg"), dict(type="SyncBN"), "norm_cfg"),
        (("backbone", "widen"), 2, "widen"),
        (("head", "in_channels"), 256, "in_channels"),
        (("head", "type"), "StackedLinearClsHead", "head.type"),
        (("neck",), dict(type="GeneralizedMeanPooling"), "neck"),
        (("type",), "ImageToImageRetriever", "model.type"),
    ],
)
def test_unsupported_model_config_is_a_config_error(path: tuple[str, ...], value: object, needle: str) -> None:
    cfg = copy.deepcopy(AWML_MODEL)
    target = cfg
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as ei:
        build_classifier(cfg)
    assert needle in str(ei.value)


def test_project_rejects_wrong_channel_or_class_count() -> None:
    for key, value, needle in (
        ("backbone", dict(AWML_MODEL["backbone"], in_channels=3), "in_channels"),
        ("head", dict(AWML_MODEL["head"], num_classes=3), "num_classes"),
    ):
        with pytest.raises(ConfigError, match=needle):
            CalibrationProject().build_model({"model": dict(AWML_MODEL, **{key: value})})


def test_bad_data_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="calibration_data.miscalibration"):
        CalibrationProject().build_model(
            {"model": AWML_MODEL, "calibration_data": dict(miscalibration=dict(min_rotation_deg=5, max_rotation_deg=1))}
        )
    with pytest.raises(ConfigError, match="unknown key 'calibration_data.max_dept'"):
        CalibrationProject().build_model({"model": AWML_MODEL, "calibration_data": dict(max_dept=10)})


def test_mmengine_style_checkpoint_loads_through_load_weights(tmp_path) -> None:
    path = tmp_path / "awml.pth"
    sd = mmpretrain_resnet18_state_dict()
    torch.save({"meta": {"epoch": 3, "mmpretrain_version": "1.2.0"}, "state_dict": sd}, path)
    model = load_weights(build_classifier(AWML_MODEL), path)
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, sd["backbone.layer4.1.bn2.running_var"])


def test_not_a_checkpoint_is_a_checkpoint_error(tmp_path) -> None:
    bogus = tmp_path / "model.pth"
    bogus.write_text("model = dict(type='ImageClassifier')\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_weights(build_classifier(AWML_MODEL), bogus)


def test_mismatched_keys_are_a_checkpoint_error(tmp_path) -> None:
    sd = mmpretrain_resnet18_state_dict()
    renamed = OrderedDict((k.replace("backbone.bn1.", "backbone.norm1."), v) for k, v in sd.items())  # wrong stem name
    path = tmp_path / "renamed.pth"
    torch.save({"state_dict": renamed}, path)
    with pytest.raises(CheckpointError) as ei:
        load_weights(build_classifier(AWML_MODEL), path)
    assert ei.value.reason == "CheckpointMismatch"
    assert "backbone.bn1.weight" in str(ei.value) and "backbone.norm1.weight" in str(ei.value)


def test_wrong_width_checkpoint_is_a_checkpoint_error(tmp_path) -> None:
    path = tmp_path / "awml.pth"
    torch.save({"state_dict": mmpretrain_resnet18_state_dict()}, path)
    tiny = CalibrationProject().build_model(load_mmengine_config(CONFIG_DIR / "resnet18_5ch_tiny.py"))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_weights(tiny, path)
