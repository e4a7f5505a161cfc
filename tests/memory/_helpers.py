"""Helpers for the memory tests: which memory types run here, and host copies."""

from __future__ import annotations

import numpy as np
import pytest

from plateflow.memory.devices import gpu_count, library_status

CPU_CAPABLE = ("numpy", "torch", "jax", "pyclesperanto")
ON_GPU_MACHINE = any(gpu_count(t) for t in ("torch", "jax", "pyclesperanto"))


def usable(memory_type: str) -> bool:
    status = library_status(memory_type)
    return status.installed and status.runs_on_cpu


def runnable(memory_type: str):
    """``memory_type`` as a pytest param, skipped with the probe's reason when it cannot run here."""
    status = library_status(memory_type)
    return pytest.param(memory_type, id=memory_type, marks=pytest.mark.skipif(not usable(memory_type), reason=status.reason))


RUNNABLE = [runnable(t) for t in CPU_CAPABLE]


def host(data: object) -> np.ndarray:
    """A numpy copy of any array, for comparing values."""
    from plateflow.memory.conversion import ADAPTERS, detect_memory_type

    return np.array(ADAPTERS[detect_memory_type(data)].to_numpy(data))


def dtype_name(data: object) -> str:
    from plateflow.memory.conversion import ADAPTERS, detect_memory_type

    return ADAPTERS[detect_memory_type(data)].dtype_name(data)
