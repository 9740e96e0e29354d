"""Reading AWML's model config files exactly as they are written upstream.

AWML model configs are mmengine configs that assume AWML's training environment:

* ``custom_imports = dict(imports=['projects.CenterPoint.models', ...])`` names AWML
  packages that register mmdet3d/mmdet classes. modeldeploy does **not** import them
  (they are not installed in a deployment image, and importing would run their code):
  the file is read with ``import_custom_modules=False`` and each project maps the
  registered ``type=`` names to its own modules (:func:`check_model_types`), saying in
  one line which names it does not know. The skipped imports are logged.
* ``_base_ = ['mmpretrain::_base_/models/resnet18.py', ...]``: mmengine 0.10.7 resolves a
  ``scope::path`` base through ``pkg_resources`` (gone from current setuptools →
  ``No module named 'pkg_resources'``) and needs the OpenMMLab package installed. We
  resolve it ourselves: the installed package's ``.mim/configs/<path>`` when the package
  is importable (found without importing it), else a stand-in base shipped with
  modeldeploy under ``core/upstream_bases/<scope>/<path>`` (only the few upstream bases
  AWML's deployable configs use, written from the upstream facts: same keys, same
  values), else one ConfigError naming the base and the file. Decision: stand-ins rather
  than stripping the base, because a child config merges *into* its base — stripping
  would silently drop keys the child does not repeat.
* Relative ``_base_`` chains (``../../../../../autoware_ml/configs/...``) resolve as
  mmengine does; a base that does not exist — e.g. a letter-case mistake, which works on
  a case-insensitive file system but not on Linux — ends in one ConfigError naming the
  referencing file, the missing path and the near-miss.
* Training-only sections (``train_dataloader``, ``optim_wrapper``, ``param_scheduler``,
  hooks, ``model.train_cfg``, losses, …) are left in the Config and simply never read.

The resolver is installed by temporarily replacing ``Config._get_cfg_path`` (a
staticmethod mmengine calls once per ``_base_`` entry) under a lock, because mmengine
0.10.7 offers no hook for it.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modeldeploy.errors import ConfigError

log = logging.getLogger(__name__)

STAND_IN_ROOT = Path(__file__).resolve().parent / "upstream_bases"
# mmengine's MODULE2PACKAGE scopes; the key is the ``scope::`` prefix, the value the module
# whose installed copy carries ``.mim/configs``.
_SCOPES = (
    "mmengine",
    "mmcv",
    "mmdet",
    "mmdet3d",
    "mmpretrain",
    "mmcls",
    "mmseg",
    "mmpose",
    "mmocr",
    "mmaction",
    "mmrotate",
    "mmtrack",
    "mmyolo",
    "mmagic",
    "mmedit",
    "mmrazor",
    "mmdeploy",
    "mmfewshot",
    "mmflow",
    "mmselfsup",
    "mmhuman3d",
)
_PATCH_LOCK = threading.Lock()


def _normalised(name: str) -> str:
    return re.sub(r"[_\-]", "", name.lower())


def _near_miss(path: Path) -> Path | None:
    """A file in the same folder whose name differs only in letter case or ``_``/``-``
    (``t4dataset_DynamicRecognition.py`` for ``t4dataset_dynamic_recognition.py``), else
    the closest name by difflib."""
    parent = path.parent
    if not parent.is_dir():
        return None
    names = [c.name for c in parent.iterdir() if c.is_file()]
    for n in names:
        if _normalised(n) == _normalised(path.name):
            return parent / n
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return parent / close[0] if close else None


def _missing_base(referrer: str, entry: str, resolved: Path) -> ConfigError:
    near = _near_miss(resolved)
    where = f"{referrer}: _base_ entry {entry!r} → {resolved} does not exist"
    if near is not None:
        how = (
            "differs only in letter case/underscores"
            if _normalised(near.name) == _normalised(resolved.name)
            else "is the closest name"
        )
        return ConfigError(
            f"{where}; {near.name!r} in that folder {how}",
            hint=f"rename the _base_ entry to {near.name!r} (Linux file names are case-sensitive)",
        )
    return ConfigError(
        where, hint="fix the _base_ path (relative to the file that names it) or copy the base file there"
    )


def resolve_scoped_base(entry: str, referrer: str) -> tuple[str, str]:
    """``scope::rel/path.py`` → (absolute path, scope), or ConfigError naming what is missing."""
    scope, _, rel = entry.partition("::")
    if scope not in _SCOPES or not rel:
        raise ConfigError(
            f"{referrer}: _base_ entry {entry!r} has an unknown scope {scope!r}",
            hint=f"use one of {', '.join(_SCOPES)} (scope::path) or a relative path",
        )
    module = "mmpretrain" if scope == "mmcls" else scope
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        cand = Path(loc) / ".mim" / "configs" / rel
        if cand.is_file():
            log.info("%s: base %s read from the installed %s (%s)", referrer, entry, module, cand)
            return str(cand), scope
    stand_in = STAND_IN_ROOT / scope / rel
    if stand_in.is_file():
        log.info("%s: base %s → modeldeploy's stand-in %s (%s is not installed)", referrer, entry, stand_in, module)
        return str(stand_in), scope
    shipped = sorted(
        f"{p.relative_to(STAND_IN_ROOT).parts[0]}::{'/'.join(p.relative_to(STAND_IN_ROOT).parts[1:])}"
        for p in STAND_IN_ROOT.rglob("*.py")
        if len(p.relative_to(STAND_IN_ROOT).parts) > 1
    )
    raise ConfigError(
        f"{referrer}: _base_ entry {entry!r} needs the {module} package's configs ({module} is not installed and "
        f"modeldeploy ships stand-ins only for {', '.join(shipped)})",
        hint=f"copy that base file next to the config and name it by relative path, or pip install {module}",
    )


def _get_cfg_path(cfg_path: str, filename: str) -> tuple[str, str | None]:
    """Replacement for ``mmengine.Config._get_cfg_path`` (same contract)."""
    if "::" in cfg_path:
        return resolve_scoped_base(cfg_path, filename)
    resolved = Path(os.path.dirname(filename)) / cfg_path
    if not resolved.is_file():
        raise _missing_base(filename, cfg_path, Path(os.path.normpath(resolved)))
    return str(resolved), None


def fromfile(path: str | Path) -> Any:
    """``mmengine.Config.fromfile`` for AWML configs: no custom imports, our base resolver.

    Raises ConfigError for a missing/mis-cased base or an unresolvable ``scope::`` base;
    other mmengine errors propagate for the caller to word.
    """
    from mmengine.config import Config

    with _PATCH_LOCK:
        original = Config.__dict__["_get_cfg_path"]
        Config._get_cfg_path = staticmethod(_get_cfg_path)
        try:
            cfg = Config.fromfile(str(path), import_custom_modules=False)
        finally:
            Config._get_cfg_path = original
    imports = cfg.get("custom_imports")
    if imports:
        names = list(imports.get("imports", [])) if isinstance(imports, Mapping) else imports
        log.info(
            "%s: custom_imports not imported (modeldeploy builds its own modules from the type= names): %s",
            path,
            ", ".join(map(str, names)),
        )
    return cfg


# Sub-sections that only training reads: their type= names (losses, assigners, samplers,
# init schemes, batch augmentations) never reach the deployed graph.
TRAINING_ONLY_KEYS = frozenset({"train_cfg", "init_cfg", "assigner", "sampler", "batch_augments", "pretrained"})


def _is_training_only(key: str) -> bool:
    return key in TRAINING_ONLY_KEYS or key == "loss" or key.startswith("loss_")


def model_type_names(model: Mapping[str, Any], prefix: str = "model") -> list[tuple[str, str]]:
    """Every ``type=`` in the model section outside training-only keys, as (path, bare name).

    ``'mmdet.L1Loss'`` and ``'L1Loss'`` name the same registered class: the scope is
    dropped.
    """
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                if _is_training_only(str(k)):
                    continue
                if k == "type":
                    if isinstance(v, str):
                        found.append((f"{path}.type", v.rsplit(".", 1)[-1]))
                    else:  # a class object (lazy-import configs): use its name
                        found.append((f"{path}.type", getattr(v, "__name__", str(v))))
                else:
                    walk(v, f"{path}.{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(model, prefix)
    return found


def check_model_types(model: Any, known: Mapping[str, Any] | Iterable[str], project: str) -> None:
    """Raise one ConfigError listing every ``type=`` name the project does not implement."""
    if not isinstance(model, Mapping):
        return
    names = set(known)
    unknown = [(p, n) for p, n in model_type_names(model) if n not in names]
    if unknown:
        listed = ", ".join(f"{n!r} ({p})" for p, n in unknown)
        raise ConfigError(
            f"model config: the {project} project does not implement type name(s) {listed}",
            hint=f"it maps these AWML/mmdet registered names to its own modules: {', '.join(sorted(names))}",
        )
