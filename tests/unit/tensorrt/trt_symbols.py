"""Find every TensorRT attribute name trt_api.py uses, by AST (a small taint analysis).

Tainted: the name ``trt``, parameters annotated ``TRTHandle``, and any variable assigned
from an expression rooted at a tainted name (``builder = trt.Builder(logger)``,
``config = builder.create_builder_config()``...). Recorded:
* ``required`` — attributes read or written on tainted expressions, and methods a class
  defines when it subclasses a TensorRT class (``log`` of the ILogger subclass);
* ``optional`` — string literals in ``getattr(tainted, "X", ...)`` / ``hasattr(tainted, "X")``
  (feature detection: allowed to be absent in some TensorRT version);
* ``dynamic`` — getattr/hasattr on tainted objects with a non-literal name: the functions
  they occur in must take their names from a declared table (the test checks which).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class TRTNames:
    required: set[str] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)
    dynamic_in: set[str] = field(default_factory=set)  # function names


def _root(node: ast.AST) -> ast.AST:
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "getattr" and node.args:
                node = node.args[0]
            else:
                node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return node


def _is_tainted(node: ast.AST, tainted: set[str]) -> bool:
    r = _root(node)
    return isinstance(r, ast.Name) and r.id in tainted


def _names_in_target(t: ast.AST) -> list[str]:
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, (ast.Tuple, ast.List)):
        return [n for e in t.elts for n in _names_in_target(e)]
    return []


def _annotation_is_handle(ann: ast.AST | None) -> bool:
    if ann is None:
        return False
    if isinstance(ann, ast.Name):
        return ann.id == "TRTHandle"
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        return ann.value == "TRTHandle"
    return False


def extract(source: str) -> TRTNames:
    tree = ast.parse(source)
    tainted = {"trt"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                if _annotation_is_handle(a.annotation):
                    tainted.add(a.arg)
    # Propagate through assignments and for-loops to a fixpoint.
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            pairs: list[tuple[ast.AST, ast.AST]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.For):
                pairs = [(node.target, node.iter)]
            for target, value in pairs:
                if _is_tainted(value, tainted):
                    for name in _names_in_target(target):
                        if name not in tainted:
                            tainted.add(name)
                            changed = True
    out = TRTNames()

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        if isinstance(node, ast.Attribute) and _is_tainted(node.value, tainted):
            attr = node.attr
            if not (attr.startswith("__") and attr.endswith("__")) or attr == "__version__":
                out.required.add(attr)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
        ):
            obj, name = node.args[0], node.args[1]
            if _is_tainted(obj, tainted):
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    out.optional.add(name.value)
                else:
                    out.dynamic_in.add(func)
        if isinstance(node, ast.ClassDef) and any(_is_tainted(b, tainted) for b in node.bases):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                    out.required.add(item.name)
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, "<module>")
    return out
