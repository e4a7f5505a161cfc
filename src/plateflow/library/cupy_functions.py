"""The bundled library for the ``cupy`` memory type (CUDA GPUs).

The kernels are the numpy ones of :mod:`plateflow.library._xp`, run with
cupy and ``cupyx.scipy.ndimage`` in place of numpy and ``scipy.ndimage``.
cupy is imported when a function runs, never when this module is imported.
Registry names are ``cupy.<function>``.
"""

from __future__ import annotations

from typing import Any

from . import _xp, specs
from ._spec import implement

__all__ = ["normalize_percentile", *specs.ACCELERATED]


def _make(name: str) -> Any:
    kernel = _xp.bind(getattr(_xp, name), _xp.cupy_namespace)
    return implement(getattr(specs, name), kernel, memory_type="cupy", module=__name__)


normalize_percentile = _make("normalize_percentile")
gaussian_filter = _make("gaussian_filter")
median_filter = _make("median_filter")
top_hat = _make("top_hat")
max_projection = _make("max_projection")
mean_projection = _make("mean_projection")
sum_projection = _make("sum_projection")
threshold_otsu = _make("threshold_otsu")
label = _make("label")
