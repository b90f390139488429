"""No import cycle among lab/ modules.

Walks every module under lab/ with `ast` (nothing is imported), resolves `lab.` imports
(relative ones too) to modules, and looks for cycles. Every real import counts, including
imports inside functions (they run, just later); imports under `if TYPE_CHECKING:` do not.
Importing `lab.a.b` from outside `lab.a` also runs `lab.a`'s `__init__`, so that is an
edge too.
"""

from __future__ import annotations

import ast
from pathlib import Path

LAB = Path(__file__).resolve().parents[2] / "lab"

#: Cycles that exist today in files this change may not touch, each named by its sorted
#: members. Any other cycle fails the test; so does one listed here that is gone (remove
#: it from the list).
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping the bodies of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(package: Path = LAB) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                bases = [alias.name for alias in node.names]
                candidates = bases
            else:
                if node.level:
                    anchor = home.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for candidate in candidates:
                # the longest prefix that is a lab module: `from lab.x import y` is lab.x.y
                # when y is a module, else lab.x
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate:
                    targets.add(candidate)
        for target in list(targets):  # a package's __init__ runs before its modules
            targets.update(_ancestors(target))
        # its own packages have started initialising before it runs: no edge to them
        graph[name] = targets - {name, *_ancestors(name)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one
    cycle through it, sorted for a stable message."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_one_cycle(graph, c) for c in sorted(components, key=sorted)]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def test_the_walker_sees_relative_and_lazy_imports_but_not_type_checking(
        tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n"
                "else:\n    import os\n\ndef f():\n    from .sub import c\n",
        "b.py": "from pkg.sub.c import X\nfrom . import a\n",
        "sub/__init__.py": "from .c import X\n",
        "sub/c.py": "from .. import b\nfrom ..a import f\nX = 1\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    assert import_graph(pkg) == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.c", "pkg.sub"},  # lazy, relative; the package's __init__ runs
        "pkg.b": {"pkg.sub.c", "pkg.sub", "pkg.a"},
        "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.b", "pkg.a"},
    }
    graph = import_graph()
    assert "lab.scenario.models" not in graph["lab.stack.base"]  # under TYPE_CHECKING
    assert "lab.stack.compose" in graph["lab.live.workshop"]  # inside a function


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycle_among_lab_modules() -> None:
    found = cycles(import_graph())
    new = [c for c in found if frozenset(c) not in KNOWN_CYCLES]
    assert new == [], "import cycles:\n" + "\n".join(" → ".join(c) for c in new)
    gone = KNOWN_CYCLES - {frozenset(c) for c in found}
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"
