"""mmengine Runner checkpoints (what AWML training writes) load through each project's
normal load path, with and without EMAHook, without an unrestricted unpickler."""

from __future__ import annotations

import io
import pickletools
import zipfile

import numpy as np
import pytest
import torch

from modeldeploy.config import BaseDeploymentConfig
from modeldeploy.core.checkpoint import read_checkpoint
from modeldeploy.core.safe_unpickle import InertHistoryBuffer
from modeldeploy.projects import get_project
from tests.unit.awml.conftest import build

PROJECTS = ("calibration", "centerpoint", "yolox")


def pickled_globals(path) -> set[str]:
    """The globals the checkpoint's pickle references (read without unpickling)."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    out = io.StringIO()
    pickletools.dis(data, out=out)
    return {
        line.split("GLOBAL", 1)[1].strip().strip("'").replace(" ", ".")
        for line in out.getvalue().splitlines()
        if "GLOBAL" in line
    }


def deploy_cfg(project: str, use_ema: bool) -> BaseDeploymentConfig:
    return BaseDeploymentConfig.from_dict(
        {"project": project, "use_ema": use_ema, "export": {"mode": "onnx", "device": "cpu"}}
    )


@pytest.mark.parametrize("ema", [False, True], ids=["plain", "emahook"])
@pytest.mark.parametrize("project", PROJECTS)
def test_runner_checkpoint_of_tiny_model_loads_through_project(project: str, ema: bool, runner_checkpoint) -> None:
    rc = runner_checkpoint(project, "tiny", ema)
    globs = pickled_globals(rc.path)
    # what makes torch's weights-only loader refuse these files: mmengine's HistoryBuffer
    # pickles its statistics table through builtins.getattr
    assert "mmengine.logging.history_buffer.HistoryBuffer" in globs
    assert "__builtin__.getattr" in globs or "builtins.getattr" in globs
    with pytest.raises(Exception, match="getattr|HistoryBuffer"):
        torch.load(rc.path, map_location="cpu", weights_only=True)

    ckpt = read_checkpoint(rc.path)
    expected = {"meta", "state_dict", "message_hub", "optimizer", "param_schedulers"} | (
        {"ema_state_dict"} if ema else set()
    )
    assert set(ckpt) == expected
    assert ckpt["meta"]["iter"] == 2 and "cfg" in ckpt["meta"]
    buffers = ckpt["message_hub"]["log_scalars"]
    assert "train/loss" in buffers and isinstance(buffers["train/loss"], InertHistoryBuffer)
    losses = buffers["train/loss"]._log_history
    assert isinstance(losses, np.ndarray) and losses.shape == (2,) and np.isfinite(losses).all()
    assert ckpt["optimizer"]["state"], "the optimizer stepped"
    assert ckpt["param_schedulers"][0]["last_step"] >= 1

    _, model = build(project, "tiny")
    get_project(project).load_checkpoint(model, str(rc.path), deploy_cfg(project, use_ema=ema))
    loaded = model.state_dict()
    assert set(loaded) == set(ckpt["state_dict"])
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(loaded[k], v), k
    trained = [
        k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and not torch.equal(v, rc.initial_state[k])
    ]
    assert trained, "two Runner iterations changed no weight"
    if ema:
        # EMAHook swaps before saving: state_dict = averaged weights (deployed with use_ema),
        # ema_state_dict = the raw ones under 'module.' + a 'steps' counter
        raw = ckpt["ema_state_dict"]
        assert int(raw["steps"]) == 2 and all(k == "steps" or k.startswith("module.") for k in raw)
        assert any(not torch.equal(raw[f"module.{k}"], ckpt["state_dict"][k]) for k in trained)


def test_use_ema_on_a_checkpoint_without_ema_is_one_line(runner_checkpoint) -> None:
    from modeldeploy.errors import CheckpointError

    rc = runner_checkpoint("yolox", "tiny", False)
    _, model = build("yolox", "tiny")
    with pytest.raises(CheckpointError, match="no ema_state_dict") as exc:
        get_project("yolox").load_checkpoint(model, str(rc.path), deploy_cfg("yolox", use_ema=True))
    assert "\n" not in exc.value.one_line()


def test_runner_checkpoint_of_other_model_fails_strict_load(runner_checkpoint) -> None:
    """Strict loading is kept: a tiny model's Runner checkpoint does not load into the AWML-size model."""
    from modeldeploy.errors import CheckpointError

    rc = runner_checkpoint("calibration", "tiny", False)
    _, model = build("calibration", "awml")
    with pytest.raises(CheckpointError, match="wrong shape"):
        get_project("calibration").load_checkpoint(model, str(rc.path), deploy_cfg("calibration", use_ema=False))
