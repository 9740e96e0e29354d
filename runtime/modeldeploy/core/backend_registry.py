"""The backend registry: name → how the runner makes that backend (``BackendSpec``).

Why here, torch-free, on the ground floor: the deploy config validates backend names
against it at load time (config and core are one floor), while the implementations and
their registrations live above (``modeldeploy.backends.registry``, or a user's module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeldeploy.core.backend import BaseBackend

#: What a backend's factory receives: the torch component ("module"), this run's ONNX file
#: ("onnx"), its Q/DQ INT8 twin ("onnx_int8") or its TensorRT engine ("engine").
ArtifactKind = str
BUILTIN_BACKENDS = ("pytorch", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class BackendSpec:
    """How the runner makes one backend, so it never special-cases a name.

    Why a table instead of the runner's former if/elif chain: a new backend is one
    ``register_backend`` call next to its class (Model Navigator's shape), and INT8 is a
    *variant* of a backend (``variants={"int8": "onnx_int8"}``: same backend, other file)
    rather than a separate magic name.

    ``factory(source, device, precision, options)``: ``source`` is the component or the
    path named by ``artifact_for(precision)``; ``options`` is a ``BackendOptions``: the
    backend's ``evaluation.backends.<name>`` speed keys over ``backend_config.common_config``
    (the config refuses a speed key the backend does not read).
    """

    name: str
    artifact: ArtifactKind
    factory: Callable[..., BaseBackend]
    needs_cuda: bool = False
    variants: Mapping[str, ArtifactKind] = field(default_factory=dict)
    file_suffix: str = ""  # for ``evaluation.backends.<name>.model_dir`` lookups

    def artifact_for(self, precision: str) -> ArtifactKind:
        return self.variants.get(precision, self.artifact)


class BackendOptions:
    """What a factory's ``options`` is: the backend's own ``evaluation.backends.<name>`` keys
    (``channels_last``, ``cuda_graph``, ``compile_mode``…, plus what the runner resolved, e.g.
    the compile cache under the work dir) over ``backend_config.common_config``.

    Why layered attribute access rather than a new factory argument: factories written
    against ``common_config`` (``getattr(options, "cuda_graph", False)``) keep working, and
    a per-backend key overrides the shared one where both exist (tensorrt's ``cuda_graph``).
    A layer's ``None`` means "not set here" and falls through.
    """

    def __init__(self, *layers: object, **resolved: object) -> None:
        self._layers = layers
        self._resolved = resolved

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._resolved.get(name) is not None:
            return self._resolved[name]
        for layer in self._layers:
            value = getattr(layer, name, None)
            if value is not None:
                return value
        raise AttributeError(name)


_REGISTRY: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Make ``spec.name`` usable in deploy configs (evaluation.backends, scenarios)."""
    _REGISTRY[spec.name] = spec
    return spec


def backend_names() -> list[str]:
    """Names a deploy config may use: the built-ins plus every registered backend."""
    return list(dict.fromkeys([*BUILTIN_BACKENDS, *_REGISTRY]))


def backend_spec(name: str) -> BackendSpec:
    """The registered spec (the built-ins register when ``modeldeploy.backends`` is imported)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        from modeldeploy.errors import ConfigError

        raise ConfigError(f"unknown backend {name!r}", hint=f"use one of {', '.join(backend_names())}") from None
