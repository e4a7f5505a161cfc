"""Export a pipeline as a runnable Python script.

The script imports each function from its module by name (no registry
needed to run it), builds the same ``Pipeline`` with ``FunctionStep``s, and
runs it on the plate given on its command line with ``plateflow.run``.
``--check-only`` builds the pipeline, prints its steps and the compiler's
diagnostics, and runs nothing.
"""

from __future__ import annotations

import os
import pprint
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..steps import FunctionStep, Pipeline, as_step_list
from .pipeline_file import _function_name, _plain

__all__ = ["export_script"]

_MAIN = '''

def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plate", nargs="?", help="the plate folder to process")
    parser.add_argument("-o", "--out", help="output folder (default: <plate>_out)")
    parser.add_argument("--workers", type=int, default=1, help="wells processed at once")
    parser.add_argument("--check-only", action="store_true", help="build and check the pipeline; run nothing")
    args = parser.parse_args(argv)
    pipeline = build_pipeline()
    if args.check_only:
        for number, step in enumerate(pipeline, start=1):
            print(f"{number}. {step.name} ({', '.join(step.variable_components)})")
        errors = 0
        for diagnostic in plateflow.check(pipeline, args.plate):
            print(diagnostic)
            errors += getattr(diagnostic, "severity", "error") == "error"
        return 1 if errors else 0
    if args.plate is None:
        parser.error("give the plate folder to process")
    out = args.out or f"{args.plate.rstrip('/')}_out"
    report = plateflow.run(pipeline, args.plate, out, workers=args.workers)
    print(report.summary())
    for well, failure in report.failed.items():
        print(f"\\n{well}: {failure.format()}\\n{failure.traceback}")
    return 1 if report.failed else 0


# The guard matters: worker processes import this file, and must not start the run again.

if __name__ == "__main__":
    raise SystemExit(main())
'''


def _alias(registry_name: str) -> str:
    return re.sub(r"\W", "_", registry_name.replace(".", "_"))


def _literal(value: Any, indent: int) -> str:
    text = pprint.pformat(value, width=100 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


class _Writer:
    def __init__(self) -> None:
        self.imports: dict[str, tuple[str, str]] = {}  # alias -> (module, qualname)

    def function(self, func: Callable[..., Any], step: FunctionStep, index: int) -> str:
        alias = _alias(_function_name(func, step, index))
        module, qualname = func.__module__, func.__qualname__
        if "." in qualname or "<" in qualname:
            raise ValueError(
                f"step {index + 1} {step.name!r}: {module}.{qualname} is not a module-level function, "
                "so a script cannot import it; define it at the top level of a module"
            )
        self.imports[alias] = (module, qualname)
        return alias

    def pattern(self, pattern: Any, step: FunctionStep, index: int, indent: int) -> str:
        def single(item: Any) -> str:
            if isinstance(item, tuple):
                func, kwargs = item
                plain = _plain(dict(kwargs), f"step {index + 1} {step.name!r}: kwargs")
                restored = {k: (tuple(v) if isinstance(kwargs[k], tuple) else v) for k, v in plain.items()}
                return f"({self.function(func, step, index)}, {_literal(restored, indent + 4)})"
            return self.function(item, step, index)

        def chain(item: Any) -> str:
            if isinstance(item, list):
                return "[" + ", ".join(single(x) for x in item) + "]"
            return single(item)

        if isinstance(pattern, Mapping):
            inner = "".join(f"\n{' ' * (indent + 4)}{str(k)!r}: {chain(v)}," for k, v in pattern.items())
            return "{" + inner + f"\n{' ' * indent}}}"
        return chain(pattern)


def export_script(pipeline: Pipeline | Sequence[FunctionStep], path: str | os.PathLike[str] | None = None) -> str:
    """A runnable script that builds ``pipeline`` and runs it; written to ``path`` when given.

    Every function must be in the registry (as for pipeline files) and
    importable from its module by name.
    """
    steps = as_step_list(pipeline)
    name = getattr(pipeline, "name", "pipeline")
    description = getattr(pipeline, "description", "")
    writer = _Writer()
    step_texts = []
    for index, step in enumerate(steps):
        func = writer.pattern(step.func, step, index, 16)
        _plain(dict(step.config), f"step {index + 1} {step.name!r}: config")  # only values a literal can hold
        config = dict(step.config)
        step_texts.append(
            "            FunctionStep(\n"
            f"                func={func},\n"
            f"                name={step.name!r},\n"
            f"                variable_components={tuple(step.variable_components)!r},\n"
            f"                group_by={step.group_by!r},\n"
            f"                force_disk_output={step.force_disk_output!r},\n"
            f"                visualize={step.visualize!r},\n"
            + ("" if getattr(step, "enabled", True) else "                enabled=False,\n")
            + (
                ""
                if getattr(step, "scope", "well") == "well"
                else f"                scope={step.scope!r},\n"
                + (f"                sample_wells={step.sample_wells!r},\n" if step.sample_wells is not None else "")
                + (f"                sample_sites={step.sample_sites!r},\n" if step.sample_sites is not None else "")
            )
            + f"                config={_literal(config, 16)},\n"
            "            ),\n"
        )
    imports = "".join(
        f"from {module} import {qualname} as {alias}\n" if alias != qualname else f"from {module} import {qualname}\n"
        for alias, (module, qualname) in sorted(writer.imports.items())
    )
    text = (
        f'"""Run the plateflow pipeline {name!r} on a plate.\n\n'
        f"Exported by plateflow {__version__}. Usage: python {Path(path).name if path else 'pipeline.py'} "
        "PLATE [-o OUT] [--workers N] [--check-only]\n"
        '"""\n\n'
        "import plateflow\n"
        "from plateflow import FunctionStep, Pipeline\n"
        f"{imports}\n\n"
        "def build_pipeline():\n"
        f"    return Pipeline(\n"
        "        [\n"
        f"{''.join(step_texts)}"
        "        ],\n"
        f"        name={name!r},\n"
        f"        description={description!r},\n"
        "    )\n"
        f"{_MAIN}"
    )
    compile(text, "<exported pipeline>", "exec")  # a bug here should fail at export, not when the user runs it
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
