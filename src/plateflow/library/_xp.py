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

#: Operations of :mod:`plateflow.library.specs_assay` with a kernel here (numpy and cupy share them).
SHARED_ASSAY: tuple[str, ...] = (
    "bottom_hat", "mean_filter", "minimum_filter", "maximum_filter", "variance_filter", "laplace",
    "difference_of_gaussians", "subtract_gaussian_background", "invert_intensity", "min_projection", "std_projection",
    "threshold_manual",
)

__all__ = ["ArrayNamespace", "numpy_namespace", "cupy_namespace", "bind", "normalize_percentile", *ACCELERATED, *SHARED_ASSAY]

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


def _disk(ns: ArrayNamespace, radius: int) -> Any:
    from skimage.morphology import disk

    return ns.xp.asarray(disk(radius).astype(bool))[None]


def _by_sequence(ns: ArrayNamespace, data: Any, radius: int, operations: tuple[str, ...]) -> Any:
    """Grey morphology of each image by the disk's 3 x 3 decomposition (``_shared.disk_sequence``)."""
    sequence = _shared.disk_sequence(radius)
    for name in operations:
        apply = getattr(ns.ndi, name)
        for footprint, repeats in sequence:
            for _ in range(repeats):
                data = apply(data, footprint=ns.xp.asarray(footprint)[None], mode=BORDER)
    return data


def _upsample_linear(ns: ArrayNamespace, data: Any, factor: int, axis: int) -> Any:
    """Linear interpolation by ``factor`` along ``axis`` with each value at its block's centre, edges held."""
    xp = ns.xp
    size = data.shape[axis]
    position = (xp.arange(size * factor, dtype=xp.float32) + 0.5) / factor - 0.5
    position = xp.clip(position, 0, size - 1)
    lower = xp.floor(position).astype(xp.int64)
    upper = xp.minimum(lower + 1, size - 1)
    shape = [1] * data.ndim
    shape[axis] = -1
    weight = (position - lower).reshape(shape)
    return xp.take(data, lower, axis=axis) * (1 - weight) + xp.take(data, upper, axis=axis) * weight


def _downsampled_background(ns: ArrayNamespace, data: Any, radius: int, factor: int) -> Any:
    """The opening of ``data`` by a disk, estimated on block means of ``factor`` x ``factor`` pixels."""
    xp = ns.xp
    count, height, width = data.shape
    pad_y, pad_x = -height % factor, -width % factor
    padded = xp.pad(data.astype(xp.float32), ((0, 0), (0, pad_y), (0, pad_x)), mode="edge")
    blocks = padded.reshape(count, padded.shape[1] // factor, factor, padded.shape[2] // factor, factor).mean(axis=(2, 4))
    opened = _by_sequence(ns, blocks, max(1, int(round(radius / factor))), ("grey_erosion", "grey_dilation"))
    background = _upsample_linear(ns, _upsample_linear(ns, opened, factor, 1), factor, 2)
    return background[:, :height, :width]


def top_hat(ns: ArrayNamespace, stack: Any, *, radius: int, downsample: int = 1) -> Any:
    data = ns.xp.asarray(stack)
    if downsample == 1:
        return ns.ndi.white_tophat(data, footprint=_disk(ns, radius), mode=BORDER)
    background = _downsampled_background(ns, data, radius, downsample)
    if data.dtype.kind in "iub":
        background = ns.xp.rint(background).astype(data.dtype)
    else:
        background = background.astype(data.dtype)
    # The interpolated background may exceed the image locally; the result is never negative.
    return data - ns.xp.minimum(background, data)


def bottom_hat(ns: ArrayNamespace, stack: Any, *, radius: int) -> Any:
    return ns.ndi.black_tophat(ns.xp.asarray(stack), footprint=_disk(ns, radius), mode=BORDER)


def mean_filter(ns: ArrayNamespace, stack: Any, *, size: int) -> Any:
    return ns.ndi.uniform_filter(ns.xp.asarray(stack).astype(ns.xp.float32), size=(1, size, size), mode=BORDER)


def minimum_filter(ns: ArrayNamespace, stack: Any, *, size: int) -> Any:
    return ns.ndi.minimum_filter(ns.xp.asarray(stack), size=(1, size, size), mode=BORDER)


def maximum_filter(ns: ArrayNamespace, stack: Any, *, size: int) -> Any:
    return ns.ndi.maximum_filter(ns.xp.asarray(stack), size=(1, size, size), mode=BORDER)


def variance_filter(ns: ArrayNamespace, stack: Any, *, size: int) -> Any:
    # In float64: E[x^2] - E[x]^2 of float32 sums loses the variance of bright, flat regions.
    data = ns.xp.asarray(stack).astype(ns.xp.float64)
    mean = ns.ndi.uniform_filter(data, size=(1, size, size), mode=BORDER)
    square = ns.ndi.uniform_filter(data * data, size=(1, size, size), mode=BORDER)
    return ns.xp.maximum(square - mean * mean, 0.0).astype(ns.xp.float32)


def laplace(ns: ArrayNamespace, stack: Any) -> Any:
    data = ns.xp.asarray(stack).astype(ns.xp.float32)
    return ns.xp.stack([ns.ndi.laplace(plane, mode=BORDER) for plane in data])


def difference_of_gaussians(ns: ArrayNamespace, stack: Any, *, low_sigma: float, high_sigma: float) -> Any:
    return gaussian_filter(ns, stack, sigma=low_sigma) - gaussian_filter(ns, stack, sigma=high_sigma)


def subtract_gaussian_background(ns: ArrayNamespace, stack: Any, *, sigma: float) -> Any:
    data = ns.xp.asarray(stack).astype(ns.xp.float32)
    return data - gaussian_filter(ns, data, sigma=sigma)


def invert_intensity(ns: ArrayNamespace, stack: Any) -> Any:
    data = ns.xp.asarray(stack)
    # In a wider type, then back: max + min - value stays inside [min, max], so it fits the dtype.
    wide = data.astype(ns.xp.float64 if data.dtype.kind == "f" else ns.xp.int64)
    return (wide.max() + wide.min() - wide).astype(data.dtype)


def min_projection(ns: ArrayNamespace, stack: Any) -> Any:
    return ns.xp.asarray(stack).min(axis=0, keepdims=True)


def std_projection(ns: ArrayNamespace, stack: Any) -> Any:
    return ns.xp.asarray(stack).astype(ns.xp.float64).std(axis=0, keepdims=True).astype(ns.xp.float32)


def threshold_manual(ns: ArrayNamespace, stack: Any, *, threshold: float) -> Any:
    return (ns.xp.asarray(stack) > threshold).astype(ns.xp.uint8)


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
