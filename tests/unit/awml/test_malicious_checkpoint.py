"""A checkpoint whose pickle would run code fails to load with one line, and runs nothing."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeploy.core.checkpoint import read_checkpoint
from modeldeploy.core.safe_unpickle import RestrictedUnpickler, allowed_globals
from modeldeploy.errors import CheckpointError


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a poisoned checkpoint carries
        return (os.system, (f"touch {self.marker}",))


class _GetattrGadget:
    def __reduce__(self):  # getattr on something other than HistoryBuffer
        return (getattr, (OrderedDict, "fromkeys"))


class _DunderGetattr:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return (getattr, (HistoryBuffer, "__init__"))


def _runner_like(payload: object) -> dict:
    return {"meta": {"epoch": 1}, "state_dict": {"w": torch.ones(2)}, "message_hub": {"runtime_info": {"x": payload}}}


def test_os_system_reduce_fails_with_one_line_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "poisoned.pth"
    torch.save(_runner_like(_RunsShell(marker)), path)
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    line = exc.value.one_line()
    assert exc.value.reason == "UnsafeCheckpoint" and exc.value.exit_code == 2
    assert "\n" not in line and "system" in line and str(path) in line
    assert not marker.exists(), "the payload ran"


@pytest.mark.parametrize("gadget", [_GetattrGadget(), _DunderGetattr()], ids=["getattr-other-class", "getattr-dunder"])
def test_getattr_is_only_a_history_buffer_statistic_reference(gadget: object, tmp_path: Path) -> None:
    path = tmp_path / "gadget.pth"
    torch.save(_runner_like(gadget), path)
    with pytest.raises(CheckpointError, match="getattr") as exc:
        read_checkpoint(path)
    assert exc.value.reason == "UnsafeCheckpoint"


class _ReconstructOther:
    def __reduce__(self):  # numpy's array rebuild asked for a class other than ndarray
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (dict, (0,), b"b"))


def test_numpy_reconstruct_only_builds_ndarray() -> None:
    import io

    with pytest.raises(pickle.UnpicklingError, match="only numpy.ndarray"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(_ReconstructOther(), protocol=2))).load()
    masked = pickle.dumps(np.ma.masked_array([1.0, 2.0]), protocol=2)  # other numpy rebuild paths: not on the list
    with pytest.raises(pickle.UnpicklingError, match="numpy.ma"):
        RestrictedUnpickler(io.BytesIO(masked)).load()


def test_allow_list_holds_no_code_running_builtins() -> None:
    names = set(allowed_globals())
    for dangerous in (
        "builtins.eval",
        "builtins.exec",
        "builtins.__import__",
        "builtins.open",
        "posix.system",
        "os.system",
        "subprocess.Popen",
        "torch._tensor._rebuild_from_type_v2",
        "copyreg._reconstructor",
        "functools.partial",
    ):
        assert dangerous not in names
    assert (
        "mmengine.logging.history_buffer.HistoryBuffer" in names and "builtins.getattr" in names
    )  # both as inert stand-ins


def test_plain_state_dict_and_numpy_meta_still_load(tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    sd = OrderedDict(w=torch.arange(4.0), n=torch.tensor(3))
    torch.save(
        {"state_dict": sd, "meta": {"score": np.float64(0.5), "hist": np.arange(3), "classes": ("car", "bus")}}, path
    )
    ckpt = read_checkpoint(path)
    assert torch.equal(ckpt["state_dict"]["w"], sd["w"]) and float(ckpt["meta"]["score"]) == 0.5
    assert ckpt["meta"]["hist"].tolist() == [0, 1, 2]


def test_onecycle_scheduler_state_loads_with_its_anneal_function_as_a_marker(tmp_path: Path) -> None:
    """mmengine's OneCycle scheduler state names a staticmethod (``getattr(cls, '_annealing_cos')``):
    it loads as a marker string, not as a function."""
    from mmengine.optim.scheduler import OneCycleLR

    net = torch.nn.Linear(2, 2)
    sched = OneCycleLR(torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9), eta_max=0.01, total_steps=10)
    path = tmp_path / "onecycle.pth"
    torch.save({"state_dict": net.state_dict(), "param_schedulers": [sched.state_dict()]}, path)
    state = read_checkpoint(path)["param_schedulers"][0]
    assert state["anneal_func"] == "OneCycleParamScheduler._annealing_cos" and not callable(state["anneal_func"])
    assert state["total_steps"] == 10
