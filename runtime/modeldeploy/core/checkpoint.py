"""Checkpoint reading that never runs code from the file.

AWML/mmengine Runner checkpoints carry ``meta``, ``message_hub`` (``HistoryBuffer``
objects whose pickled state calls ``getattr``), optimizer and scheduler state, and for
YOLOX ``ema_state_dict``; they do not load under ``torch.load(weights_only=True)``. We load
them with :mod:`modeldeploy.core.safe_unpickle`, a restricted unpickler whose allow-list
rebuilds tensors, numpy arrays and mmengine's bookkeeping as inert data and refuses every
other global by name — never with an unrestricted unpickler.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from modeldeploy.core.safe_unpickle import UnsafePickleError, restricted_pickle_module
from modeldeploy.errors import CheckpointError

log = logging.getLogger(__name__)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file as a dict, safely. Raises CheckpointError with a fix.

    ``weights_only=False`` below does not mean "unrestricted": it is how torch accepts a
    custom ``pickle_module``, and ours resolves every global through its allow-list (torch's
    own weights-only list cannot express "getattr only on HistoryBuffer").
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint {p} does not exist",
            hint="pass the path of a .pth file (CHECKPOINT argument or checkpoint_path)",
        )
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes)", hint="re-download or re-train it")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(
            f"{p} is not a PyTorch checkpoint (not a torch.save zip archive)",
            hint="pass the .pth written by torch.save / the mmengine Runner, not a config or ONNX file",
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False, pickle_module=restricted_pickle_module)
    except UnsafePickleError as exc:
        raise CheckpointError(
            f"{p} would call {exc} while loading; a checkpoint may only hold tensors, numpy arrays, "
            "plain containers and mmengine's Runner bookkeeping (meta, message_hub, optimizer, param_schedulers, ema_state_dict)",
            hint="do not deploy this file unless you trust its origin; re-save its weights with torch.save(model.state_dict()) in a trusted environment",
            reason="UnsafeCheckpoint",
        ) from None
    except (
        pickle.UnpicklingError,
        RuntimeError,
        zipfile.BadZipFile,
        EOFError,
        OSError,
        TypeError,
        ValueError,
        AttributeError,
        KeyError,
    ) as exc:
        raise CheckpointError(
            f"{p} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})",
            hint="the file is truncated or corrupt; re-download or re-train it",
        ) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{p} holds a {type(obj).__name__}, not a dict of tensors", hint="save model.state_dict()"
        )
    return dict(obj)


def extract_state_dict(
    ckpt: Mapping[str, Any], *, prefer_ema: bool = False, source: str = "checkpoint"
) -> OrderedDict[str, torch.Tensor]:
    """Pick ``ema_state_dict`` / ``state_dict`` / a bare state dict, and strip EMA prefixes."""
    ema = ckpt.get("ema_state_dict") if prefer_ema else None
    if prefer_ema and ema is None:
        raise CheckpointError(
            f"{source} has no ema_state_dict", hint="set use_ema=False or pass an EMA-trained checkpoint"
        )
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
        raise CheckpointError(
            f"{source} contains no state dict", hint="expected a 'state_dict' entry or a dict of tensors"
        )
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        if prefer_ema:
            if k == "steps":  # mmengine ExponentialMovingAverage counter
                continue
            k = k[len("module.") :] if k.startswith("module.") else k
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
