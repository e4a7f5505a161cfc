"""The bundled library for the ``numpy`` memory type (numpy, scipy, scikit-image).

Every operation of :mod:`plateflow.library.specs` and
:mod:`plateflow.library.specs_assay` has a numpy version here; it is the
reference the other backends are tested against. Registry names are
``numpy.<function>``.
"""

from __future__ import annotations

from typing import Any

# _assay (and numpy with it) is imported by the functions that use it: loading the registry imports no array library.
from . import _shared, _xp, specs, specs_assay
from ._spec import implement

# The plate-level operations (illumination correction, plate normalisation) live in
# their own module; listing them here registers them as numpy.<name>.
# normalize_to_controls is not listed: it takes a measurement table, not an image stack,
# so it is called on a run's merged tables (docs/plate-steps.md, "Reductions"), not a step.
from .illumination import (  # noqa: F401 - re-exported for the registry
    correct_illumination,
    estimate_illumination,
    estimate_plate_percentiles,
    normalize_plate_percentiles,
)

_PLATE_OPERATIONS = ("estimate_illumination", "correct_illumination", "estimate_plate_percentiles", "normalize_plate_percentiles")

__all__ = list(dict.fromkeys([*specs.__all__, *specs_assay.__all__, *_PLATE_OPERATIONS]))

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


def _segment_nuclei(stack: Any, *, diameter: Any, sigma: Any, min_size: Any, min_distance: Any) -> Any:
    import numpy as np

    from . import _assay

    if diameter is None and None not in (sigma, min_size, min_distance):
        return _per_image(stack, lambda plane: _assay.segment_nuclei_classic(plane, sigma, min_size, min_distance), np.int32)
    return _per_image(
        stack,
        lambda plane: _assay.segment_nuclei_plane(
            plane, diameter=diameter, sigma=sigma, min_size=min_size, min_distance=min_distance
        ),
        np.int32,
    )


def _measure_nuclei(stack: Any, *, sigma: float, min_size: int, min_distance: int) -> Any:
    import numpy as np

    from . import _assay

    data = np.asarray(stack)
    labels = _per_image(data, lambda plane: _assay.segment_nuclei_classic(plane, sigma, min_size, min_distance), np.int32)
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


def _single_image(value: Any, what: str, shape: tuple[int, ...]) -> Any:
    """A special input label image as 2-D numpy, checked against the images of the stack."""
    import numpy as np

    array = np.asarray(value)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.shape != tuple(shape):
        raise ValueError(
            f"{what} has shape {np.shape(value)} but the images of the stack are {tuple(shape)}; "
            "it must be the (1, Y, X) label image of the same site (give both steps variable_components=('channel',))"
        )
    return array


def _channel(data: Any, index: int, what: str) -> Any:
    if index >= len(data):
        raise ValueError(f"{what}={index} but the stack has {len(data)} images (0 to {len(data) - 1}); "
                         "the step's variable_components must give it the channels of one site")
    return data[index]


def _identify_nuclei(stack: Any, *, nuclei_channel: int, diameter: Any, sigma: Any, min_size: Any, min_distance: Any) -> Any:
    import numpy as np

    data = np.asarray(stack)
    plane = _channel(data, nuclei_channel, "nuclei_channel")
    labels = _segment_nuclei(plane[None], diameter=diameter, sigma=sigma, min_size=min_size, min_distance=min_distance)
    return stack, labels


def _identify_cells(stack: Any, *, nuclei_labels: Any, cell_channel: int, method: str, sigma: float,
                    threshold_correction: float, regularization: float, max_distance: int) -> Any:
    import numpy as np

    from . import _assay

    data = np.asarray(stack)
    body = _channel(data, cell_channel, "cell_channel")
    nuclei = _single_image(nuclei_labels, "nuclei_labels", body.shape)
    cells = _assay.grow_cells(body, nuclei, method=method, sigma=sigma, threshold_correction=threshold_correction,
                              regularization=regularization, max_distance=max_distance)
    cytoplasm = np.where(nuclei > 0, 0, cells).astype(np.int32)
    return stack, cells[None], cytoplasm[None]


def _measure_objects(stack: Any, *, nuclei_labels: Any, cell_labels: Any, cytoplasm_labels: Any, channel_names: Any) -> Any:
    import numpy as np

    from . import _assay

    data = np.asarray(stack)
    shape = data.shape[1:]
    nuclei = _single_image(nuclei_labels, "nuclei_labels", shape)
    cells = _single_image(cell_labels, "cell_labels", shape)
    cytoplasm = _single_image(cytoplasm_labels, "cytoplasm_labels", shape)
    return (
        stack,
        _assay.object_measurements(nuclei, data, "Nuclei", channel_names),
        _assay.object_measurements(cells, data, "Cells", channel_names),
        _assay.object_measurements(cytoplasm, data, "Cytoplasm", channel_names),
        _assay.object_relationships(nuclei, cells, "Nuclei", "Cells"),
    )


def _sobel(stack: Any) -> Any:
    import numpy as np
    from skimage.filters import sobel

    return _per_image(np.asarray(stack, dtype=np.float32), lambda plane: sobel(plane, mode="nearest"), np.float32)


def _skimage_threshold(name: str) -> Any:
    def kernel(stack: Any, *, per_slice: bool) -> Any:
        import skimage.filters

        return _mask_by(getattr(skimage.filters, name), stack, per_slice)

    kernel.__name__ = f"_{name}"
    return kernel


def _binary(name: str) -> Any:
    def kernel(stack: Any, *, radius: int) -> Any:
        import numpy as np
        import skimage.morphology
        from skimage.morphology import disk

        footprint = disk(radius)
        # scikit-image's grey morphology on boolean masks; its erosion treats the outside as
        # foreground, so objects touching the border do not shrink from it.
        operation = getattr(skimage.morphology, name)
        return _per_image(stack, lambda plane: operation(plane != 0, footprint), np.uint8)

    kernel.__name__ = f"_{name}"
    return kernel


def _fill_holes(stack: Any) -> Any:
    import numpy as np
    from scipy import ndimage as ndi
    from skimage.segmentation import expand_labels

    data = np.asarray(stack)

    def fill(plane: Any) -> Any:
        filled = ndi.binary_fill_holes(plane != 0)
        if plane.dtype in (np.uint8, np.bool_):  # a mask
            return filled
        # Labels: each hole takes the label that encloses it (holes are never wider than their object).
        grown = expand_labels(plane, distance=max(plane.shape))
        return np.where(filled, np.where(plane != 0, plane, grown), 0)

    return _per_image(data, fill, data.dtype)


def _remove_small_objects(stack: Any, *, min_size: int, connectivity: int) -> Any:
    import numpy as np
    from scipy import ndimage as ndi

    data = np.asarray(stack)
    structure = ndi.generate_binary_structure(2, connectivity)

    def remove(plane: Any) -> Any:
        is_mask = plane.dtype in (np.uint8, np.bool_)
        labels = ndi.label(plane != 0, structure=structure)[0] if is_mask else plane.astype(np.int64)
        small = np.flatnonzero(np.bincount(labels.ravel()) < min_size)
        return np.where(np.isin(labels, small[small > 0]), 0, plane)

    return _per_image(data, remove, data.dtype)


def _expand_labels(stack: Any, *, distance: int) -> Any:
    import numpy as np
    from skimage.segmentation import expand_labels

    return _per_image(np.asarray(stack).astype(np.int32), lambda plane: expand_labels(plane, distance=distance), np.int32)


def _remove_border_objects(stack: Any, *, buffer_size: int) -> Any:
    import numpy as np
    from skimage.segmentation import clear_border, relabel_sequential

    def clear(plane: Any) -> Any:
        return relabel_sequential(clear_border(plane, buffer_size=buffer_size))[0]

    return _per_image(np.asarray(stack).astype(np.int32), clear, np.int32)


def _make(op: Any, kernel: Any) -> Any:
    return implement(op, kernel, memory_type=_NUMPY, module=__name__)


normalize_percentile = _make(specs.normalize_percentile, _numpy_kernel(_xp.normalize_percentile))
gaussian_filter = _make(specs.gaussian_filter, _numpy_kernel(_xp.gaussian_filter))
median_filter = _make(specs.median_filter, _numpy_kernel(_xp.median_filter))
top_hat = _make(specs_assay.top_hat, _numpy_kernel(_xp.top_hat))
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
segment_nuclei = _make(specs_assay.segment_nuclei, _segment_nuclei)
measure_nuclei = _make(specs.measure_nuclei, _measure_nuclei)
composite_channels = _make(specs.composite_channels, _composite_channels)
find_tile_positions = _make(specs.find_tile_positions, _find_tile_positions)
assemble_tiles = _make(specs.assemble_tiles, _assemble_tiles)
identify_nuclei = _make(specs_assay.identify_nuclei, _identify_nuclei)
identify_cells = _make(specs_assay.identify_cells, _identify_cells)
measure_objects = _make(specs_assay.measure_objects, _measure_objects)
bottom_hat = _make(specs_assay.bottom_hat, _numpy_kernel(_xp.bottom_hat))
mean_filter = _make(specs_assay.mean_filter, _numpy_kernel(_xp.mean_filter))
minimum_filter = _make(specs_assay.minimum_filter, _numpy_kernel(_xp.minimum_filter))
maximum_filter = _make(specs_assay.maximum_filter, _numpy_kernel(_xp.maximum_filter))
variance_filter = _make(specs_assay.variance_filter, _numpy_kernel(_xp.variance_filter))
sobel = _make(specs_assay.sobel, _sobel)
laplace = _make(specs_assay.laplace, _numpy_kernel(_xp.laplace))
difference_of_gaussians = _make(specs_assay.difference_of_gaussians, _numpy_kernel(_xp.difference_of_gaussians))
subtract_gaussian_background = _make(specs_assay.subtract_gaussian_background, _numpy_kernel(_xp.subtract_gaussian_background))
invert_intensity = _make(specs_assay.invert_intensity, _numpy_kernel(_xp.invert_intensity))
min_projection = _make(specs_assay.min_projection, _numpy_kernel(_xp.min_projection))
std_projection = _make(specs_assay.std_projection, _numpy_kernel(_xp.std_projection))
threshold_manual = _make(specs_assay.threshold_manual, _numpy_kernel(_xp.threshold_manual))
threshold_triangle = _make(specs_assay.threshold_triangle, _skimage_threshold("threshold_triangle"))
threshold_yen = _make(specs_assay.threshold_yen, _skimage_threshold("threshold_yen"))
threshold_isodata = _make(specs_assay.threshold_isodata, _skimage_threshold("threshold_isodata"))
threshold_mean = _make(specs_assay.threshold_mean, _skimage_threshold("threshold_mean"))
binary_erosion = _make(specs_assay.binary_erosion, _binary("erosion"))
binary_dilation = _make(specs_assay.binary_dilation, _binary("dilation"))
binary_opening = _make(specs_assay.binary_opening, _binary("opening"))
binary_closing = _make(specs_assay.binary_closing, _binary("closing"))
fill_holes = _make(specs_assay.fill_holes, _fill_holes)
remove_small_objects = _make(specs_assay.remove_small_objects, _remove_small_objects)
expand_labels = _make(specs_assay.expand_labels, _expand_labels)
remove_border_objects = _make(specs_assay.remove_border_objects, _remove_border_objects)
