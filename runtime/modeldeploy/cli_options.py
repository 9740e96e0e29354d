"""Command-line overrides of the deploy config (``--cfg-options``, ``--device``, ``--work-dir``).

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
