"""plateflow: compile-then-run image-processing pipelines for high-content-screening plates.

Build a pipeline of ``FunctionStep``s, ``check`` it, ``compile_pipeline`` it
against a plate, and ``run`` it on every well. Heavy modules load on first use,
so ``import plateflow`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .special_io import chain_breaker, special_inputs, special_outputs
from .steps import FunctionStep, Pipeline

__all__ = [
    "__version__",
    "FunctionStep",
    "Pipeline",
    "special_outputs",
    "special_inputs",
    "chain_breaker",
    "GlobalConfig",
    "open_plate",
    "check",
    "analyze",
    "Analysis",
    "compile_pipeline",
    "CompileError",
    "Diagnostic",
    "run",
    "RunReport",
]

_LAZY = {
    "GlobalConfig": "plateflow.config",
    "open_plate": "plateflow.plate",
    "check": "plateflow.compiler",
    "analyze": "plateflow.compiler",
    "Analysis": "plateflow.compiler",
    "compile_pipeline": "plateflow.compiler",
    "CompileError": "plateflow.compiler",
    "Diagnostic": "plateflow.compiler",
    "run": "plateflow.execution",
    "RunReport": "plateflow.execution",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plateflow' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
