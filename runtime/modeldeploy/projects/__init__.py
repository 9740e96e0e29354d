"""Built-in model projects. Each sub-package registers itself on import."""

from __future__ import annotations

import importlib

BUILTIN = ("calibration", "yolox", "centerpoint")


def load_builtin() -> None:
    for name in BUILTIN:
        try:
            importlib.import_module(f"modeldeploy.projects.{name}.project")
        except ModuleNotFoundError as exc:
            # A project still under construction has no project.py yet; anything else is a bug.
            if exc.name != f"modeldeploy.projects.{name}.project":
                raise
