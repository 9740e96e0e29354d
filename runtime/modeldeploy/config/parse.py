"""One parser for every typed settings section, and one pydantic → ConfigError formatter.

Why one: deploy-config sections (``export``, ``model_io``, a project's own ``yolox``…) and the
project sections of a *model* config (``calibration_data``, ``yolox_data``) are all pydantic
models that forbid unknown keys. A user's typo must read the same wherever it is made: one
line naming where (the file, or "model config"), the dotted key and the value, and a hint
with a did-you-mean over the keys allowed at that level.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from modeldeploy.core.model_config import to_plain
from modeldeploy.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def model_at(root: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow a pydantic error location from ``root`` through nested models (for suggestions).

    A ``dict[K, Model]`` field (``evaluation.backends``) puts the dict's key in the location
    (``backends.onnxruntime.devce``): that key is stepped over, the model stays ``Model``."""
    model: type[BaseModel] | None = root
    key_next = False
    for part in path:
        if key_next:
            key_next = False
            continue
        if model is None:
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        nxt = None
        for cand in (*getattr(ann, "__args__", ()), ann):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                nxt = cand
            elif get_origin(cand) in (dict, Mapping):  # dict[K, Model], also inside Optional[...]
                val = get_args(cand)[-1] if get_args(cand) else None
                if isinstance(val, type) and issubclass(val, BaseModel):
                    nxt, key_next = val, True
        model = nxt
    return model


def did_you_mean(word: str, known: Iterable[str], prefix: str = "") -> str:
    """``"did you mean '<prefix><closest>'? "`` (trailing space, to go before the list of known
    names), or ``""`` when nothing in ``known`` is close: one wording for every typo hint."""
    guess = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean '{prefix}{guess[0]}'? " if guess else ""


def _hint_for(etype: str, err: Mapping[str, Any], doc: str) -> str:
    ctx = err.get("ctx") or {}
    if etype == "literal_error":
        return f"use one of {ctx.get('expected', 'the listed values')}"
    if etype.endswith("_parsing") or etype.endswith("_type"):
        return f"expected {etype.split('_')[0]}"
    if etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return "choose a value inside the documented bounds"
    return f"see {doc} for this key"


def config_error(
    source: str, key: str, root: type[BaseModel], err: Mapping[str, Any], doc: str = "docs/configuration.md"
) -> ConfigError:
    """The ConfigError for one pydantic error ``err`` raised while validating section ``key``
    (model ``root``): unknown keys get a did-you-mean over the keys allowed where they sit."""
    loc = (key, *(p for p in err["loc"] if p != "[key]"))  # "[key]": pydantic's mark for a dict key itself
    dotted = ".".join(str(p) for p in loc)
    value = err.get("input")
    etype = err["type"]
    if etype == "extra_forbidden":
        parent = model_at(root, tuple(err["loc"][:-1]))
        known = list(parent.model_fields) if parent is not None else []
        hint = did_you_mean(str(loc[-1]), known, prefix="".join(f"{p}." for p in loc[:-1]))
        hint += f"known keys here: {', '.join(known)}" if known else "remove it"
        return ConfigError(f"{source}: unknown key '{dotted}' (value {value!r})", hint=hint)
    msg = str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(f"{source}: invalid value for '{dotted}': {value!r} ({msg})", hint=_hint_for(etype, err, doc))


def parse_section(model: type[M], value: Any, *, key: str, source: str, doc: str = "docs/configuration.md") -> M:
    """``value`` (a dict as written, None = all defaults) validated as ``model``; the first
    problem is one ConfigError (``source``: the file, or "model config"; ``doc``: where the
    allowed values are described)."""
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: '{key}' must be a dict, got {type(value).__name__} {value!r}", hint=f"write {key} = dict(...)"
        )
    try:
        return model.model_validate(to_plain(value))
    except ValidationError as exc:
        raise config_error(source, key, model, exc.errors(include_url=False)[0], doc) from None
