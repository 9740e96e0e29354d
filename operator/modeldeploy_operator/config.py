"""Operator-wide settings, read once from the environment and the command line.

Everything the handlers need is in one frozen object that is passed around explicitly,
so the pure functions stay testable without environment tricks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from . import __version__
from .policy import Policy, PolicyError
from .policy import from_json as policy_from_json

DEFAULT_RUNTIME_IMAGE = f"ghcr.io/modeldeploy/runtime:{__version__}"


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{key} must be > 0, got {raw!r}")
    return value


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """Knobs of one operator process (see docs/operator.md for the env names)."""

    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    # Container resources for runtime Jobs whose spec.runtime.resources is unset (JSON of a
    # ResourceRequirements: {"requests": {...}, "limits": {...}}), from the chart's values.
    runtime_resources_json: str = ""
    # A pod that stays unschedulable this long makes the deployment Stalled.
    unschedulable_after_s: float = 120.0
    # Period of the fallback resync that re-reads Jobs/Pods of unfinished deployments.
    resync_interval_s: float = 30.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8080
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    log_format: str = "text"
    # Reconcile threads (observations get a quarter): each pass is 2 sequential API calls,
    # so throughput ≈ max_workers / (2 × API latency); 48 keeps up with 500 CRs applied
    # at once on a loaded 2-core control plane (benchmarks/results/operator_scale.md).
    max_workers: int = 48
    # Tenant rules re-checked before anything is created (chart policy: → MODELDEPLOY_POLICY);
    # the default (no env) restricts nothing — the chart always sets it.
    policy: Policy = Policy()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> OperatorConfig:
        """Build the config from ``MODELDEPLOY_*`` variables; explicit overrides win."""
        env = os.environ if env is None else env
        namespaces = tuple(n for n in env.get("MODELDEPLOY_NAMESPACES", "").replace(",", " ").split() if n)
        values: dict[str, object] = dict(
            runtime_image=env.get("MODELDEPLOY_RUNTIME_IMAGE") or DEFAULT_RUNTIME_IMAGE,
            runtime_resources_json=_resources_json(env.get("MODELDEPLOY_RUNTIME_RESOURCES", "")),
            unschedulable_after_s=_float(env, "MODELDEPLOY_UNSCHEDULABLE_AFTER_SECONDS", 120.0),
            resync_interval_s=_float(env, "MODELDEPLOY_RESYNC_SECONDS", 30.0),
            metrics_host=env.get("MODELDEPLOY_METRICS_HOST") or "127.0.0.1",
            metrics_port=int(env.get("MODELDEPLOY_METRICS_PORT") or 8080),
            namespaces=namespaces,
            all_namespaces=env.get("MODELDEPLOY_ALL_NAMESPACES", "").lower() in ("1", "true", "yes"),
            log_format=env.get("MODELDEPLOY_LOG_FORMAT") or "text",
            max_workers=int(env.get("MODELDEPLOY_MAX_WORKERS") or 48),
            policy=_policy(env.get("MODELDEPLOY_POLICY", "")),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _policy(text: str) -> Policy:
    """A malformed policy stops the operator at start-up (never "no policy" by accident)."""
    try:
        return policy_from_json(text)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None


def _resources_json(text: str) -> str:
    """Validate MODELDEPLOY_RUNTIME_RESOURCES at start-up: a bad value must stop the
    operator with a clear message, not produce Jobs the API server rejects later."""
    if not text.strip():
        return ""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"MODELDEPLOY_RUNTIME_RESOURCES is not JSON ({exc}); expected e.g. "
            '{"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi"}}'
        ) from None
    if (
        not isinstance(value, dict)
        or set(value) - {"requests", "limits"}
        or not all(isinstance(v, dict) for v in value.values())
    ):
        raise ValueError("MODELDEPLOY_RUNTIME_RESOURCES must be an object with only 'requests' and/or 'limits' maps")
    return json.dumps(value, sort_keys=True)
