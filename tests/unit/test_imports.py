"""The package's import graph: no module imports itself back, and the ground floor imports
nothing of the package.

Every ``import`` counts, those under ``if TYPE_CHECKING:`` and inside functions
too: a circle that only the type checker sees is still a circle to a reader.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import zoom_s2s

ROOT = Path(zoom_s2s.__file__).resolve().parent
GROUND_FLOOR = ("zoom_s2s.errors", "zoom_s2s.models", "zoom_s2s._clock", "zoom_s2s._redact",
                "zoom_s2s.events")


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in ROOT.rglob("*.py")}


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _imports(module: str) -> set[str]:
    """The package's modules ``module`` imports (``from x import y``: ``x.y`` if a module).

    Importing ``a.b.c`` also runs ``a/b/__init__.py``: that counts as an import
    of ``a.b``, unless ``a.b`` is a package ``module`` itself is in.
    """
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            found.update(t for t in {target, *_ancestors(target)} if t in MODULES)
    return found - {module} - _ancestors(module)


@functools.cache
def graph() -> dict[str, set[str]]:
    """Every module's imports (parsed on first use: not in every worker's collection)."""
    return {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, set()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def test_the_graph_sees_the_imports_it_should() -> None:
    assert "zoom_s2s.stores.base" in graph()["zoom_s2s.manager"]
    assert "zoom_s2s._clock" in graph()["zoom_s2s.manager"]  # from . import _clock
    assert "zoom_s2s.stores.redis.store" in graph()["zoom_s2s.stores.redis"]
    assert "zoom_s2s.stores" in graph()["zoom_s2s.ratelimit.limiter"]  # runs stores/__init__


def test_the_cycle_finder_finds_circles_of_any_length() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    assert _cycles(graph()) == []


def test_the_ground_floor_imports_nothing_of_the_package() -> None:
    for module in GROUND_FLOOR:
        above = {target for target in graph()[module] if target not in GROUND_FLOOR}
        assert above == set(), module


def test_the_errors_module_imports_nothing_of_the_package() -> None:
    assert graph()["zoom_s2s.errors"] == set()
