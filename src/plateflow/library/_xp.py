"""Kernels written once for every library with numpy's API: numpy and cupy.

Each kernel takes an :class:`ArrayNamespace` (the array module and its
``scipy.ndimage``) first; the numpy and cupy modules bind their namespace.
Filters run on the whole (N, Y, X) stack with a zero-extent Z axis (sigma 0,
window 1), which is exactly one filter per image without a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import _shared
from .specs import ACCELERATED

__all__ = ["ArrayNamespace", "numpy_namespace", "cupy_namespace", "bind", "normalize_percentile", *ACCELERATED]

BORDER = "nearest"  # the border rule pyclesperanto and torch's "replicate" share


@dataclass(frozen=True)
class ArrayNamespace:
    xp: Any
    ndi: Any

    def to_host(self, array: Any) -> Any:
        return array.get() if hasattr(array, "get") else array


def numpy_namespace() -> ArrayNamespace:
    import numpy
    import scipy.ndimage

    return ArrayNamespace(numpy, scipy.ndimage)


def cupy_namespace() -> ArrayNamespace:
    import cupy
    import cupyx.scipy.ndimage

    return ArrayNamespace(cupy, cupyx.scipy.ndimage)


def bind(kernel: Callable[..., Any], namespace: Callable[[], ArrayNamespace]) -> Callable[..., Any]:
    """``kernel`` with its namespace loaded at call time (so importing never loads the library)."""

    def bound(stack: Any, **options: Any) -> Any:
        return kernel(namespace(), stack, **options)

    bound.__name__ = kernel.__name__
    return bound


def normalize_percentile(ns: ArrayNamespace, stack: Any, *, low_percentile: float, high_percentile: float,
                         target_min: float, target_max: float, clip: bool) -> Any:
    data = ns.xp.asarray(stack).astype(ns.xp.float32)
    low, high = (float(v) for v in ns.xp.percentile(data, [low_percentile, high_percentile]))
    scale, offset = _shared.rescale_coefficients(low, high, target_min, target_max)
    out = data * ns.xp.float32(scale) + ns.xp.float32(offset)
    return ns.xp.clip(out, target_min, target_max) if clip else out


def gaussian_filter(ns: ArrayNamespace, stack: Any, *, sigma: float) -> Any:
    data = ns.xp.asarray(stack).astype(ns.xp.float32)
    return ns.ndi.gaussian_filter(data, sigma=(0.0, sigma, sigma), mode=BORDER, truncate=4.0)


def median_filter(ns: ArrayNamespace, stack: Any, *, size: int) -> Any:
    return ns.ndi.median_filter(ns.xp.asarray(stack), size=(1, size, size), mode=BORDER)


def top_hat(ns: ArrayNamespace, stack: Any, *, radius: int) -> Any:
    from skimage.morphology import disk

    footprint = ns.xp.asarray(disk(radius).astype(bool))[None]
    return ns.ndi.white_tophat(ns.xp.asarray(stack), footprint=footprint, mode=BORDER)


def max_projection(ns: ArrayNamespace, stack: Any) -> Any:
    return ns.xp.asarray(stack).max(axis=0, keepdims=True)


def sum_projection(ns: ArrayNamespace, stack: Any) -> Any:
    return ns.xp.asarray(stack).astype(ns.xp.float32).sum(axis=0, keepdims=True)


def mean_projection(ns: ArrayNamespace, stack: Any) -> Any:
    return sum_projection(ns, stack) / ns.xp.float32(len(stack))


def _otsu_mask(ns: ArrayNamespace, data: Any) -> Any:
    low, high = float(data.min()), float(data.max())
    if low == high:  # one value: nothing is above it (scikit-image returns that value)
        return ns.xp.zeros(data.shape, dtype=ns.xp.uint8)
    edges = _shared.histogram_edges(low, high)
    counts, _ = ns.xp.histogram(data, bins=ns.xp.asarray(edges))
    threshold = _shared.otsu_from_counts(ns.to_host(counts), edges)
    return (data > ns.xp.float32(threshold)).astype(ns.xp.uint8)


def threshold_otsu(ns: ArrayNamespace, stack: Any, *, per_slice: bool) -> Any:
    data = ns.xp.asarray(stack).astype(ns.xp.float32)
    if not per_slice:
        return _otsu_mask(ns, data)
    return ns.xp.stack([_otsu_mask(ns, plane) for plane in data])


def label(ns: ArrayNamespace, stack: Any, *, connectivity: int) -> Any:
    from scipy.ndimage import generate_binary_structure

    # A host structure: scipy and cupyx both take one.
    structure = generate_binary_structure(2, connectivity)
    planes = [ns.ndi.label(plane != 0, structure=structure)[0].astype(ns.xp.int32) for plane in ns.xp.asarray(stack)]
    return ns.xp.stack(planes)
