"""Reading a project's model config whether it arrives as an mmengine Config or a dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.errors import ConfigError


def model_cfg_dict(model_cfg: Any) -> dict[str, Any]:
    """mmengine Config / ConfigDict / dict → plain top-level dict (read-only use)."""
    if model_cfg is None:
        return {}
    if hasattr(model_cfg, "to_dict"):
        return dict(model_cfg.to_dict())
    if isinstance(model_cfg, Mapping):
        return dict(model_cfg)
    raise ConfigError(f"model config must be a dict or mmengine Config, got {type(model_cfg).__name__}", hint="pass MODEL_CFG as a config file")


def to_plain(value: Any) -> Any:
    """mmengine ConfigDict → plain dicts/lists (tuples kept), so pydantic sees builtins and
    model builders can pop keys freely."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return value
