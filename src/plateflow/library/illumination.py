"""The numpy versions of the plate-level operations of :mod:`plateflow.library.specs_plate`.

Illumination correction (estimate a flat-field from many images, divide every
image by it), plate-wide percentile normalisation, and normalisation of
measurement tables to control wells. Registry names are ``numpy.<function>``
once :mod:`plateflow.library.numpy_functions` lists them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from . import _shared, specs_plate
from ._spec import implement

__all__ = list(specs_plate.__all__)

_NUMPY = "numpy"
#: Columns that name an image or object rather than measure it; never normalised by default.
IDENTIFIER_COLUMNS = frozenset({"well", "site", "channel", "z_index", "timepoint", "slice", "label", "plate", "row", "column"})
#: MAD of a normal distribution times this is its standard deviation.
_MAD_TO_SD = 1.4826


def _estimate_illumination(stack: Any, *, method: str, percentile: float, smoothing_sigma: float, dark_offset: float) -> Any:
    import numpy as np

    from scipy import ndimage

    # float32 halves the memory of a many-image sample; the mean still accumulates in float64.
    data = np.asarray(stack, dtype=np.float32) - np.float32(dark_offset)
    if method == "median":
        estimate = np.median(data, axis=0).astype(np.float64)
    elif method == "mean":
        estimate = data.mean(axis=0, dtype=np.float64)
    else:
        estimate = np.percentile(data, percentile, axis=0).astype(np.float64)
    if smoothing_sigma > 0:
        estimate = ndimage.gaussian_filter(estimate, smoothing_sigma, mode="nearest", truncate=4.0)
    mean = float(estimate.mean())
    if not math.isfinite(mean) or mean <= 0 or float(estimate.min()) <= 0:
        raise ValueError(
            f"estimate_illumination: the {method} of the {len(data)} images minus dark_offset={dark_offset!r} is not positive "
            f"everywhere (lowest {float(estimate.min()):.4g}, mean {mean:.4g}); lower dark_offset below the background "
            "intensity, or give images that have background signal"
        )
    flatfield = (estimate / mean).astype(np.float32)
    illumination = np.stack([flatfield, np.full(flatfield.shape, dark_offset, dtype=np.float32)])
    return stack, illumination


def _split_illumination(illumination: Any, image_shape: tuple[int, ...]) -> tuple[Any, Any]:
    """The flat-field and dark-field (``0.0`` when absent) of an illumination value, as float64."""
    import numpy as np

    field = np.asarray(illumination, dtype=np.float64)
    if field.ndim == 2:
        field = field[None]
    if field.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"correct_illumination: the illumination field is {field.shape[1]} x {field.shape[2]} pixels but the images are "
            f"{image_shape[0]} x {image_shape[1]}; estimate the field from images of the same size"
        )
    flatfield = field[0]
    if not np.all(np.isfinite(flatfield)) or float(flatfield.min()) <= 0:
        raise ValueError(
            f"correct_illumination: the flat-field must be positive and finite everywhere (lowest {float(np.nanmin(flatfield)):.4g}); "
            "pass the field estimate_illumination returned"
        )
    darkfield = field[1] if len(field) == 2 else 0.0
    return flatfield, darkfield


def _correct_illumination(stack: Any, *, illumination: Any, output_dtype: str) -> Any:
    import numpy as np

    data = np.asarray(stack)
    flatfield, darkfield = _split_illumination(illumination, data.shape[1:])
    corrected = (data.astype(np.float64) - darkfield) / flatfield
    if output_dtype == "float32":
        return corrected.astype(np.float32)
    if np.issubdtype(data.dtype, np.integer):
        limits = np.iinfo(data.dtype)
        return np.clip(np.rint(corrected), limits.min, limits.max).astype(data.dtype)
    if np.issubdtype(data.dtype, np.floating):
        return corrected.astype(data.dtype)
    return corrected.astype(np.float32)  # bool or other: the corrected values are not of that kind


def _estimate_plate_percentiles(stack: Any, *, low_percentile: float, high_percentile: float) -> Any:
    import numpy as np

    data = np.asarray(stack)
    # np.percentile interpolates in float64 whatever the dtype; no float copy of the whole sample.
    percentiles = np.percentile(data, [low_percentile, high_percentile])
    return stack, np.asarray(percentiles, dtype=np.float64)


def _normalize_plate_percentiles(stack: Any, *, percentiles: Any, target_min: float, target_max: float, clip: bool) -> Any:
    import numpy as np

    low, high = (float(v) for v in percentiles)
    scale, offset = _shared.rescale_coefficients(low, high, target_min, target_max)
    out = np.asarray(stack, dtype=np.float32) * np.float32(scale) + np.float32(offset)
    return np.clip(out, target_min, target_max) if clip else out


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _columns_to_normalise(rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...] | None, well_column: str) -> list[str]:
    present: dict[str, None] = {}
    for row in rows:
        present.update(dict.fromkeys(row))
    if columns is not None:
        missing = [c for c in columns if c not in present]
        if missing:
            raise ValueError(
                f"normalize_to_controls: columns {missing} are not in the table; its columns are {list(present)}"
            )
        wrong = [c for c in columns if not all(_is_number(row.get(c)) for row in rows)]
        if wrong:
            raise ValueError(
                f"normalize_to_controls: columns {wrong} hold values that are not finite numbers in some rows; "
                "normalise only numeric measurement columns"
            )
        return list(columns)
    chosen = [
        c for c in present
        if c != well_column and c not in IDENTIFIER_COLUMNS and all(_is_number(row.get(c)) for row in rows)
    ]
    if not chosen:
        raise ValueError(
            f"normalize_to_controls: the table has no numeric measurement column to normalise (columns: {list(present)}); "
            "name them with columns=(...)"
        )
    return chosen


def _normalize_to_controls(
    table: Any, *, control_wells: tuple[str, ...], method: str, columns: tuple[str, ...] | None, well_column: str
) -> Any:
    import numpy as np

    if not isinstance(table, Sequence) or isinstance(table, (str, bytes)) or not all(isinstance(r, Mapping) for r in table):
        raise ValueError(
            f"normalize_to_controls: expected a table as a list of dict rows, got {type(table).__name__}"
        )
    rows = list(table)
    if not rows:
        raise ValueError("normalize_to_controls: the table has no rows")
    without_well = [i for i, row in enumerate(rows) if well_column not in row]
    if without_well:
        raise ValueError(
            f"normalize_to_controls: rows {without_well[:5]} have no {well_column!r} column; "
            "pass the plate's table (with its well column) or set well_column="
        )
    wells = {str(row[well_column]) for row in rows}
    absent = [w for w in control_wells if w not in wells]
    if absent:
        raise ValueError(
            f"normalize_to_controls: control wells {absent} have no rows in the table; its wells are {sorted(wells)}"
        )
    names = _columns_to_normalise(rows, columns, well_column)
    controls = set(control_wells)
    control_rows = [row for row in rows if str(row[well_column]) in controls]
    centre_and_scale: dict[str, tuple[float, float]] = {}
    problems = []
    for name in names:
        values = np.array([float(row[name]) for row in control_rows], dtype=np.float64)
        if method == "zscore":
            centre = float(values.mean())
            scale = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        elif method == "robust_z":
            centre = float(np.median(values))
            scale = _MAD_TO_SD * float(np.median(np.abs(values - centre)))
        else:
            centre = 0.0
            scale = float(values.mean()) / 100.0
        if scale == 0 or not math.isfinite(scale):
            what = "mean" if method == "percent_of_control" else "spread"
            problems.append(f"{name!r} (the controls' {what} is 0)")
        centre_and_scale[name] = (centre, scale)
    if problems:
        raise ValueError(
            f"normalize_to_controls: cannot normalise with method={method!r} over {len(control_rows)} control rows: "
            + ", ".join(problems)
            + "; choose other control wells or another method"
        )
    out = []
    for row in rows:
        new = dict(row)
        for name in names:
            centre, scale = centre_and_scale[name]
            new[f"{name}_{method}"] = (float(row[name]) - centre) / scale
        out.append(new)
    return out


def _make(op: Any, kernel: Any) -> Any:
    return implement(op, kernel, memory_type=_NUMPY, module=__name__)


estimate_illumination = _make(specs_plate.estimate_illumination, _estimate_illumination)
correct_illumination = _make(specs_plate.correct_illumination, _correct_illumination)
estimate_plate_percentiles = _make(specs_plate.estimate_plate_percentiles, _estimate_plate_percentiles)
normalize_plate_percentiles = _make(specs_plate.normalize_plate_percentiles, _normalize_plate_percentiles)
normalize_to_controls = _make(specs_plate.normalize_to_controls, _normalize_to_controls)
