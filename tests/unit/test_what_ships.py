"""Importing the library loads none of its test helpers (zoom_s2s.testing).

The CLI's ``fake-server`` and ``demo`` commands import the fake Zoom inside the functions
that need it. The fleet harness and the server launchers live in tests/harness/ and are
not shipped.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import zoom_s2s

PACKAGE = Path(zoom_s2s.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_time_imports(source: str, module: str, is_package: bool) -> Iterator[str]:
    """Absolute names of the modules ``source`` imports while it is imported itself.

    Function bodies run later and ``if TYPE_CHECKING:`` blocks never, so both are skipped;
    class bodies and other blocks run at import time and are searched.
    """
    package = module if is_package else module.rpartition(".")[0]

    def walk(nodes: list[ast.stmt]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.orelse)
                continue
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                yield base
                yield from (f"{base}.{alias.name}" for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from walk(getattr(node, field, []))

    yield from walk(ast.parse(source).body)


def uses_testing(source: str, module: str, is_package: bool = False) -> list[str]:
    if "testing" not in source:  # no import of it can be spelled without the word
        return []  # (and the 33k generated lines of zoom_s2s/api/ need no parse)
    return [
        name
        for name in import_time_imports(source, module, is_package)
        if name == "zoom_s2s.testing" or name.startswith("zoom_s2s.testing.")
    ]


def test_no_production_module_imports_the_test_helpers_when_it_is_imported() -> None:
    checked, offenders = set(), {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if module.startswith("zoom_s2s.testing"):
            continue
        checked.add(module)
        found = uses_testing(path.read_text(), module, path.name == "__init__.py")
        if found:
            offenders[module] = found
    assert offenders == {}
    assert {"zoom_s2s", "zoom_s2s.demo", "zoom_s2s.manager", "zoom_s2s.cli"} <= checked


def test_the_check_sees_relative_absolute_and_class_level_imports_but_not_lazy_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .testing import FakeZoom\n"
        "if TYPE_CHECKING:\n"
        "    from .testing.contract import StoreContract\n"
        "try:\n"
        "    import zoom_s2s.testing.fake_zoom\n"
        "except ImportError:\n"
        "    pass\n"
        "class Demo:\n"
        "    from .testing import _fake_state\n"
        "def run():\n"
        "    from .testing.fake_zoom import FakeZoom\n"
    )
    assert uses_testing(source, "zoom_s2s.demo") == [
        "zoom_s2s.testing",
        "zoom_s2s.testing.FakeZoom",
        "zoom_s2s.testing.fake_zoom",
        "zoom_s2s.testing",
        "zoom_s2s.testing._fake_state",
    ]
    assert uses_testing("from ..testing import x\n", "zoom_s2s.client.client") == [
        "zoom_s2s.testing",
        "zoom_s2s.testing.x",
    ]
    assert uses_testing("from .testing import x\n", "zoom_s2s", is_package=True) == [
        "zoom_s2s.testing",
        "zoom_s2s.testing.x",
    ]
