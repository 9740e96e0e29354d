"""The deploy config's ``model_io`` applied to a project's graphs, the same way for every project.

Why one helper: ``model_io`` is a promise about the exported graphs (names, input shape, a
fixed batch or dynamic axes). Each project used to check it on its own (two copies, and
CenterPoint ignored it), so the same mistake read differently per project or passed silently.
A project states what its graphs have; this module checks the config against that, refuses
what the project does not support in one ConfigError line, and returns the batched example
input and the dynamic axes to export with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch

from modeldeploy.config.sections import ModelIOSection
from modeldeploy.errors import ConfigError

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig

ALL_KEYS: tuple[str, ...] = tuple(ModelIOSection.model_fields)


def set_keys(io: ModelIOSection, keys: Iterable[str] = ALL_KEYS) -> list[str]:
    """The ``keys`` the config sets to something other than their default."""
    return [k for k in keys if getattr(io, k) != ModelIOSection.model_fields[k].default]


def refuse_unsupported(cfg: BaseDeploymentConfig, keys: Iterable[str], project: str, why: str, hint: str) -> None:
    """ConfigError naming the first of ``keys`` the config sets: a setting the project cannot
    honour must not be accepted and ignored."""
    used = set_keys(cfg.model_io, keys)
    if used:
        raise ConfigError(
            f"{cfg.source}: 'model_io.{used[0]}' = {getattr(cfg.model_io, used[0])!r} is not used by {project} ({why})",
            hint=hint,
        )


def check_input_shape(
    cfg: BaseDeploymentConfig, expected: Sequence[int | None], because: str, hint: str
) -> tuple[int, ...] | None:
    """``model_io.input_shape`` (C, H, W…) against what the graph takes (None: any size there);
    returns it, or None when unset."""
    shape = tuple(cfg.model_io.input_shape)
    if not shape:
        return None
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ConfigError(
            f"{cfg.source}: 'model_io.input_shape' = {shape}: expected {want} ({because})",
            hint=hint,
        )
    return shape


def batch_and_axes(
    cfg: BaseDeploymentConfig,
    x: torch.Tensor,
    names: Iterable[str],
    batch_only: Iterable[str],
    why_batch_only: str,
) -> tuple[torch.Tensor, dict[str, dict[int, str]]]:
    """The example input ``x`` (batch 1) repeated to ``model_io.batch_size``, or the configured
    ``dynamic_axes`` checked against the graphs' tensor ``names``; in ``batch_only`` tensors
    only axis 0 may be dynamic. Returns (input to trace with, dynamic axes)."""
    io = cfg.model_io
    if io.batch_size is not None:
        return x.repeat(io.batch_size, *([1] * (x.dim() - 1))), {}
    if not io.dynamic_axes:
        return x, {}
    allowed = set(names)
    unknown = sorted(set(io.dynamic_axes) - allowed)
    if unknown:
        raise ConfigError(
            f"{cfg.source}: 'model_io.dynamic_axes' names {unknown}, which the exported graphs do not have",
            hint=f"use {sorted(allowed)}",
        )
    limited = set(batch_only)
    bad = [(k, a) for k, v in io.dynamic_axes.items() if k in limited for a in v if a != 0]
    if bad:
        raise ConfigError(
            f"{cfg.source}: 'model_io.dynamic_axes.{bad[0][0]}' makes axis {bad[0][1]} dynamic; only the batch axis (0) can be",
            hint=why_batch_only,
        )
    return x, {k: dict(v) for k, v in io.dynamic_axes.items()}
