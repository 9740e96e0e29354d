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
