"""The backend registry: name → how the runner makes that backend (``BackendSpec``).

Why here, torch-free, on the ground floor: the deploy config validates backend names
against it at load time (config and core are one floor), while the implementations and
their registrations live above (``modeldeploy.backends.registry``, or a user's module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    path named by ``artifact_for(precision)``; ``options`` are the deploy config's
    ``backend_config.common_config`` (e.g. ``cuda_graph``), which a backend may ignore.
    """

    name: str
    artifact: ArtifactKind
    factory: Callable[..., BaseBackend]
    needs_cuda: bool = False
    variants: Mapping[str, ArtifactKind] = field(default_factory=dict)
    file_suffix: str = ""  # for ``evaluation.backends.<name>.model_dir`` lookups

    def artifact_for(self, precision: str) -> ArtifactKind:
        return self.variants.get(precision, self.artifact)


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
