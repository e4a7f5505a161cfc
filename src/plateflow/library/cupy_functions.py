"""The bundled library for the ``cupy`` memory type (CUDA GPUs).

The kernels are the numpy ones of :mod:`plateflow.library._xp`, run with
cupy and ``cupyx.scipy.ndimage`` in place of numpy and ``scipy.ndimage``.
cupy is imported when a function runs, never when this module is imported.
Registry names are ``cupy.<function>``.
"""

from __future__ import annotations

from typing import Any

from . import _xp, specs, specs_assay
from ._spec import implement

__all__ = ["normalize_percentile", *specs.ACCELERATED, *_xp.SHARED_ASSAY]


def _make(name: str) -> Any:
    kernel = _xp.bind(getattr(_xp, name), _xp.cupy_namespace)
    # Each operation is declared once, in specs_assay (top_hat, the assay filters) or in specs.
    spec = getattr(specs_assay, name, None) or getattr(specs, name)
    return implement(spec, kernel, memory_type="cupy", module=__name__)


normalize_percentile = _make("normalize_percentile")
gaussian_filter = _make("gaussian_filter")
median_filter = _make("median_filter")
top_hat = _make("top_hat")
max_projection = _make("max_projection")
mean_projection = _make("mean_projection")
sum_projection = _make("sum_projection")
threshold_otsu = _make("threshold_otsu")
label = _make("label")
bottom_hat = _make("bottom_hat")
mean_filter = _make("mean_filter")
minimum_filter = _make("minimum_filter")
maximum_filter = _make("maximum_filter")
variance_filter = _make("variance_filter")
laplace = _make("laplace")
difference_of_gaussians = _make("difference_of_gaussians")
subtract_gaussian_background = _make("subtract_gaussian_background")
invert_intensity = _make("invert_intensity")
min_projection = _make("min_projection")
std_projection = _make("std_projection")
threshold_manual = _make("threshold_manual")
