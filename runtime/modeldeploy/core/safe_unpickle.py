"""A restricted unpickler for mmengine Runner checkpoints: data in, no code run.

Why not ``torch.load(weights_only=True)``: an mmengine 0.10.x Runner checkpoint holds
``message_hub`` with ``HistoryBuffer`` objects, and ``HistoryBuffer.__getstate__`` pickles
its statistics table as ``getattr(HistoryBuffer, 'min')`` … — a ``builtins.getattr`` call.
torch's weights-only unpickler refuses ``getattr`` outright (rightly: ``getattr(os,
'system')`` is the classic gadget), so every Runner checkpoint failed. Allow-listing
``getattr`` or the real ``HistoryBuffer`` would be unsafe (its ``__setstate__`` writes
whatever callables the file names into a class-level method table).

So this unpickler resolves every global through one allow-list (``_resolve``):

* torch's tensor rebuild functions, dtypes, ``torch.Size`` (storages are handled by
  torch's own ``persistent_load``);
* numpy arrays/scalars/dtypes (``_reconstruct`` only for ``ndarray``), ``_codecs.encode``
  only for latin-1 text (how protocol 2 stores bytes);
* plain containers (``OrderedDict``, ``defaultdict``, ``set`` …);
* mmengine's bookkeeping classes, rebuilt as *inert stand-ins* defined here:
  ``HistoryBuffer`` → :class:`InertHistoryBuffer` (arrays only), ``ConfigDict`` → dict,
  ``MessageHub`` → :class:`InertRecord`;
* ``getattr`` only as ``getattr(HistoryBuffer, <name>)`` (the statistics table) or
  ``getattr(OneCycleParamScheduler, <name>)`` (a OneCycle scheduler's ``anneal_func`` in
  ``param_schedulers``), answered with an inert :class:`StatisticRef` — never a real
  attribute lookup.

Anything else (``os.system``, ``subprocess.*``, ``builtins.eval``, …) raises
:class:`UnsafePickleError` naming the global, before it can be called. Used by
``core.checkpoint.read_checkpoint`` through ``torch.load(pickle_module=...)``: torch reads
the zip archive and the tensor storages, every ``GLOBAL`` goes through ``find_class`` here.
"""

from __future__ import annotations

import pickle
import types
from collections import Counter, OrderedDict, defaultdict
from typing import Any

import numpy as np
import torch


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that loading a checkpoint may not touch."""

    def __init__(self, qualname: str, detail: str = "") -> None:
        super().__init__(f"{qualname}{detail}")
        self.qualname = qualname


class InertHistoryBuffer:
    """mmengine's ``HistoryBuffer`` as data: ``max_length`` and the two numpy histories.

    The ``statistics_methods`` entry of the pickled state (references to HistoryBuffer's
    methods) is dropped: deployment never resumes a log buffer.
    """

    _FIELDS = ("max_length", "_log_history", "_count_history")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError("mmengine.logging.history_buffer.HistoryBuffer", " with a non-dict state")
        for k in self._FIELDS:
            if k in state:
                setattr(self, k, state[k])

    def __repr__(self) -> str:
        n = len(getattr(self, "_log_history", ()))
        return f"InertHistoryBuffer({n} values)"


class InertRecord:
    """Any other allow-listed mmengine bookkeeping object: its state kept as a dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class InertConfigDict(dict):
    """mmengine ``ConfigDict`` rebuilt as a plain dict (no addict attribute magic)."""


class StatisticRef(str):
    """Stands for ``getattr(HistoryBuffer, name)`` in a pickled statistics table."""


class InertOneCycle(InertRecord):
    """mmengine's OneCycle scheduler class, named by its ``anneal_func`` (a staticmethod
    pickled as ``getattr(OneCycleParamScheduler, '_annealing_cos')``)."""


# classes whose attributes a pickle may name through getattr: answered with a marker string
_GETATTR_OWNERS = {InertHistoryBuffer: "HistoryBuffer", InertOneCycle: "OneCycleParamScheduler"}


def _restricted_getattr(obj: Any, name: Any, *default: Any) -> StatisticRef:
    owner = _GETATTR_OWNERS.get(obj) if isinstance(obj, type) else None
    if owner is not None and isinstance(name, str) and name.isidentifier() and not name.startswith("__"):
        return StatisticRef(f"{owner}.{name}")
    raise UnsafePickleError("builtins.getattr", f" on {getattr(obj, '__name__', type(obj).__name__)}.{name}")


def _restricted_encode(text: Any, encoding: str = "utf-8", *rest: Any) -> bytes:
    if isinstance(text, str) and encoding in ("latin1", "latin-1") and not rest:
        return text.encode("latin1")
    raise UnsafePickleError("_codecs.encode", f" with encoding {encoding!r}")


def _numpy_attr(*paths: str) -> Any:
    """First of ``module:name`` that exists (numpy 1 vs 2 moved ``core`` to ``_core``)."""
    for p in paths:
        mod, _, name = p.partition(":")
        try:
            return getattr(__import__(mod, fromlist=[name]), name)
        except (ImportError, AttributeError):
            continue
    return None


_np_reconstruct = _numpy_attr("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
_np_scalar = _numpy_attr("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")
_np_frombuffer = _numpy_attr("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")


def _restricted_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(
            "numpy _reconstruct", f" of {getattr(subtype, '__name__', subtype)!s} (only numpy.ndarray)"
        )
    return _np_reconstruct(subtype, shape, dtype)


def _restricted_scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError("numpy scalar", " without a dtype")
    return _np_scalar(dtype, *args)


def _torch_allowed() -> dict[str, Any]:
    u = torch._utils
    names = (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_device_tensor_from_numpy",
    )
    out = {f"torch._utils.{n}": getattr(u, n) for n in names if hasattr(u, n)}
    out["torch.Size"] = torch.Size
    out["torch.device"] = torch.device
    out["torch.torch_version.TorchVersion"] = torch.torch_version.TorchVersion
    if hasattr(torch.serialization, "_get_layout"):
        out["torch.serialization._get_layout"] = torch.serialization._get_layout
    for n in dir(torch):  # torch.float32 … are pickled as globals
        if isinstance(getattr(torch, n, None), torch.dtype):
            out[f"torch.{n}"] = getattr(torch, n)
    return out


def _build_allow_list() -> dict[str, Any]:
    allowed: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "collections.defaultdict": defaultdict,
        "collections.Counter": Counter,
        "builtins.getattr": _restricted_getattr,
        "_codecs.encode": _restricted_encode,
        "argparse.Namespace": types.SimpleNamespace,
        "mmengine.logging.history_buffer.HistoryBuffer": InertHistoryBuffer,
        "mmengine.logging.message_hub.MessageHub": InertRecord,
        "mmengine.config.config.ConfigDict": InertConfigDict,
        "mmengine.optim.scheduler.param_scheduler.OneCycleParamScheduler": InertOneCycle,
        "mmengine.optim.scheduler.lr_scheduler.OneCycleLR": InertOneCycle,
        "mmengine.optim.scheduler.momentum_scheduler.OneCycleMomentum": InertOneCycle,
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
    }
    for t in (set, frozenset, slice, range, complex, bytearray, bytes, list, dict, tuple, int, float, bool, str):
        allowed[f"builtins.{t.__name__}"] = t
    for core in ("numpy.core", "numpy._core"):
        allowed[f"{core}.multiarray._reconstruct"] = _restricted_reconstruct
        allowed[f"{core}.multiarray.scalar"] = _restricted_scalar
        if _np_frombuffer is not None:
            allowed[f"{core}.numeric._frombuffer"] = _np_frombuffer
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:  # numpy >= 1.25 dtype classes (Float64DType …)
        for n in dir(dtypes):
            if n.endswith("DType"):
                allowed[f"numpy.dtypes.{n}"] = getattr(dtypes, n)
    allowed.update(_torch_allowed())
    return allowed


_ALLOWED = _build_allow_list()
# protocol-2 pickles name Python 2 modules; the stock find_class maps them, ours must too
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def allowed_globals() -> list[str]:
    """The allow-list, for documentation and tests."""
    return sorted(_ALLOWED)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only from the allow-list; everything else is refused by name."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        qualname = f"{module}.{name}"
        try:
            return _ALLOWED[qualname]
        except KeyError:
            raise UnsafePickleError(qualname) from None


def _load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` (subclassed by torch to map
# storages, then our find_class decides), ``load`` and ``__name__``.
restricted_pickle_module = types.SimpleNamespace(
    __name__="modeldeploy_restricted_pickle", Unpickler=RestrictedUnpickler, load=_load
)
