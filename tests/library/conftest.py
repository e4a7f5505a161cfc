"""Backends for the agreement tests, each with its converters and a skip reason."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest


@dataclass(frozen=True)
class Backend:
    name: str
    module: Any
    to_backend: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]


def _torch() -> Backend:
    pytest.importorskip("torch", reason="torch is not installed")
    import torch

    from plateflow.library import torch_functions

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return Backend("torch", torch_functions, lambda a: torch.from_numpy(a).to(device), lambda t: t.cpu().numpy())


def _pyclesperanto() -> Backend:
    from plateflow.memory.devices import library_status

    status = library_status("pyclesperanto")
    if not status.installed or not status.devices:
        pytest.skip(f"pyclesperanto cannot run here: {status.reason}")
    import pyclesperanto as cle

    from plateflow.library import pyclesperanto_functions

    cle.gaussian_blur(np.zeros((1, 4, 4), np.float32), sigma_x=1, sigma_y=1)  # compile once (~1.5 s on pocl)
    return Backend("pyclesperanto", pyclesperanto_functions, cle.push, np.asarray)


def _cupy() -> Backend:
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("no CUDA GPU (cupy is not installed)")
    from plateflow.memory.devices import library_status

    if not library_status("cupy").has_gpu:
        pytest.skip("no CUDA GPU")
    import cupy

    from plateflow.library import cupy_functions

    return Backend("cupy", cupy_functions, cupy.asarray, cupy.asnumpy)


_FACTORIES = {"torch": _torch, "pyclesperanto": _pyclesperanto, "cupy": _cupy}


@pytest.fixture(scope="session", params=sorted(_FACTORIES))
def backend(request: pytest.FixtureRequest) -> Backend:
    return _FACTORIES[request.param]()
