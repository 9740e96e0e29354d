"""Reading a project's model config whether it arrives as an mmengine Config or a dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.errors import ConfigError

# mmengine adds ``_scope_`` to values inherited from a ``scope::`` base (e.g. AWML's
# ``mmpretrain::_base_/models/resnet18.py``): it names the registry to build from, not a
# model setting, and our projects build their own modules — so readers never see it.
SCOPE_KEY = "_scope_"


def model_cfg_dict(model_cfg: Any) -> dict[str, Any]:
    """mmengine Config / ConfigDict / dict → plain top-level dict (read-only use)."""
    if model_cfg is None:
        return {}
    if hasattr(model_cfg, "to_dict"):
        return to_plain(dict(model_cfg.to_dict()))
    if isinstance(model_cfg, Mapping):
        return to_plain(dict(model_cfg))
    raise ConfigError(
        f"model config must be a dict or mmengine Config, got {type(model_cfg).__name__}",
        hint="pass MODEL_CFG as a config file",
    )


def to_plain(value: Any) -> Any:
    """mmengine ConfigDict → plain dicts/lists (tuples kept, ``_scope_`` markers dropped), so
    pydantic sees builtins and model builders can pop keys freely."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items() if k != SCOPE_KEY}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return value
