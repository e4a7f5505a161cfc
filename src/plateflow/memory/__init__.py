"""Memory types, their decorators, and conversion between array libraries.

Optional array libraries are imported only when a conversion needs them.
"""

from __future__ import annotations

from typing import Any

from .decorators import cupy, jax, memory_type, numpy, pyclesperanto, tensorflow, torch
from .types import GPU_MEMORY_TYPES, MEMORY_TYPES, MemoryType, validate_memory_type

__all__ = [
    "MemoryType",
    "MEMORY_TYPES",
    "GPU_MEMORY_TYPES",
    "validate_memory_type",
    "memory_type",
    "numpy",
    "cupy",
    "torch",
    "tensorflow",
    "jax",
    "pyclesperanto",
    "convert",
    "stack_slices",
    "unstack_slices",
    "MemoryConversionError",
    "LibraryNotInstalledError",
    "detect_memory_type",
]

_LAZY = {
    "convert": ".conversion",
    "MemoryConversionError": ".conversion",
    "LibraryNotInstalledError": ".conversion",
    "detect_memory_type": ".conversion",
    "stack_slices": ".stacking",
    "unstack_slices": ".stacking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
