"""Operations over many images of a plate: illumination, plate-wide normalisation, controls.

These are written to run in plate-level steps (``docs/plate-steps.md``): an
*estimate* runs once over the images of the plate (or a sample of its wells
and sites) and hands a small value to the per-well steps as a special output;
the matching *apply* operation takes that value as a special input and runs on
every image. Each estimate takes the stack of sample images (N, Y, X) of one
channel: the plate step groups by channel so each channel gets its own field.

- ``estimate_illumination`` -> ``illumination``, a ``float32`` array of shape
  (2, Y, X): the flat-field (a multiplicative gain, mean 1) and the dark-field
  (an additive offset, in intensity units of the stack).
  ``correct_illumination`` takes it and returns ``(raw - dark) / flat``.
- ``estimate_plate_percentiles`` -> ``percentiles``, a ``float64`` array
  ``[low, high]`` of intensities; ``normalize_plate_percentiles`` maps them to
  a target range in every image, so every well shares one scale.
- ``normalize_to_controls`` works on a measurement table (a list of dict rows
  with a ``well`` column, as the plate's tables are) and adds columns
  normalised to the plate's control wells.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ..signatures import Bounds, Unit
from ._spec import operation

__all__ = [
    "estimate_illumination",
    "correct_illumination",
    "estimate_plate_percentiles",
    "normalize_plate_percentiles",
    "normalize_to_controls",
]

Percentile = Annotated[float, Bounds(0, 100), Unit("%")]

#: Shapes an illumination value may have: (Y, X) or (1, Y, X) a flat-field alone, (2, Y, X) flat and dark.
ILLUMINATION_SHAPES = "(Y, X) or (1, Y, X) for a flat-field alone, or (2, Y, X) for flat-field and dark-field"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _array_shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(int(n) for n in shape)


@operation("illumination", special_outputs=("illumination",))
def estimate_illumination(
    stack,
    *,
    method: Literal["percentile", "median", "mean"] = "percentile",
    percentile: Percentile = 25.0,
    smoothing_sigma: Annotated[float, Bounds(0, 1000), Unit("px")] = 16.0,
    dark_offset: Annotated[float, Bounds(0, None)] = 0.0,
):
    """Estimate the illumination field (flat-field and dark-field) from many images.

    The CellProfiler *CorrectIlluminationCalculate* approach over all images:
    subtract the dark offset, take a robust per-pixel statistic over the
    stack (objects sit in different places in each image, so a low
    percentile of each pixel's values follows the background), smooth it with
    a Gaussian, and divide by its mean so the flat-field has mean 1. Give it many images (tens, from many wells)
    of one channel; the more images, the less the objects show through.
    Returns ``(stack, illumination)``: the stack unchanged (so the step
    after this one reads the same images) and ``illumination``, a (2, Y, X)
    ``float32`` array holding the flat-field and the dark-field (the constant
    ``dark_offset``), for ``correct_illumination``.

    Parameters
    ----------
    method : str
        Per-pixel statistic over the images: ``"percentile"`` (the
        ``percentile`` below; a low one stays on the background even where
        objects cover a pixel in most images), ``"median"`` (objects shift it
        upwards where they cover a pixel in many of the images), or
        ``"mean"`` (only for sparse, dim objects: bright ones show through).
    percentile : float
        Percentile of each pixel's values over the images, in percent, for
        ``method="percentile"``; 10 to 30 keeps clear of the objects and of
        the darkest noise.
    smoothing_sigma : float
        Standard deviation of the Gaussian smoothing of the estimate, in
        pixels; larger than the objects, smaller than the field's features.
        0 leaves it unsmoothed.
    dark_offset : float
        The dark-field: the intensity every pixel shows with no light (the
        camera offset), in intensity units of the stack; subtracted before
        the statistic.
    """


@operation("illumination", special_inputs=("illumination",))
def correct_illumination(
    stack,
    *,
    illumination,
    output_dtype: Literal["same", "float32"] = "same",
):
    """Correct uneven illumination: subtract the dark-field, divide by the flat-field.

    ``corrected = (image - darkfield) / flatfield`` for each image of the
    stack. With ``output_dtype="same"`` an integer stack stays of its dtype
    (rounded, clipped to the dtype's range, so values below the dark-field
    become 0 for unsigned types) and a float stack stays float; ``"float32"``
    returns unrounded ``float32``.

    Parameters
    ----------
    illumination : array
        The field from ``estimate_illumination``: shape (2, Y, X) with the
        flat-field then the dark-field, or (Y, X) / (1, Y, X) for a flat-field
        alone (no dark-field). The flat-field must be positive everywhere.
    output_dtype : str
        ``"same"``: the stack's dtype; ``"float32"``: ``float32``.
    """
    shape = _array_shape(illumination)
    _require(
        shape is not None and (len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 2))),
        f"illumination must be an array of shape {ILLUMINATION_SHAPES}, got "
        + (f"shape {shape}" if shape is not None else f"{type(illumination).__name__} {illumination!r}"),
    )


@operation("normalize", special_outputs=("percentiles",))
def estimate_plate_percentiles(
    stack,
    *,
    low_percentile: Percentile = 1.0,
    high_percentile: Percentile = 99.0,
):
    """Estimate intensity percentiles over many images, for plate-wide normalisation.

    The percentiles are taken over every pixel of every image of the stack
    (the plate's sample), so all wells are later rescaled alike. Returns
    ``(stack, percentiles)``: the stack unchanged and ``percentiles``, a
    ``float64`` array ``[low, high]`` of intensities, for
    ``normalize_plate_percentiles``.

    Parameters
    ----------
    low_percentile : float
        Percentile of the values, in percent, that will map to the low end.
    high_percentile : float
        Percentile of the values, in percent, that will map to the high end.
    """
    _require(
        low_percentile < high_percentile,
        f"low_percentile={low_percentile!r} must be below high_percentile={high_percentile!r}",
    )


@operation("normalize", special_inputs=("percentiles",))
def normalize_plate_percentiles(
    stack,
    *,
    percentiles,
    target_min: float = 0.0,
    target_max: float = 1.0,
    clip: bool = True,
):
    """Rescale intensities so the plate's percentiles map to a target range.

    Like ``normalize_percentile``, with the low/high intensities estimated
    once over the plate (``estimate_plate_percentiles``) instead of per
    stack, so every well keeps one scale. Returns ``float32``.

    Parameters
    ----------
    percentiles : array
        ``[low, high]`` intensities from ``estimate_plate_percentiles``.
    target_min : float
        Output value of the low intensity.
    target_max : float
        Output value of the high intensity.
    clip : bool
        Clip values outside ``[target_min, target_max]``.
    """
    shape = _array_shape(percentiles)
    length = shape[0] if shape is not None and len(shape) == 1 else (len(percentiles) if isinstance(percentiles, (list, tuple)) else None)
    _require(length == 2, f"percentiles must be [low, high] (two intensities), got {percentiles!r}")
    low, high = (float(v) for v in percentiles)
    _require(low < high, f"percentiles=[{low!r}, {high!r}]: the low intensity must be below the high one")
    _require(target_min < target_max, f"target_min={target_min!r} must be below target_max={target_max!r}")


@operation("measurement")
def normalize_to_controls(
    table,
    *,
    control_wells: tuple[str, ...],
    method: Literal["zscore", "robust_z", "percent_of_control"] = "robust_z",
    columns: tuple[str, ...] | None = None,
    well_column: str = "well",
):
    """Normalise measurement columns to the plate's control wells.

    ``table`` is a list of dict rows with a well column (a plate's table, as
    a run writes it). For each measured column, the statistics of the rows
    of the control wells give the scale, and a column ``<name>_<method>`` is
    added to every row (the input rows are not changed):

    - ``"zscore"``: ``(x - mean) / std`` (sample standard deviation, ddof 1);
    - ``"robust_z"``: ``(x - median) / (1.4826 * MAD)``, robust to outlying controls;
    - ``"percent_of_control"``: ``100 * x / mean``.

    Returns the new list of rows.

    Parameters
    ----------
    control_wells : tuple of str
        Ids of the control wells (e.g. negative controls, ``("A01", "H12")``).
    method : str
        ``"zscore"``, ``"robust_z"`` or ``"percent_of_control"``.
    columns : tuple of str or None
        The columns to normalise; ``None`` normalises every numeric column
        except identifiers (well, site, channel, z_index, timepoint, slice, label).
    well_column : str
        The column holding the well id.
    """
    _require(len(control_wells) > 0, "control_wells is empty; name at least one control well, e.g. ('A01',)")
    _require(columns is None or len(columns) > 0, "columns is empty; name the columns to normalise, or pass None for all numeric ones")
