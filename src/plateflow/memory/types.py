"""Memory types: which array library a function takes and returns.

A memory type names an array library. Values are plain strings so they read
well in pipeline files, plans and diagnostics.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "MemoryType",
    "MEMORY_TYPES",
    "GPU_MEMORY_TYPES",
    "CPU_CAPABLE_GPU_TYPES",
    "LibrarySpec",
    "LIBRARIES",
    "validate_memory_type",
    "is_installed",
]


class MemoryType(str, Enum):
    NUMPY = "numpy"
    CUPY = "cupy"
    TORCH = "torch"
    TENSORFLOW = "tensorflow"
    JAX = "jax"
    PYCLESPERANTO = "pyclesperanto"

    def __str__(self) -> str:  # "numpy", not "MemoryType.NUMPY", in messages
        return self.value


#: Every valid memory type name, in a stable order.
MEMORY_TYPES: tuple[str, ...] = tuple(m.value for m in MemoryType)

#: Memory types whose arrays can live on a GPU and so take part in GPU assignment.
GPU_MEMORY_TYPES: frozenset[str] = frozenset({"cupy", "torch", "tensorflow", "jax", "pyclesperanto"})

#: GPU memory types whose library also runs on the CPU when no GPU exists.
#: pyclesperanto runs on any OpenCL device, CPU drivers (pocl) included.
CPU_CAPABLE_GPU_TYPES: frozenset[str] = frozenset({"torch", "tensorflow", "jax", "pyclesperanto"})


@dataclass(frozen=True)
class LibrarySpec:
    """Where a memory type's library comes from."""

    memory_type: str
    module: str  # top-level import name
    extra: str  # plateflow extra that installs it
    pip_name: str


LIBRARIES: dict[str, LibrarySpec] = {
    "numpy": LibrarySpec("numpy", "numpy", "", "numpy"),
    "cupy": LibrarySpec("cupy", "cupy", "cupy", "cupy-cuda12x"),
    "torch": LibrarySpec("torch", "torch", "torch", "torch==2.13.0"),
    "tensorflow": LibrarySpec("tensorflow", "tensorflow", "tensorflow", "tensorflow-cpu"),
    "jax": LibrarySpec("jax", "jax", "jax", "jax"),
    "pyclesperanto": LibrarySpec("pyclesperanto", "pyclesperanto", "cle", "pyclesperanto"),
}


def validate_memory_type(value: object, *, what: str = "memory type") -> str:
    """Return ``value`` as a memory type name, or raise ``ValueError`` naming the valid ones."""
    if isinstance(value, MemoryType):
        return value.value
    if isinstance(value, str) and value in MEMORY_TYPES:
        return value
    raise ValueError(f"unknown {what} {value!r}; valid memory types are: {', '.join(MEMORY_TYPES)}")


def is_installed(memory_type: str) -> bool:
    """True when the library of ``memory_type`` can be imported (without importing it)."""
    spec = LIBRARIES[validate_memory_type(memory_type)]
    return importlib.util.find_spec(spec.module) is not None
