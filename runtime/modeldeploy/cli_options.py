"""Command-line overrides of the deploy config: ``--cfg-options`` and every flag of ``run`` that
sets a deploy-config key (``--work-dir``, ``--device``, ``--artifact-uri``, ``--baseline``).

Why one way in: each such flag is a dotted key (``FLAG_KEYS``) merged into the deploy config
once, together with ``--cfg-options`` and validated like the file, so the runner reads only the
config and a value has one precedence (flag > ``--cfg-options`` > file > default). Flags that
are about the process, not the deployment (``--log-level``, ``--log-format``, ``--run-id``,
``--termination-log``), stay process settings.

Why its own module: an override is typed by the user on the command line, so its errors must
blame the flag, not the config file the value was merged into, and its values must be read the
way AWML users already type them for mmengine tools (``mmengine.config.DictAction``).

Value rules (docs/configuration.md, "Command-line overrides"):
- ``[...]`` / ``{...}`` that is valid JSON is read as JSON: the operator renders nested values
  (TensorRT profiles) that way;
- otherwise mmengine's DictAction rules: ``17`` → int, ``1e-4`` → float, ``true``/``false``
  (any case) → bool, ``None`` → None, ``a,b`` / ``[a,b]`` → list, ``(a,b)`` → tuple;
- everything else stays a string — ``none``, ``null``, ``onnx`` are strings (``export.mode=none``
  is the mode 'none'); a value wrapped in matching quotes is always a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.errors import ConfigError

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def parse_cfg_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` items → {dotted key: value}; a malformed item is a ConfigError naming it."""
    out: dict[str, Any] = {}
    items = list(items or [])
    for i, item in enumerate(items):
        if "=" not in item:
            nxt = items[i + 1] if i + 1 < len(items) else None
            example = f"{item}={nxt}" if nxt is not None and "=" not in nxt else f"{item}=VALUE"
            raise ConfigError(
                f"--cfg-options item {item!r} has no '=' (each override is one KEY=VALUE word)",
                hint=f"write --cfg-options {example}",
            )
        key, raw = item.split("=", 1)
        key = key.strip()
        if not _KEY_RE.match(key):
            raise ConfigError(
                f"--cfg-options {item!r}: {key!r} is not a dotted config key",
                hint="write e.g. --cfg-options onnx_config.opset_version=17",
            )
        out[key] = parse_value(raw, flag=f"--cfg-options {item}")
    return out


def parse_value(raw: str, *, flag: str = "--cfg-options") -> Any:
    """One override value (module docstring has the rules)."""
    from mmengine.config import DictAction

    v = raw.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    if v[:1] in ("[", "{"):
        try:
            return json.loads(v)
        except ValueError:
            if v[:1] == "{":
                raise ConfigError(
                    f"{flag}: {v!r} is not a JSON object", hint='write nested dicts as JSON, e.g. key={"a": 1}'
                ) from None
    if v[:1] in ("[", "(") or ("," in v and "/" not in v):
        try:
            return DictAction._parse_iterable(v)
        except AssertionError:  # mmengine's message for unbalanced brackets
            raise ConfigError(f"{flag}: unbalanced brackets in {v!r}", hint="close every ( and [") from None
    return DictAction._parse_int_float_bool(v)


def device_override(device: str) -> str:
    """``--device`` checked on its own, so a typo is blamed on the flag."""
    from modeldeploy.config.sections import normalize_device

    try:
        return normalize_device(device)
    except ValueError:
        raise ConfigError(f"--device {device!r} is not a device", hint="use --device cpu, cuda or cuda:N") from None


_QUOTED_KEY = re.compile(r"'([A-Za-z_][A-Za-z0-9_.\[\]]*)'")


def blame_flag(exc: ConfigError, source: str, flags: Mapping[str, str]) -> ConfigError:
    """Re-word a config error caused by an override (the file alone loads) to name the flag.

    ``flags`` maps each overridden dotted key to how the user wrote it (``--cfg-options k=v``,
    ``--device gpu``, ``--work-dir d``). The key the error names is matched against them; when
    none matches, every override is named, since the file alone is valid.
    """
    msg = exc.message
    m = _QUOTED_KEY.search(msg[len(source) :] if msg.startswith(source) else msg)
    key = m.group(1) if m else ""
    hits = [
        flag for k, flag in flags.items() if key and (k == key or k.startswith(key + ".") or key.startswith(k + "."))
    ]
    who = hits[0] if len(hits) == 1 else ("the command-line overrides (" + ", ".join(flags.values()) + ")")
    body = msg[len(source) + 2 :] if msg.startswith(source + ": ") else msg
    err = ConfigError(f"{who}: {body}", hint=exc.hint, reason=exc.reason)
    return err


#: argparse dest → (the flag as spelled, the deploy-config key it sets)
FLAG_KEYS: dict[str, tuple[str, str]] = {
    "work_dir": ("--work-dir", "export.work_dir"),
    "device": ("--device", "export.device"),
    "artifact_uri": ("--artifact-uri", "export.artifact_uri"),
    "baseline": ("--baseline", "evaluation.gate.baseline.uri"),
}


@dataclass(frozen=True)
class Overrides:
    """Everything the command line changes in the deploy config, applied once at load.

    ``options``: dotted key → value (``--cfg-options`` and the flags of ``FLAG_KEYS``, a flag
    winning over ``--cfg-options`` for the same key); ``flags``: dotted key → the flag as the
    user typed it, to blame a bad value on it; ``device``: ``--device`` also moves every
    evaluated backend and verification scenario (``apply``).
    """

    options: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    device: str | None = None

    def __bool__(self) -> bool:
        return bool(self.options) or self.device is not None

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """The merged deploy config (our layout, after an AWML file is converted) with
        ``--device`` on every backend and scenario, before it is validated once.

        TensorRT entries stay where they are when the device is the CPU: TensorRT cannot run
        there, and a config that lists them for another export mode (e.g. the trt/both
        scenarios of a deploy config run with mode onnx) must still load; when the active mode
        does need TensorRT, the export check refuses ``--device cpu`` with its own message.
        """
        device = self.device
        if device is None:
            return data

        def movable(backend: Any) -> bool:
            return not (device == "cpu" and backend == "tensorrt")

        out = dict(data)
        out["export"] = {**(out.get("export") or {}), "device": device}
        evaluation = out.get("evaluation")
        if isinstance(evaluation, Mapping) and isinstance(evaluation.get("backends"), Mapping):
            out["evaluation"] = {
                **evaluation,
                "backends": {
                    name: {**be, "device": device} if isinstance(be, Mapping) and movable(name) else be
                    for name, be in evaluation["backends"].items()
                },
            }
        verification = out.get("verification")
        if isinstance(verification, Mapping) and isinstance(verification.get("scenarios"), Mapping):
            out["verification"] = {
                **verification,
                "scenarios": {
                    mode: [_scenario_on(s, device, movable) for s in scenarios]
                    if isinstance(scenarios, (list, tuple))
                    else scenarios
                    for mode, scenarios in verification["scenarios"].items()
                },
            }
        return out


def _scenario_on(s: Any, device: str, movable: Any) -> Any:
    if not isinstance(s, Mapping):
        return s  # the config check names what is wrong with it
    out = dict(s)
    if movable(out.get("ref_backend")):
        out["ref_device"] = device
    if movable(out.get("test_backend")):
        out["test_device"] = device
    return out


def overrides_from_args(args: Any) -> Overrides:
    """The ``Overrides`` of a parsed ``run`` / ``check-config`` command line (absent flags: none)."""
    items = getattr(args, "cfg_options", None) or []
    options = parse_cfg_options(items)
    flags = {item.split("=", 1)[0].strip(): f"--cfg-options {item}" for item in items if "=" in item}
    device = None
    for dest, (flag, key) in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if not value:
            continue
        if dest == "device":
            value = device = device_override(value)
        options[key] = value
        flags[key] = f"{flag} {getattr(args, dest)}"
    return Overrides(options, flags, device)
