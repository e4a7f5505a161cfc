"""The operations of the bundled library: signature, documentation and checks, once.

Every function takes an image stack of shape (N, Y, X) first (N images: sites,
channels or Z planes, depending on the step's ``variable_components``) and
keyword options. Filters work on each image of the stack on its own; borders
replicate the nearest edge pixel (``mode="nearest"`` in scipy terms), the one
border rule every backend (scipy, torch, pyclesperanto) implements alike.

Masks are ``uint8`` stacks of 0 and 1 and labels are ``int32`` stacks
numbered from 1 in each image, in every backend.

Measurement tables are lists of dict rows. A row holds the values of one
object or one image plus ``slice``, the index of its image in the stack; the
executor adds the well and the other component columns (site, channel, ...)
when it writes the plate's table, so the rows of every well merge into one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from ..signatures import Bounds, Unit
from ._spec import Constraint, StackFacts, fill_doc, less_than, odd, operation

__all__ = [
    "normalize_percentile",
    "gaussian_filter",
    "median_filter",
    "rolling_ball",
    "unsharp_mask",
    "max_projection",
    "mean_projection",
    "sum_projection",
    "best_focus_projection",
    "threshold_otsu",
    "threshold_li",
    "threshold_local",
    "label",
    "measure_nuclei",
    "composite_channels",
    "find_tile_positions",
    "assemble_tiles",
]

#: Operations that every accelerated backend (torch, pyclesperanto, cupy) implements
#: (``top_hat`` is declared in :mod:`plateflow.library.specs_assay`).
ACCELERATED: tuple[str, ...] = (
    "gaussian_filter", "median_filter", "top_hat", "max_projection", "mean_projection", "sum_projection",
    "threshold_otsu", "label",
)

Percentile = Annotated[float, Bounds(0, 100), Unit("%")]
Sigma = Annotated[float, Bounds(0, 100), Unit("px")]
Radius = Annotated[int, Bounds(1, 200), Unit("px")]

_NUCLEI_PARAMETERS = """
sigma : float
    Standard deviation of the Gaussian blur applied before thresholding, in
    pixels; 1 to 2 suits nuclei 10 to 20 pixels across.
min_size : int
    Objects smaller than this area, in pixels, are removed as debris.
min_distance : int
    Smallest distance between two nucleus centres, in pixels; touching
    nuclei whose centres are closer are kept as one. About a third of a
    nucleus diameter.
"""

_PER_SLICE = """
per_slice : bool
    Compute one threshold per image (True) or one for the whole stack (False).
"""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _odd(name: str, example: int) -> Constraint:
    return odd(name, example=example)


def _below(low: str, high: str, example: dict[str, float]) -> Constraint:
    return less_than(low, high, example=example)


@operation(
    "normalize",
    constraints=(
        _below("low_percentile", "high_percentile", {"low_percentile": 99.0, "high_percentile": 1.0}),
        _below("target_min", "target_max", {"target_min": 1.0, "target_max": 1.0}),
    ),
)
def normalize_percentile(
    stack,
    *,
    low_percentile: Percentile = 1.0,
    high_percentile: Percentile = 99.0,
    target_min: float = 0.0,
    target_max: float = 1.0,
    clip: bool = True,
):
    """Rescale intensities so the low/high percentiles of the stack map to a target range.

    The percentiles are taken over the whole stack, so images of one stack
    stay comparable. Returns ``float32``.

    Parameters
    ----------
    low_percentile : float
        Percentile of the stack's values, in percent, that maps to ``target_min``.
    high_percentile : float
        Percentile of the stack's values, in percent, that maps to ``target_max``.
    target_min : float
        Output value of the low percentile (intensity units of the output).
    target_max : float
        Output value of the high percentile (intensity units of the output).
    clip : bool
        Clip values outside ``[target_min, target_max]``.
    """


@operation("filter")
def gaussian_filter(stack, *, sigma: Sigma = 1.0):
    """Gaussian blur of each image.

    The kernel extends to 4 sigma; borders replicate the edge pixel. Returns
    ``float32``.

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian, in pixels; 0 returns the input as float32.
    """


@operation("filter", constraints=(_odd("size", 4),))
def median_filter(stack, *, size: Annotated[int, Bounds(1, 101), Unit("px")] = 3):
    """Median filter of each image over a square window; keeps the dtype.

    Borders replicate the edge pixel.

    Parameters
    ----------
    size : int
        Side of the square window, in pixels; odd, so the window has a centre.
    """


@operation("background")
def rolling_ball(stack, *, radius: Annotated[float, Bounds(1, 1000), Unit("px")] = 50.0):
    """Subtract the background estimated by a rolling ball (scikit-image) from each image.

    Keeps the dtype; the result is never negative.

    Parameters
    ----------
    radius : float
        Radius of the ball, in pixels; larger than the objects to keep.
    """


@operation("filter")
def unsharp_mask(stack, *, radius: Sigma = 1.0, amount: Annotated[float, Bounds(0, 100)] = 1.0):
    """Sharpen each image: add ``amount`` times the image minus its Gaussian blur.

    Intensities keep their range (no rescaling); returns ``float32``.

    Parameters
    ----------
    radius : float
        Standard deviation of the blur, in pixels.
    amount : float
        Strength of the sharpening (a factor, unitless).
    """


@operation("projection", returns_one_image=True)
def max_projection(stack):
    """Maximum over the stack, as a (1, Y, X) stack of the input dtype."""


@operation("projection", returns_one_image=True)
def mean_projection(stack):
    """Mean over the stack, as a (1, Y, X) ``float32`` stack."""


@operation("projection", returns_one_image=True)
def sum_projection(stack):
    """Sum over the stack, as a (1, Y, X) ``float32`` stack."""


@operation("projection", returns_one_image=True)
def best_focus_projection(stack, *, measure: Literal["laplacian_variance", "variance"] = "laplacian_variance"):
    """The single best-focused image of the stack, as a (1, Y, X) stack of the input dtype.

    Parameters
    ----------
    measure : str
        Focus measure to maximize: ``"laplacian_variance"`` (variance of the
        Laplacian, sensitive to edges) or ``"variance"`` (intensity variance).
    """


@operation("threshold")
@fill_doc(per_slice=_PER_SLICE)
def threshold_otsu(stack, *, per_slice: bool = True):
    """Otsu threshold: a ``uint8`` mask, 1 where the image is above the threshold.

    The threshold comes from a 256-bin histogram of the values as
    ``float32`` between their minimum and maximum (as scikit-image does for
    float images), in every backend.

    Parameters
    ----------
    {per_slice}
    """


@operation("threshold")
@fill_doc(per_slice=_PER_SLICE)
def threshold_li(stack, *, per_slice: bool = True):
    """Li's minimum cross-entropy threshold: a ``uint8`` mask, 1 above the threshold.

    Parameters
    ----------
    {per_slice}
    """


@operation("threshold", constraints=(_odd("block_size", 34),))
def threshold_local(
    stack,
    *,
    block_size: Annotated[int, Bounds(3, 1001), Unit("px")] = 35,
    offset: float = 0.0,
    method: Literal["gaussian", "mean", "median"] = "gaussian",
):
    """Local (adaptive) threshold of each image: a ``uint8`` mask, 1 above the local threshold.

    Parameters
    ----------
    block_size : int
        Side of the neighbourhood the local threshold is computed over, in pixels; odd.
    offset : float
        Subtracted from the local threshold (intensity units); raise it to keep less.
    method : str
        How the neighbourhood is weighted: ``"gaussian"``, ``"mean"`` or ``"median"``.
    """


@operation("segmentation")
def label(stack, *, connectivity: Literal[1, 2] = 1):
    """Connected components of a mask stack: ``int32`` labels numbered from 1 in each image.

    Objects are numbered in the raster order of their first pixel.

    Parameters
    ----------
    connectivity : int
        1: pixels touching by an edge are connected (4-connectivity);
        2: touching by a corner too (8-connectivity).
    """


@operation("measurement", special_outputs=("object_measurements", "object_counts"), materialize=True)
@fill_doc(nuclei_parameters=_NUCLEI_PARAMETERS)
def measure_nuclei(
    stack,
    *,
    sigma: Sigma = 1.0,
    min_size: Annotated[int, Bounds(0, None), Unit("px")] = 30,
    min_distance: Annotated[int, Bounds(1, 200), Unit("px")] = 4,
):
    """Segment nuclei as ``segment_nuclei`` does and measure them.

    Returns ``(labels, object_measurements, object_counts)``: the ``int32``
    label stack and two tables (lists of dict rows). ``object_measurements``
    has one row per nucleus: ``slice``, ``label``, ``area`` (px),
    ``mean_intensity``, ``max_intensity``, ``centroid_y`` and ``centroid_x``
    (px); ``object_counts`` has one row per image: ``slice`` and
    ``object_count``. ``slice`` is the image's index in the stack; the
    executor adds well and site columns.

    Parameters
    ----------
    {nuclei_parameters}
    """


@operation(
    "composite",
    returns_one_image=True,
    constraints=(
        Constraint(
            lambda kw, facts: kw["weights"] is None or len(kw["weights"]) > 0,
            fields=("weights",),
            message="weights is empty; give one weight per image of the stack, or None to weigh them equally",
            hint="e.g. weights=(1.0, 0.5) for a stack of two channels",
            example={"weights": ()},
        ),
        Constraint(
            lambda kw, facts: kw["weights"] is None or len(kw["weights"]) in (0, facts.images),
            fields=("weights",),
            message=lambda kw, facts: (
                f"weights has {len(kw['weights'])} values but the stack has {facts.images} images; give one per image"
            ),
            hint="give one weight per image (per channel when the step varies channel), or None to weigh them equally",
            example={"weights": (1.0, 1.0, 1.0)},
            needs_images=True,
            example_images=2,
        ),
    ),
)
def composite_channels(
    stack,
    *,
    method: Literal["weighted_sum", "max"] = "weighted_sum",
    weights: tuple[float, ...] | None = None,
):
    """Combine the images of a stack (typically its channels) into one (1, Y, X) ``float32`` image.

    Parameters
    ----------
    method : str
        ``"weighted_sum"``: sum of each image times its weight;
        ``"max"``: maximum of the weighted images.
    weights : tuple of float or None
        One weight per image of the stack (unitless); ``None`` weighs every
        image 1/N, so the weighted sum is the mean.
    """


def _grid_fits(kw: Mapping[str, Any], facts: StackFacts) -> bool:
    grid = kw["grid_shape"]
    if grid is None:
        return math.isqrt(facts.images or 0) ** 2 == facts.images
    return int(grid[0]) * int(grid[1]) == facts.images


def _grid_message(kw: Mapping[str, Any], facts: StackFacts) -> str:
    grid = kw["grid_shape"]
    if grid is None:
        return f"{facts.images} tiles do not form a square grid; give grid_shape=(rows, columns)"
    return f"grid_shape={tuple(grid)!r} holds {int(grid[0]) * int(grid[1])} tiles but the stack has {facts.images}"


@operation(
    "stitching",
    special_outputs=("positions",),
    constraints=(
        Constraint(
            _grid_fits,
            fields=("grid_shape",),
            message=_grid_message,
            hint="give grid_shape=(rows, columns) with rows x columns equal to the number of tiles; None works only for a square grid",
            example={"grid_shape": (2, 3)},
            needs_images=True,
            example_images=4,
        ),
    ),
)
def find_tile_positions(
    stack,
    *,
    grid_shape: tuple[Annotated[int, Bounds(1, None)], Annotated[int, Bounds(1, None)]] | None = None,
    overlap: Annotated[float, Bounds(0.01, 0.5)] = 0.1,
):
    """Find where the tiles of a grid lie by correlating their overlaps.

    The stack holds the tiles in row-major order. Each pair of neighbouring
    tiles is registered on strips twice as wide as the expected overlap
    (``skimage.registration.phase_cross_correlation`` in its masked form,
    which handles partial overlap, to whole pixels), and the positions that
    best fit every pair's offset are solved by least squares, the first tile
    at (0, 0). Offsets may differ from the expected overlap by up to about
    the overlap itself. Returns ``(stack, positions)``, ``positions`` a list
    of ``(y, x)`` pixel positions of each tile's top-left corner.

    Parameters
    ----------
    grid_shape : tuple of int or None
        ``(rows, columns)`` of the tile grid; ``None`` for a square grid.
    overlap : float
        Expected fraction of a tile's width (and height) shared with its
        neighbour (unitless, 0.1 for 10 %).
    """


@operation(
    "stitching",
    special_inputs=("positions",),
    returns_one_image=True,
    constraints=(
        Constraint(
            lambda kw, facts: all(len(p) == 2 for p in kw["positions"]),
            fields=("positions",),
            message="positions must be (y, x) pairs, got {positions}",
            hint="positions come from find_tile_positions; a function of your own must return one (y, x) per tile",
            example={"positions": [(0, 0, 0)]},
        ),
    ),
)
def assemble_tiles(stack, *, positions, blend: Literal["mean", "overwrite"] = "mean"):
    """Paste the tiles of a stack at their positions into one (1, Y, X) ``float32`` image.

    Positions are rounded to whole pixels and shifted so the smallest is 0.

    Parameters
    ----------
    positions : list of (y, x)
        Top-left corner of each tile, in pixels, as ``find_tile_positions`` gives them.
    blend : str
        Where tiles overlap: ``"mean"`` averages them, ``"overwrite"`` keeps
        the later tile.
    """
