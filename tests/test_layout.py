"""The module layout of `lossdsl/` and `backends/` (installed as `lossdsl.backends`): the
imports between them form no cycle, and no module imports another's private names.

The import graph is read from the source with `ast`, every import counted: at module level,
inside functions (an import moved into a function to dodge a cycle is still a cycle) and
under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT

PACKAGES = {"lossdsl": ROOT / "lossdsl", "lossdsl.backends": ROOT / "backends"}



def module_files() -> dict[str, Path]:
    files = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join((package,) + parts)] = path
    return files


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, str]]:
    """(imported module, imported name or "") for every import of a known module in one file.
    `from .x import y` names the submodule `x.y` when there is one, else the module `x`."""
    is_package = path.stem == "__init__"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, ""
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}", ""
                elif base in known:
                    yield base, alias.name


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: {target for target, _ in imports_of(name, path, known)} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert "lossdsl.pipeline" in graph["lossdsl.api"]
    assert "lossdsl.backends" in graph["lossdsl.pipeline"]  # an absolute import
    assert "lossdsl.backends.base" in graph["lossdsl.backends.torch_backend"]  # a relative one
    assert "lossdsl.syntax" in graph["lossdsl.parser"]  # `from . import syntax as S`
    assert "lossdsl" in graph["lossdsl.cli"]  # `from . import __version__`, inside a function


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"a"}}) == [frozenset("a")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = set(cycles(import_graph()))
    assert found == set(), sorted(sorted(c) for c in found)


def test_no_private_names_imported_across_modules():
    files = module_files()
    private = {(name, target, imported)
               for name, path in files.items()
               for target, imported in imports_of(name, path, set(files))
               if imported.startswith("_") and not imported.endswith("__") and target != name}
    assert private == set(), sorted(private)
