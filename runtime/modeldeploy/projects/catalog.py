"""What ``modeldeploy projects`` lists: every registered project and the files it ships.

Why: a new user should not have to read the source tree to learn which projects exist and
which ``builtin:<project>/<file>`` names the CLI accepts. Files are classified without running
them (a config file is code): a top-level ``project``/``export`` assignment makes a deploy
config, ``model`` a model config; ``.pth``/``.pt`` files are checkpoints.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modeldeploy.artifacts.fetch import BUILTIN_PACKAGE, BUILTIN_SUBDIRS


@dataclass
class ShippedFile:
    uri: str  # builtin:<project>/<file> for built-ins, a path for external projects
    kind: str  # deploy config | model config | config | checkpoint | file
    description: str = ""  # the file's first comment line, if any


@dataclass
class ProjectInfo:
    name: str
    task_type: str
    module: str
    builtin: bool
    files: list[ShippedFile] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _top_level_names(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def classify(path: Path) -> tuple[str, str]:
    """(kind, description) of a shipped file, read as text only."""
    if path.suffix in (".pth", ".pt"):
        return "checkpoint", ""
    if path.suffix != ".py":
        return "file", ""
    text = path.read_text(errors="replace")
    first = next(
        (ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#") and ln.lstrip("# ").strip()), ""
    )
    names = _top_level_names(text)
    kind = "deploy config" if names & {"project", "export"} else "model config" if "model" in names else "config"
    return kind, first


def _shipped_files(root: Path, uri_prefix: str | None) -> list[ShippedFile]:
    out = []
    for sub in BUILTIN_SUBDIRS:
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if not p.is_file() or p.name.startswith(("_", ".")):
                continue
            kind, desc = classify(p)
            out.append(ShippedFile(f"{uri_prefix}{p.name}" if uri_prefix else str(p), kind, desc))
    order = {"deploy config": 0, "model config": 1, "config": 2, "checkpoint": 3, "file": 4}
    return sorted(out, key=lambda f: order[f.kind])


def list_projects() -> list[ProjectInfo]:
    """Registered projects (built-ins first), each with the configs and checkpoints it ships."""
    from modeldeploy.core.project import PROJECTS
    from modeldeploy.projects import BUILTIN, load_builtin

    load_builtin()
    builtin_root = Path(str(resources.files(BUILTIN_PACKAGE)))
    infos = []
    for name, cls in sorted(PROJECTS.items(), key=lambda kv: (kv[0] not in BUILTIN, kv[0])):
        builtin = name in BUILTIN and cls.__module__.startswith(f"{BUILTIN_PACKAGE}.{name}.")
        if builtin:
            root, prefix = builtin_root / name, f"builtin:{name}/"
        else:
            mod = importlib.import_module(cls.__module__)
            root, prefix = Path(mod.__file__ or ".").parent, None
        infos.append(
            ProjectInfo(name, getattr(cls, "task_type", "?"), cls.__module__, builtin, _shipped_files(root, prefix))
        )
    return infos


def render_text(infos: list[ProjectInfo]) -> str:
    lines = []
    for info in infos:
        where = "builtin" if info.builtin else f"external: {info.module}"
        lines.append(f"{info.name}  ({info.task_type}, {where})")
        for f in info.files:
            lines.append(f"  {f.kind:<13}  {f.uri}" + (f"  — {f.description}" if f.description else ""))
        if not info.files:
            lines.append("  (ships no configs or checkpoints)")
    return "\n".join(lines) + "\n"
