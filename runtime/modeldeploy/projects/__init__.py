"""Built-in model projects, plus projects installed elsewhere. Each registers itself on import.

The list is open (docs/adding-a-project.md): besides the built-ins below, a project module is
imported when it is named in the ``MODELDEPLOY_PROJECTS`` environment variable (comma-separated
module paths, e.g. ``MODELDEPLOY_PROJECTS=my_pkg.my_project``) or published by an installed
distribution under the entry-point group ``modeldeploy.projects`` (the value is the module).
Importing the module runs its ``@register_project`` decorator; nothing else is required.
A project's own deploy-config section is declared on its class (``deploy_section``) and parsed
when the project is bound to a config (``project_for``), never registered at import time.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from modeldeploy.errors import ConfigError

if TYPE_CHECKING:
    from modeldeploy.config import BaseDeploymentConfig
    from modeldeploy.core.project import BaseProject

BUILTIN = ("calibration", "yolox", "centerpoint")
ENV_VAR = "MODELDEPLOY_PROJECTS"
ENTRY_POINT_GROUP = "modeldeploy.projects"


def load_builtin() -> None:
    """Import the built-in projects and every external project module (see module docstring)."""
    for name in BUILTIN:
        try:
            importlib.import_module(f"modeldeploy.projects.{name}.project")
        except ModuleNotFoundError as exc:
            # A project still under construction has no project.py yet; anything else is a bug.
            if exc.name != f"modeldeploy.projects.{name}.project":
                raise
    load_external()


def get_project(name: str) -> BaseProject:
    """The project registered under ``name``, after discovering the built-in and external ones.

    Why here and not in ``core``: discovery imports the projects, which sit on a floor above
    ``core`` (docs/architecture.md); ``core.project`` keeps only the registry they write to.
    """
    from modeldeploy.core.project import PROJECTS

    load_builtin()
    if name not in PROJECTS:
        raise ConfigError(f"unknown project {name!r}", hint=f"use one of {sorted(PROJECTS)}")
    return PROJECTS[name]()


def project_for(cfg: BaseDeploymentConfig, model_cfg: Any = None) -> BaseProject:
    """The project ``cfg`` names, bound to ``cfg`` (and ``model_cfg`` when given): its own
    deploy section and model-config settings parsed and checked now, once (BaseProject.bind).

    Why here: whoever loads a deploy config for a project (CLI, runner, plan check) resolves the
    project first, then the project parses the section it declares — the config never has to
    know the projects above it."""
    if cfg.project is None:
        raise ConfigError(
            f"{cfg.source}: 'project' is not set",
            hint="add project = 'calibration' | 'yolox' | 'centerpoint' to the deploy config",
        )
    return get_project(cfg.project).bind(cfg, model_cfg)


def external_modules() -> list[str]:
    """Module paths named by MODELDEPLOY_PROJECTS and by installed entry points, in that order."""
    from importlib.metadata import entry_points

    mods = [m.strip() for m in os.environ.get(ENV_VAR, "").split(",") if m.strip()]
    mods += [ep.value.split(":", 1)[0] for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return list(dict.fromkeys(mods))


def load_external() -> None:
    """Import each external project module; a module that cannot be imported is a ConfigError
    naming it (a typo in MODELDEPLOY_PROJECTS must not look like an unknown project)."""
    for mod in external_modules():
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name is not None and mod.startswith(exc.name):
                raise ConfigError(
                    f"{ENV_VAR} / entry point names module {mod!r}, which cannot be imported ({exc.name!r} not found)",
                    hint="install the package or fix the module path (e.g. my_pkg.my_project)",
                ) from None
            raise
