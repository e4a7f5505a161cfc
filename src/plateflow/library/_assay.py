"""Host (numpy) kernels of the assay operations: nuclei, cells, per-object measurements.

Every backend runs these on the host: segmentation is a chain of scikit-image
steps whose cost is in the watershed, and measurements need
``regionprops_table``. Each kernel takes and returns numpy arrays of one image
(``Y, X``) or tables (lists of dict rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "estimate_nucleus_diameter",
    "segment_nuclei_plane",
    "segment_nuclei_classic",
    "grow_cells",
    "object_measurements",
    "object_relationships",
    "AREA_SHAPE",
    "INTENSITY",
]

#: CellProfiler AreaShape feature names and the regionprops property behind each.
AREA_SHAPE: tuple[tuple[str, str], ...] = (
    ("Area", "area"),
    ("Perimeter", "perimeter"),
    ("Eccentricity", "eccentricity"),
    ("Solidity", "solidity"),
)
#: CellProfiler Intensity feature names, per channel.
INTENSITY: tuple[str, ...] = (
    "MeanIntensity",
    "MedianIntensity",
    "MaxIntensity",
    "MinIntensity",
    "IntegratedIntensity",
    "StdIntensity",
)

# Factors of the nucleus diameter that drive the automatic mode. They are
# geometric, not fitted to one image: the blur stays well below the nucleus
# size, debris is a tenth of a nucleus, and two seeds closer than 0.15
# diameters belong to one nucleus.
_SIGMA_PER_DIAMETER = 0.05
_MIN_AREA_FRACTION = 0.1
_SEED_DISTANCE_PER_DIAMETER = 0.15
_COMPACT_SOLIDITY = 0.9
# The brightness that weights the seeds is blurred by a tenth of a diameter: the
# texture inside a nucleus (nucleoli, chromatin) must not make seeds of its own.
_SEED_BLUR_PER_DIAMETER = 0.1


def estimate_nucleus_diameter(plane: Any) -> float | None:
    """Median equivalent diameter of the compact objects of an Otsu mask, in pixels; ``None`` if there are none.

    Clumps of touching nuclei are not convex, so leaving out objects of
    solidity below 0.9 keeps them from inflating the estimate; with fewer
    than three compact objects every object counts.
    """
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import regionprops_table

    smooth = gaussian(np.asarray(plane, dtype=np.float32), sigma=1.0, mode="nearest", preserve_range=True)
    if smooth.min() == smooth.max():
        return None
    mask = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    labels, count = ndi.label(mask)
    if count == 0:
        return None
    table = regionprops_table(labels, properties=("area", "solidity"))
    areas = np.asarray(table["area"], dtype=np.float64)
    keep = areas >= 9  # a 3 x 3 speck says nothing about nucleus size
    if not keep.any():
        return None
    compact = keep & (np.asarray(table["solidity"]) >= _COMPACT_SOLIDITY)
    chosen = areas[compact] if compact.sum() >= 3 else areas[keep]
    return float(2.0 * math.sqrt(float(np.median(chosen)) / math.pi))


def _lower_threshold(smooth: Any, otsu: float) -> float:
    """The lower level of a three-class multi-Otsu, never above Otsu's; Otsu's when there are too few grey levels."""
    from skimage.filters import threshold_multiotsu

    try:
        low = float(threshold_multiotsu(smooth, classes=3)[0])
    except ValueError:  # fewer distinct values than classes
        return otsu
    return min(low, otsu)


def _filled_without_debris(mask: Any, min_size: int) -> Any:
    from scipy import ndimage as ndi
    from skimage.morphology import remove_small_objects

    mask = ndi.binary_fill_holes(mask)
    return remove_small_objects(mask, max_size=min_size - 1) if min_size > 1 else mask


def _seeds(distance: Any, brightness: Any, mask: Any, min_distance: int) -> Any:
    """Seeds of one nucleus each: maxima at least ``min_distance`` apart, per region of ``mask``,
    of the distance map weighted by brightness.

    Touching nuclei meet at a neck of the mask and, in fluorescence, at a
    darker seam; weighting the distance by (1 + normalized brightness)
    separates the two maxima where the distance alone has one plateau.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    if not mask.any():
        # Nothing as large as the nucleus size asked for (a diameter larger than every object): no seeds.
        return np.empty((0, mask.ndim), dtype=np.intp)
    regions, _ = ndi.label(mask)
    inside = brightness[mask]
    low, span = float(inside.min()), float(inside.max() - inside.min())
    weight = 1.0 + (brightness - low) / span if span > 0 else 1.0
    return peak_local_max(distance * weight, min_distance=min_distance, labels=regions, exclude_border=False)


def _drop_small(labels: Any, min_size: int) -> Any:
    from skimage.segmentation import relabel_sequential

    small = np.flatnonzero(np.bincount(labels.ravel()) < min_size)
    labels[np.isin(labels, small[small > 0])] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def segment_nuclei_plane(
    plane: Any, *, diameter: float | None, sigma: float | None, min_size: int | None, min_distance: int | None
) -> Any:
    """Nucleus labels of one image by the size-driven, two-threshold method of ``segment_nuclei``."""
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    image = np.asarray(plane, dtype=np.float32)
    empty = np.zeros(image.shape, dtype=np.int32)
    if diameter is None:
        diameter = estimate_nucleus_diameter(image)
        if diameter is None:
            return empty
    if sigma is None:
        sigma = max(0.5, _SIGMA_PER_DIAMETER * diameter)
    if min_size is None:
        min_size = int(_MIN_AREA_FRACTION * math.pi * diameter * diameter / 4.0)
    if min_distance is None:
        min_distance = max(1, int(round(_SEED_DISTANCE_PER_DIAMETER * diameter)))
    smooth = gaussian(image, sigma=sigma, mode="nearest", preserve_range=True) if sigma > 0 else image
    if smooth.min() == smooth.max():
        return empty
    high = float(threshold_otsu(smooth))
    low = _lower_threshold(smooth, high)
    cores = _filled_without_debris(smooth > high, min_size)
    extent = _filled_without_debris(smooth > low, min_size) | cores
    brightness = gaussian(image, sigma=_SEED_BLUR_PER_DIAMETER * diameter, mode="nearest", preserve_range=True)
    markers = np.zeros(image.shape, dtype=np.int32)
    peaks = _seeds(ndi.distance_transform_edt(cores), brightness, cores, min_distance)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    extent_distance = ndi.distance_transform_edt(extent)
    # Dim nuclei have no bright core: seed them from their own distance maxima.
    regions, _ = ndi.label(extent)
    seeded = np.unique(regions[markers > 0])
    orphans = extent & ~np.isin(regions, seeded)
    if orphans.any():
        extra = _seeds(extent_distance, brightness, orphans, min_distance)
        markers[tuple(extra.T)] = np.arange(len(peaks) + 1, len(peaks) + len(extra) + 1, dtype=np.int32)
    labels = watershed(-extent_distance, markers, mask=extent)
    return _drop_small(labels, min_size)


def segment_nuclei_classic(plane: Any, sigma: float, min_size: int, min_distance: int) -> Any:
    """The single-threshold method (blur, Otsu, watershed from distance maxima), unchanged from earlier versions."""
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


def grow_cells(
    body: Any,
    nuclei: Any,
    *,
    method: str,
    sigma: float,
    threshold_correction: float,
    regularization: float,
    max_distance: int,
) -> Any:
    """Cell labels grown from ``nuclei`` over the cell-body image ``body``, numbered as the nuclei."""
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, sobel, threshold_otsu
    from skimage.segmentation import expand_labels, watershed

    nuclei = np.asarray(nuclei, dtype=np.int32)
    image = np.asarray(body, dtype=np.float32)
    smooth = gaussian(image, sigma=sigma, mode="nearest", preserve_range=True) if sigma > 0 else image
    if smooth.min() == smooth.max():
        foreground = np.zeros(image.shape, dtype=bool)
    else:
        foreground = smooth > threshold_otsu(smooth) * threshold_correction
    foreground |= nuclei > 0
    if not nuclei.any():
        return np.zeros(image.shape, dtype=np.int32)
    distance_to_nucleus = ndi.distance_transform_edt(nuclei == 0)
    reach = max_distance if max_distance > 0 else (10 if method == "distance" else 0)
    if reach > 0:
        foreground &= distance_to_nucleus <= reach
    if method == "distance":
        grown = expand_labels(nuclei, distance=reach)
        cells = np.where(foreground, grown, 0)
    else:
        if method == "watershed":
            landscape = -smooth
        else:  # propagation: intensity edges, plus distance weighed by the regularization
            edges = sobel(smooth)
            scale = float(np.percentile(edges[foreground], 99)) if foreground.any() else 1.0
            landscape = edges / (scale if scale > 0 else 1.0) + regularization * distance_to_nucleus
        cells = watershed(landscape, markers=nuclei, mask=foreground)
    # The flood only reaches foreground connected to a nucleus: stray foreground stays 0.
    return cells.astype(np.int32)


def _channel_names(count: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"C{i + 1}" for i in range(count)]
    if len(names) != count:
        raise ValueError(f"channel_names has {len(names)} names but the stack has {count} channels; give one per channel")
    return [str(n) for n in names]


def _median_intensity(mask: Any, intensity: Any) -> Any:
    values = intensity[mask]
    return np.median(values, axis=0)


def object_measurements(labels: Any, channels: Any, object_name: str, channel_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per object of the 2-D ``labels``: shape, centre and intensity in each channel of (C, Y, X) ``channels``.

    Columns follow CellProfiler: ``ObjectNumber``, ``<Object>_AreaShape_<Feature>``,
    ``<Object>_Location_Center_X`` / ``_Y`` and ``<Object>_Intensity_<Feature>_<channel>``.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    data = np.asarray(channels, dtype=np.float64)
    if data.ndim == 2:
        data = data[None]
    if labels.shape != data.shape[1:]:
        raise ValueError(f"{object_name} labels of shape {labels.shape} do not match the images of shape {data.shape[1:]}")
    names = _channel_names(len(data), channel_names)
    if not labels.any():
        return []
    shape = regionprops_table(
        labels.astype(np.int32), properties=("label", "centroid", *(prop for _, prop in AREA_SHAPE))
    )
    intensity = regionprops_table(
        labels.astype(np.int32),
        intensity_image=np.moveaxis(data, 0, -1),
        properties=("label", "area", "intensity_mean", "intensity_max", "intensity_min", "intensity_std"),
        extra_properties=(_median_intensity,),
    )
    rows: list[dict[str, Any]] = []
    for i in range(len(shape["label"])):
        row: dict[str, Any] = {"ObjectNumber": int(shape["label"][i])}
        for feature, prop in AREA_SHAPE:
            value = shape[prop][i]
            row[f"{object_name}_AreaShape_{feature}"] = int(value) if prop == "area" else float(value)
        row[f"{object_name}_Location_Center_X"] = float(shape["centroid-1"][i])
        row[f"{object_name}_Location_Center_Y"] = float(shape["centroid-0"][i])
        area = float(intensity["area"][i])
        for c, channel in enumerate(names):
            suffix = f"-{c}" if len(names) > 1 else ""
            mean = float(intensity[f"intensity_mean{suffix}"][i])
            values = {
                "MeanIntensity": mean,
                "MedianIntensity": float(intensity[f"_median_intensity{suffix}"][i]),
                "MaxIntensity": float(intensity[f"intensity_max{suffix}"][i]),
                "MinIntensity": float(intensity[f"intensity_min{suffix}"][i]),
                "IntegratedIntensity": mean * area,
                "StdIntensity": float(intensity[f"intensity_std{suffix}"][i]),
            }
            for feature in INTENSITY:
                row[f"{object_name}_Intensity_{feature}_{channel}"] = values[feature]
        rows.append(row)
    return rows


def object_relationships(parents: Any, children: Any, parent_name: str, child_name: str) -> list[dict[str, Any]]:
    """One row per object of ``parents``: the object of ``children`` covering most of it (0 for none)."""
    parents = np.asarray(parents).ravel()
    children = np.asarray(children).ravel()
    rows = []
    inside = parents > 0
    for parent in np.unique(parents[inside]):
        covered = children[parents == parent]
        covered = covered[covered > 0]
        child = int(np.bincount(covered).argmax()) if covered.size else 0
        rows.append({f"{parent_name}_ObjectNumber": int(parent), f"{child_name}_ObjectNumber": child})
    return rows
