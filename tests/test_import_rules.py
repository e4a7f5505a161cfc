"""Import rules of DESIGN.md: the headless core never imports GUI libraries, and
importing plateflow loads no optional array library.

The static scan is the import-linter contract in pyproject.toml, written as a
test so it runs even where ``lint-imports`` is not installed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import plateflow

PACKAGE = Path(plateflow.__file__).resolve().parent
GUI_MODULES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt", "vispy")
HEAVY_MODULES = ("cupy", "torch", "jax", "tensorflow", "pyclesperanto", "napari", "qtpy")


def test_importing_the_core_loads_no_heavy_module():
    code = (
        "import sys, json\n"
        "import plateflow, plateflow.memory, plateflow.patterns, plateflow.steps\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"`import plateflow` loaded {', '.join(loaded)}; import them inside the functions that need them"


def _core_files() -> list[Path]:
    gui_package = PACKAGE / "napari"
    return sorted(p for p in PACKAGE.rglob("*.py") if gui_package not in p.parents)


def gui_imports(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a GUI module in ``source``, however deeply nested."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".", 1)[0] in GUI_MODULES]
    return found


def test_core_never_imports_gui_libraries():
    files = _core_files()
    assert PACKAGE / "memory" / "types.py" in files
    offenders = [
        f"{path.relative_to(PACKAGE.parent.parent)}:{line} imports {module}"
        for path in files
        for line, module in gui_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not offenders, "the headless core must not import GUI libraries:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import napari", [(1, "napari")]),
        ("import os\nfrom qtpy.QtWidgets import QWidget", [(2, "qtpy.QtWidgets")]),
        ("def f():\n    import magicgui.widgets as w", [(2, "magicgui.widgets")]),
        ("import importlib\nimportlib.import_module('PySide6')", [(2, "PySide6")]),
        ("import vispy.scene, numpy", [(1, "vispy.scene")]),
        ("from . import napari\nimport napari_helpers\nfrom .napari import x", []),
    ],
)
def test_the_scan_finds_gui_imports(source, expected):
    assert gui_imports(source, "<test>") == expected
