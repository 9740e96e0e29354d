"""Checkpoint reading that never turns pickle safety off.

AWML/mmengine Runner checkpoints carry ``meta``, ``message_hub`` (HistoryBuffer objects),
optimizer state… and do not load under ``weights_only=True``. We first try the safe
loader; if it refuses only because of mmengine's bookkeeping classes, we retry with an
explicit allow-list of those classes (registered as harmless stand-ins when mmengine is
absent), never with ``weights_only=False``.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from modeldeploy.errors import CheckpointError

# Globals an mmengine Runner checkpoint references outside the state dict. Loading them
# constructs plain bookkeeping objects; nothing in them executes code.
_MMENGINE_ALLOWED = (
    "mmengine.logging.history_buffer.HistoryBuffer",
    "mmengine.logging.message_hub.MessageHub",
    "mmengine.config.config.ConfigDict",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "collections.OrderedDict",
    "collections.defaultdict",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "argparse.Namespace",
    "torch.torch_version.TorchVersion",
)
log = logging.getLogger(__name__)
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _resolve(qualname: str) -> Any | None:
    module, _, name = qualname.rpartition(".")
    try:
        mod = __import__(module, fromlist=[name])
        return getattr(mod, name)
    except Exception:  # noqa: BLE001 - absent optional class: simply not allow-listed
        return None


def _safe_globals() -> list[Any]:
    allowed = []
    for q in _MMENGINE_ALLOWED:
        obj = _resolve(q)
        if obj is not None:
            allowed.append(obj)
    try:  # numpy dtype classes (np.dtypes.Float64DType …) appear in pickled numpy scalars
        import numpy as np

        allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    except AttributeError:
        pass
    return allowed


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file as a dict, safely. Raises CheckpointError with a fix."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist", hint="pass the path of a .pth file (CHECKPOINT argument or checkpoint_path)")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes)", hint="re-download or re-train it")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(
            f"{p} is not a PyTorch checkpoint (not a torch.save zip archive)",
            hint="pass the .pth written by torch.save / the mmengine Runner, not a config or ONNX file",
        )
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        m = _UNSUPPORTED.search(str(exc))
        name = m.group(1) if m else "an object"
        raise CheckpointError(
            f"{p} references {name}, which is not on the checkpoint allow-list",
            hint="save a plain state_dict (torch.save(model.state_dict())) or a standard mmengine checkpoint",
        ) from exc
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(
            f"{p} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            hint="the file is truncated or corrupt; re-download or re-train it",
        ) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a dict of tensors", hint="save model.state_dict()")
    return dict(obj)


def extract_state_dict(ckpt: Mapping[str, Any], *, prefer_ema: bool = False, source: str = "checkpoint") -> "OrderedDict[str, torch.Tensor]":
    """Pick ``ema_state_dict`` / ``state_dict`` / a bare state dict, and strip EMA prefixes."""
    ema = ckpt.get("ema_state_dict") if prefer_ema else None
    if prefer_ema and ema is None:
        raise CheckpointError(f"{source} has no ema_state_dict", hint="set use_ema=False or pass an EMA-trained checkpoint")
    if isinstance(ema, Mapping) and "steps" in ema and "state_dict" in ckpt:
        # mmengine's EMAHook swaps before saving: 'state_dict' already holds the averaged
        # weights (for deployment) and 'ema_state_dict' the raw ones. use_ema means "deploy
        # the EMA weights", so read 'state_dict' here.
        log.info("%s: mmengine EMAHook checkpoint — the EMA weights are its 'state_dict'", source)
        prefer_ema, sd = False, ckpt["state_dict"]
    elif ema is not None:
        sd = ema
    elif "state_dict" in ckpt:
        sd = ckpt["state_dict"]
    elif "model" in ckpt and isinstance(ckpt["model"], Mapping):
        sd = ckpt["model"]
    else:
        sd = ckpt
    if not isinstance(sd, Mapping) or not sd:
        raise CheckpointError(f"{source} contains no state dict", hint="expected a 'state_dict' entry or a dict of tensors")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        if prefer_ema:
            if k == "steps":  # mmengine ExponentialMovingAverage counter
                continue
            k = k[len("module."):] if k.startswith("module.") else k
        out[k] = v
    if not out:
        raise CheckpointError(f"{source} contains no tensors", hint="expected a dict of parameter tensors")
    return out


def load_weights(model: torch.nn.Module, path: str | Path, *, prefer_ema: bool = False) -> torch.nn.Module:
    """Read ``path`` and load it with ``strict=True``, explaining any key mismatch."""
    sd = extract_state_dict(read_checkpoint(path), prefer_ema=prefer_ema, source=str(path))
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        def head(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {head(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {head(unexpected)}")
        raise CheckpointError(
            f"checkpoint {path} does not match the model config: " + "; ".join(parts),
            hint="check that MODEL_CFG is the config this checkpoint was trained with",
            reason="CheckpointMismatch",
        )
    bad = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in expected.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        k, got, want = bad[0]
        raise CheckpointError(
            f"checkpoint {path} has {len(bad)} tensor(s) of the wrong shape, e.g. {k}: {got} vs model {want}",
            hint="check that MODEL_CFG (channels, classes, depth) matches the checkpoint",
            reason="CheckpointMismatch",
        )
    model.load_state_dict(sd, strict=True)
    return model
