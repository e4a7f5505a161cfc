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


# -- the core's layers, imports inside functions included ------------------------------------

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 has no tomllib: the layer tests skip there
    tomllib = None  # type: ignore[assignment]  # the layer tests skip below without a TOML parser

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
#: The one allowed upward import: the seed's ``step.process(context)`` delegates to execution.
STEP_PROCESS_EXCEPTION = ("plateflow.steps", "plateflow.execution.step_runner")


def _layers_contract() -> dict:
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11's tomllib")
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return contract


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_imports(source: str, module: str, *, is_package: bool, known: set[str] | frozenset[str] = frozenset()) -> list[tuple[int, str, bool]]:
    """(line, imported plateflow module, inside a function) of every import in ``source``.

    Relative imports are resolved against ``module``; ``from X import name``
    counts as importing ``X.name`` when that is a module in ``known``, else ``X``.
    Imports under ``if TYPE_CHECKING:`` are left out: they never run.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_node(other, in_function)
                continue
            visit_node(child, in_function)

    def visit_node(node: ast.AST, in_function: bool) -> None:
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, inside) for alias in node.names if alias.name.split(".")[0] == "plateflow")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "plateflow":
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    found.append((node.lineno, candidate if candidate in known else target, inside))
        visit(node, inside)

    visit(ast.parse(source), False)
    return found


def _core_graph() -> dict[str, set[str]]:
    """Core module -> the core modules it imports (anywhere in the module)."""
    files = {_module_name(path): path for path in _core_files()}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        imports = module_imports(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py", known=known)
        graph[module] = {target for _, target, _ in imports if target in known and target != module}
    return graph


def _layer_of(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """(layer index, 0 = top; the layer's module) of ``module``, or ``None`` when no layer holds it."""
    for index, members in enumerate(layers):
        for member in members:
            if module == member or module.startswith(member + "."):
                return index, member
    return None


def upward_imports(graph: dict[str, set[str]], layers: list[list[str]], independent: list[bool], allowed: set[tuple[str, str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        mine = _layer_of(module, layers)
        if mine is None:
            continue
        for target in sorted(targets):
            theirs = _layer_of(target, layers)
            if theirs is None or (module, target) in allowed:
                continue
            upward = theirs[0] < mine[0]
            sideways = theirs[0] == mine[0] and theirs[1] != mine[1] and independent[mine[0]]
            if upward or sideways:
                found.append(f"{module} -> {target}")
    return found


def _parsed_layers(contract: dict) -> tuple[list[list[str]], list[bool]]:
    layers, independent = [], []
    for layer in contract["layers"]:
        separator = "|" if "|" in layer else ":"
        layers.append([name.strip() for name in layer.split(separator)])
        independent.append(separator == "|")
    return layers, independent


def test_the_core_layers_run_one_way_inside_functions_too():
    contract = _layers_contract()
    layers, independent = _parsed_layers(contract)
    allowed = {tuple(part.strip() for part in rule.split("->")) for rule in contract.get("ignore_imports", [])}
    assert STEP_PROCESS_EXCEPTION in allowed
    graph = _core_graph()
    assert "plateflow.execution.step_runner" in graph["plateflow.steps"]  # the scan sees imports inside functions
    offenders = upward_imports(graph, layers, independent, allowed)
    assert not offenders, "imports against DESIGN.md's layers:\n" + "\n".join(offenders)


def test_plate_and_vfs_are_independent_and_no_layer_is_missing():
    layers, independent = _parsed_layers(_layers_contract())
    (shared,) = [i for i, members in enumerate(layers) if "plateflow.plate" in members]
    assert {"plateflow.plate", "plateflow.vfs", "plateflow.library"} == set(layers[shared]) and independent[shared]
    unplaced = [m for m in _core_graph() if m != "plateflow" and _layer_of(m, layers) is None]
    assert not unplaced, f"core modules in no layer of pyproject's contract: {unplaced}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_core_has_no_import_cycle():
    graph = _core_graph()
    graph.pop("plateflow", None)  # the package façade loads the rest lazily, by name
    cycles = _cycles(graph)
    assert not cycles, "import cycles in the core (imports inside functions included):\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..plate.model import natural_sorted", [(1, "plateflow.plate.model", False)]),
        ("def f():\n    from ..execution import run", [(2, "plateflow.execution", True)]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .compiler import plan", []),
        ("if TYPE_CHECKING:\n    pass\nelse:\n    import plateflow.vfs", [(4, "plateflow.vfs", False)]),
        ("class A:\n    def m(self):\n        import plateflow.cli as cli", [(3, "plateflow.cli", True)]),
        ("from . import phases", [(1, "plateflow.compiler.phases", False)]),
        ("import numpy\nfrom os import path", []),
    ],
)
def test_the_layer_scan_resolves_imports(source, expected):
    assert module_imports(source, "plateflow.compiler.analysis", is_package=False, known={"plateflow.compiler.phases"}) == expected


def test_the_layer_check_names_an_upward_import():
    layers = [["plateflow.execution"], ["plateflow.plate", "plateflow.vfs"], ["plateflow.memory"]]
    graph = {"plateflow.memory.types": {"plateflow.execution.well"}, "plateflow.vfs.disk": {"plateflow.plate.model", "plateflow.memory.types"}}
    assert upward_imports(graph, layers, [False, True, False], set()) == [
        "plateflow.memory.types -> plateflow.execution.well",
        "plateflow.vfs.disk -> plateflow.plate.model",
    ]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
