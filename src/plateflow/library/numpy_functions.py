"""The bundled library for the ``numpy`` memory type (numpy, scipy, scikit-image).

Every operation of :mod:`plateflow.library.specs` has a numpy version here; it is
the reference the other backends are tested against. Registry names are
``numpy.<function>``.
"""

from __future__ import annotations

from typing import Any

from . import _shared, _xp, specs
from ._spec import implement

__all__ = list(specs.__all__)

_NUMPY = "numpy"


def _numpy_kernel(kernel: Any) -> Any:
    return _xp.bind(kernel, _xp.numpy_namespace)


def _per_image(stack: Any, compute: Any, dtype: Any = None) -> Any:
    """Apply ``compute`` to each image of ``stack`` and stack the results."""
    import numpy as np

    out = np.stack([compute(plane) for plane in np.asarray(stack)])
    return out if dtype is None else out.astype(dtype, copy=False)


def _rolling_ball(stack: Any, *, radius: float) -> Any:
    import numpy as np
    from skimage.restoration import rolling_ball as estimate_background

    data = np.asarray(stack)
    # rolling_ball returns the background; the image minus it is never negative.
    return _per_image(data, lambda plane: plane - estimate_background(plane, radius=radius), data.dtype)


def _unsharp_mask(stack: Any, *, radius: float, amount: float) -> Any:
    import numpy as np
    from skimage.filters import unsharp_mask as sharpen

    return _per_image(
        np.asarray(stack, dtype=np.float32),
        lambda plane: sharpen(plane, radius=radius, amount=amount, preserve_range=True),
        np.float32,
    )


def _focus_scores(stack: Any, measure: str) -> Any:
    import numpy as np
    from scipy.ndimage import laplace

    data = np.asarray(stack, dtype=np.float64)
    if measure == "laplacian_variance":
        return np.array([laplace(plane, mode="nearest").var() for plane in data])
    return data.reshape(len(data), -1).var(axis=1)


def _best_focus_projection(stack: Any, *, measure: str) -> Any:
    import numpy as np

    data = np.asarray(stack)
    best = int(np.argmax(_focus_scores(data, measure)))
    return data[best : best + 1].copy()


def _mask_by(threshold: Any, stack: Any, per_slice: bool) -> Any:
    import numpy as np

    data = np.asarray(stack, dtype=np.float32)
    if per_slice:
        return _per_image(data, lambda plane: plane > threshold(plane), np.uint8)
    return (data > threshold(data)).astype(np.uint8)


def _threshold_li(stack: Any, *, per_slice: bool) -> Any:
    from skimage.filters import threshold_li

    return _mask_by(threshold_li, stack, per_slice)


def _threshold_local(stack: Any, *, block_size: int, offset: float, method: str) -> Any:
    import numpy as np
    from skimage.filters import threshold_local

    def mask(plane: Any) -> Any:
        return plane > threshold_local(plane, block_size=block_size, method=method, offset=offset, mode="nearest")

    return _per_image(np.asarray(stack, dtype=np.float32), mask, np.uint8)


def _segment_plane(plane: Any, sigma: float, min_size: int, min_distance: int) -> Any:
    import numpy as np
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import relabel_sequential, watershed

    smooth = gaussian(plane.astype(np.float32), sigma=sigma, mode="nearest", preserve_range=True)
    if smooth.min() == smooth.max():
        return np.zeros(plane.shape, dtype=np.int32)
    mask = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    mask = remove_small_objects(mask, max_size=min_size - 1) if min_size > 1 else mask
    distance = ndi.distance_transform_edt(mask)
    # One seed per nucleus: maxima of the distance map, at most one per connected region
    # closer than min_distance, so a round nucleus is not split in two.
    components, _ = ndi.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(plane.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    labels = watershed(-distance, markers, mask=mask)
    # Splitting can leave fragments below min_size: drop them too.
    small = np.flatnonzero(np.bincount(labels.ravel()) < min_size)
    labels[np.isin(labels, small[small > 0])] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def _segment_nuclei(stack: Any, *, sigma: float, min_size: int, min_distance: int) -> Any:
    import numpy as np

    return _per_image(stack, lambda plane: _segment_plane(plane, sigma, min_size, min_distance), np.int32)


def _measure_nuclei(stack: Any, *, sigma: float, min_size: int, min_distance: int) -> Any:
    import numpy as np

    data = np.asarray(stack)
    labels = _segment_nuclei(data, sigma=sigma, min_size=min_size, min_distance=min_distance)
    objects, counts = _shared.object_tables(labels, data)
    return labels, objects, counts


def _composite_channels(stack: Any, *, method: str, weights: Any) -> Any:
    import numpy as np

    data = np.asarray(stack, dtype=np.float32)
    if weights is None:
        weights = [1.0 / len(data)] * len(data)
    if len(weights) != len(data):
        raise ValueError(f"weights has {len(weights)} values but the stack has {len(data)} images; give one per image")
    weighted = data * np.asarray(weights, dtype=np.float32)[:, None, None]
    combined = weighted.sum(axis=0) if method == "weighted_sum" else weighted.max(axis=0)
    return combined[None].astype(np.float32)


def _find_tile_positions(stack: Any, *, grid_shape: Any, overlap: float) -> Any:
    import numpy as np
    from skimage.registration import phase_cross_correlation

    data = np.asarray(stack, dtype=np.float32)
    rows, columns = _shared.grid_of(len(data), grid_shape)
    offsets = []
    for first, second, direction in _shared.neighbour_pairs(rows, columns):
        reference, moving = _shared.overlap_strips(data[first], data[second], overlap, direction)
        # Masked (linear, not circular) correlation: the strips share only part of their
        # content, which biases plain phase correlation towards a zero shift.
        everywhere = np.ones(reference.shape, dtype=bool)
        shift = phase_cross_correlation(
            reference, moving, reference_mask=everywhere, moving_mask=everywhere, overlap_ratio=0.3
        )[0]
        # The shift that moves the second strip onto the first is how far the second tile
        # lies beyond the place where the strips align.
        expected_y, expected_x = _shared.expected_offset(data.shape[1:], overlap, direction)
        offsets.append((first, second, (expected_y + float(shift[0]), expected_x + float(shift[1]))))
    return stack, _shared.solve_positions(len(data), offsets)


def _assemble_tiles(stack: Any, *, positions: Any, blend: str) -> Any:
    import numpy as np

    data = np.asarray(stack, dtype=np.float32)
    if len(positions) != len(data):
        raise ValueError(f"{len(positions)} positions for {len(data)} tiles; give one (y, x) per tile")
    corners = np.rint(np.asarray(positions, dtype=np.float64)).astype(int)
    corners -= corners.min(axis=0)
    height, width = data.shape[1:]
    canvas = np.zeros((corners[:, 0].max() + height, corners[:, 1].max() + width), dtype=np.float32)
    weight = np.zeros(canvas.shape, dtype=np.float32)
    for tile, (y, x) in zip(data, corners):
        region = (slice(y, y + height), slice(x, x + width))
        if blend == "overwrite":
            canvas[region] = tile
            weight[region] = 1.0
        else:
            canvas[region] += tile
            weight[region] += 1.0
    return (canvas / np.maximum(weight, 1.0))[None]


def _make(op: Any, kernel: Any) -> Any:
    return implement(op, kernel, memory_type=_NUMPY, module=__name__)


normalize_percentile = _make(specs.normalize_percentile, _numpy_kernel(_xp.normalize_percentile))
gaussian_filter = _make(specs.gaussian_filter, _numpy_kernel(_xp.gaussian_filter))
median_filter = _make(specs.median_filter, _numpy_kernel(_xp.median_filter))
top_hat = _make(specs.top_hat, _numpy_kernel(_xp.top_hat))
rolling_ball = _make(specs.rolling_ball, _rolling_ball)
unsharp_mask = _make(specs.unsharp_mask, _unsharp_mask)
max_projection = _make(specs.max_projection, _numpy_kernel(_xp.max_projection))
mean_projection = _make(specs.mean_projection, _numpy_kernel(_xp.mean_projection))
sum_projection = _make(specs.sum_projection, _numpy_kernel(_xp.sum_projection))
best_focus_projection = _make(specs.best_focus_projection, _best_focus_projection)
threshold_otsu = _make(specs.threshold_otsu, _numpy_kernel(_xp.threshold_otsu))
threshold_li = _make(specs.threshold_li, _threshold_li)
threshold_local = _make(specs.threshold_local, _threshold_local)
label = _make(specs.label, _numpy_kernel(_xp.label))
segment_nuclei = _make(specs.segment_nuclei, _segment_nuclei)
measure_nuclei = _make(specs.measure_nuclei, _measure_nuclei)
composite_channels = _make(specs.composite_channels, _composite_channels)
find_tile_positions = _make(specs.find_tile_positions, _find_tile_positions)
assemble_tiles = _make(specs.assemble_tiles, _assemble_tiles)
