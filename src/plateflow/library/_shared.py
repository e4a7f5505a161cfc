"""Logic every backend shares: scalar math, footprints, tables, tile geometry.

Nothing here touches a GPU array: backends reduce their data to scalars or
small host arrays (a histogram, a label image for measuring) and call these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "OTSU_BINS",
    "rescale_coefficients",
    "percentile_ranks",
    "histogram_edges",
    "otsu_from_counts",
    "disk_offsets",
    "disk_sequence",
    "object_tables",
    "grid_of",
    "neighbour_pairs",
    "strip_size",
    "expected_offset",
    "overlap_strips",
    "solve_positions",
]

#: Bins of the Otsu histogram, as scikit-image uses for float images.
OTSU_BINS = 256


def rescale_coefficients(low: float, high: float, target_min: float, target_max: float) -> tuple[float, float]:
    """``(scale, offset)`` mapping ``low -> target_min`` and ``high -> target_max``.

    A flat stack (``high == low``) maps to ``target_min`` rather than dividing by zero.
    """
    if high <= low:
        return 0.0, float(target_min)
    scale = (target_max - target_min) / (high - low)
    return float(scale), float(target_min - low * scale)


def percentile_ranks(count: int, percentile: float) -> tuple[int, int, float]:
    """Sorted positions and weight of a percentile, numpy's ``"linear"`` method.

    The percentile is ``v[lower] + fraction * (v[upper] - v[lower])`` of the
    sorted values ``v``; backends without ``percentile`` use this with a
    partial sort.
    """
    position = (count - 1) * percentile / 100.0
    lower = int(math.floor(position))
    upper = min(lower + 1, count - 1)
    return lower, upper, position - lower


def histogram_edges(low: float, high: float, bins: int = OTSU_BINS) -> Any:
    """``float32`` bin edges between ``low`` and ``high``, exactly as ``numpy.histogram`` makes them."""
    import numpy as np

    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(
            f"the values range from {low} to {high}: NaN or infinite values have no threshold; "
            "replace them first (e.g. numpy.nan_to_num)"
        )

    return np.linspace(np.float32(low), np.float32(high), bins + 1, dtype=np.float32)


def otsu_from_counts(counts: Any, edges: Any) -> float:
    """Otsu threshold from a histogram, by scikit-image's own computation."""
    import numpy as np
    from skimage.filters import threshold_otsu

    centers = (edges[:-1] + edges[1:]) / np.float32(2)
    return float(threshold_otsu(hist=(np.asarray(counts), centers)))


def disk_offsets(radius: int) -> list[tuple[int, int]]:
    """``(dy, dx)`` offsets of scikit-image's ``disk(radius)`` footprint."""
    import numpy as np
    from skimage.morphology import disk

    ys, xs = np.nonzero(disk(radius))
    return [(int(y) - radius, int(x) - radius) for y, x in zip(ys, xs)]


def disk_sequence(radius: int) -> list[tuple[Any, int]]:
    """scikit-image's decomposition of ``disk(radius)`` into repeated 3 x 3 footprints: ``(footprint, repeats)``.

    Eroding (or dilating) by each footprint in turn, ``repeats`` times,
    approximates the disk closely at a fraction of the cost of the full
    footprint: the background estimate of a downsampled top-hat uses it.
    """
    import numpy as np
    from skimage.morphology import disk

    return [(np.asarray(footprint, dtype=bool), int(repeats)) for footprint, repeats in disk(radius, decomposition="sequence")]


def object_tables(labels: Any, intensity: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-object and per-image rows for host (N, Y, X) ``labels`` and ``intensity`` stacks."""
    from skimage.measure import regionprops_table

    objects: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    properties = ("label", "area", "intensity_mean", "intensity_max", "centroid")
    for index, (plane_labels, plane) in enumerate(zip(labels, intensity)):
        table = regionprops_table(plane_labels, intensity_image=plane, properties=properties)
        for i in range(len(table["label"])):
            objects.append(
                {
                    "slice": index,
                    "label": int(table["label"][i]),
                    "area": int(table["area"][i]),
                    "mean_intensity": float(table["intensity_mean"][i]),
                    "max_intensity": float(table["intensity_max"][i]),
                    "centroid_y": float(table["centroid-0"][i]),
                    "centroid_x": float(table["centroid-1"][i]),
                }
            )
        counts.append({"slice": index, "object_count": len(table["label"])})
    return objects, counts


def grid_of(tiles: int, grid_shape: Sequence[int] | None) -> tuple[int, int]:
    """``(rows, columns)`` for ``tiles`` tiles, checking it fits."""
    if grid_shape is None:
        side = math.isqrt(tiles)
        if side * side != tiles:
            raise ValueError(f"{tiles} tiles do not form a square grid; give grid_shape=(rows, columns)")
        return side, side
    rows, columns = (int(n) for n in grid_shape)
    if rows * columns != tiles:
        raise ValueError(f"grid_shape={tuple(grid_shape)!r} holds {rows * columns} tiles but the stack has {tiles}")
    return rows, columns


def neighbour_pairs(rows: int, columns: int) -> list[tuple[int, int, str]]:
    """``(first, second, direction)`` of every pair of adjacent tiles, row-major indices."""
    pairs = []
    for r in range(rows):
        for c in range(columns):
            index = r * columns + c
            if c + 1 < columns:
                pairs.append((index, index + 1, "x"))
            if r + 1 < rows:
                pairs.append((index, index + columns, "y"))
    return pairs


def strip_size(length: int, overlap: float) -> int:
    """Width of the strips compared: twice the expected overlap, so an offset
    error of up to about the overlap still leaves shared content."""
    return min(length, 2 * max(1, int(round(length * overlap))))


def expected_offset(tile_shape: Sequence[int], overlap: float, direction: str) -> tuple[float, float]:
    """Offset of a tile from its left (``"x"``) or upper (``"y"``) neighbour when their strips align exactly."""
    height, width = tile_shape
    if direction == "x":
        return 0.0, float(width - strip_size(width, overlap))
    return float(height - strip_size(height, overlap)), 0.0


def overlap_strips(first: Any, second: Any, overlap: float, direction: str) -> tuple[Any, Any]:
    """The trailing strip of a tile and the leading strip of its right or lower neighbour."""
    if direction == "x":
        n = strip_size(first.shape[1], overlap)
        return first[:, -n:], second[:, :n]
    n = strip_size(first.shape[0], overlap)
    return first[-n:, :], second[:n, :]


def solve_positions(tiles: int, offsets: Sequence[tuple[int, int, tuple[float, float]]]) -> list[tuple[float, float]]:
    """Least-squares tile positions from pairwise offsets ``(first, second, (dy, dx))``; tile 0 at (0, 0)."""
    import numpy as np

    design = np.zeros((len(offsets) + 1, tiles))
    target = np.zeros((len(offsets) + 1, 2))
    for row, (first, second, delta) in enumerate(offsets):
        design[row, second], design[row, first] = 1.0, -1.0
        target[row] = delta
    design[-1, 0] = 1.0  # anchor the first tile at the origin
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return [(float(y), float(x)) for y, x in solution]
