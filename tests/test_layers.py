"""Layers: lower modules never import upper ones, and no module imports itself
back through others (0.1 had ``metrics`` <-> ``_metrics_sql`` and ``machine``
<-> ``plugins``; the built-in workflows and the hookspecs imported the engine
layer for `Step`).

Imports are read from the source (module level and inside functions alike;
only ``if TYPE_CHECKING:`` blocks, which never run, are left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "gridflow"


def _name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names}
            modules = subs & MODULES.keys()
            found.update(modules or {node.module})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    # A package is always imported before its submodules: naming an ancestor
    # package (`from gridflow.store import Write` in gridflow.store.memory) adds
    # no edge that could close a cycle at import time.
    ancestors = {module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)}
    return {name for name in found if name in MODULES and name != module
            and name not in ancestors}


GRAPH = {m: _imports(m) for m in MODULES if m != "gridflow"}


def test_no_module_imports_itself_back() -> None:
    # Depth-first search for a cycle among gridflow's own modules (the package's
    # __init__, the façade that re-exports everything, is not a node).
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ()) - {"gridflow"}):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert cycles == []


#: module -> modules it must never import (directly or through others)
FORBIDDEN = {
    "gridflow.model": {"gridflow.engine", "gridflow.store", "gridflow.spec"},
    "gridflow.values": {"gridflow.model", "gridflow.engine"},
    "gridflow.step": {"gridflow.engine", "gridflow.machine", "gridflow.plugins"},
    "gridflow.plugins": {"gridflow.engine", "gridflow.machine", "gridflow.workflows"},
    "gridflow.machine": {"gridflow.engine", "gridflow.workflows"},
    "gridflow.fold": {"gridflow.engine", "gridflow.core", "gridflow.store"},
    "gridflow.core": {"gridflow.engine", "gridflow.store", "gridflow.workflows"},
    "gridflow.workflows": {"gridflow.engine", "gridflow.machine", "gridflow.core"},
    "gridflow.store": {"gridflow.engine", "gridflow.core", "gridflow.metrics"},
    "gridflow._figures": {"gridflow.metrics", "gridflow._metrics_sql"},
    "gridflow.telemetry": {"gridflow.engine", "gridflow.store", "gridflow.core"},
    "gridflow.spec_diff": {"gridflow.engine", "gridflow.store", "gridflow.core",
                           "gridflow.migrate"},
    "gridflow.migrate": {"gridflow.engine", "gridflow.cli", "gridflow._cli_migrate"},
    "gridflow._sealing": {"gridflow.engine", "gridflow.core", "gridflow.cli"},
    "gridflow.log": {"gridflow.engine", "gridflow.store", "gridflow.core", "gridflow._tlog"},
    "gridflow._tlog": {"gridflow.engine", "gridflow.cli", "gridflow._cli_log"},
}


def _reach(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        for nxt in GRAPH.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_lower_layers_never_import_upper_ones(module: str) -> None:
    below = {m for m in MODULES if m == module or m.startswith(module + ".")}
    reached = set().union(*(_reach(m) for m in below))
    bad = {m for m in reached
           if any(m == f or m.startswith(f + ".") for f in FORBIDDEN[module])}
    assert bad == set()


def _imports_for_typing_too(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_hookspecs_do_not_import_the_machine_even_for_annotations() -> None:
    # 0.1: machine imported plugins (Guard, Effect) and plugins imported machine for
    # Step under TYPE_CHECKING, a circle that the runtime graph above does not see.
    # Step lives in gridflow.step now, below both.
    for upper in ("gridflow.machine", "gridflow.engine", "gridflow.core"):
        assert upper not in _imports_for_typing_too("gridflow.plugins"), upper
