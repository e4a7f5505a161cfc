"""Operations of the assay library: signature, documentation and checks, once.

These complete :mod:`plateflow.library.specs` with what image-based assays
run (CellProfiler's IdentifyPrimaryObjects, IdentifySecondaryObjects,
MeasureObjectSizeShape and MeasureObjectIntensity, and the filters and
morphology around them). The conventions are those of ``specs``: an (N, Y, X)
stack first, keyword options after it, borders replicate the edge pixel,
masks are ``uint8`` 0/1 and labels ``int32`` numbered from 1 per image.

``segment_nuclei`` and ``top_hat`` are declared here, not in ``specs``, with
the options this library added (an automatic nucleus size; a ``downsample``
factor); every backend uses these declarations.

The assay steps pass label images to each other as special outputs:
``identify_nuclei`` makes ``nuclei_labels``; ``identify_cells`` takes them
and makes ``cell_labels`` and ``cytoplasm_labels``; ``measure_objects``
takes all three and emits the measurement tables. They work on the channels
of one site (``variable_components=("channel",)``) and leave the stack as
they found it, so they chain in one step or follow each other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ..signatures import Bounds, Unit
from ._spec import Constraint, fill_doc, index_in_stack, less_than, odd, one_per_image, operation

__all__ = [
    "segment_nuclei",
    "top_hat",
    "identify_nuclei",
    "identify_cells",
    "measure_objects",
    "bottom_hat",
    "mean_filter",
    "minimum_filter",
    "maximum_filter",
    "variance_filter",
    "sobel",
    "laplace",
    "difference_of_gaussians",
    "subtract_gaussian_background",
    "invert_intensity",
    "min_projection",
    "std_projection",
    "threshold_manual",
    "threshold_triangle",
    "threshold_yen",
    "threshold_isodata",
    "threshold_mean",
    "binary_erosion",
    "binary_dilation",
    "binary_opening",
    "binary_closing",
    "fill_holes",
    "remove_small_objects",
    "expand_labels",
    "remove_border_objects",
]

Radius = Annotated[int, Bounds(1, 200), Unit("px")]
Window = Annotated[int, Bounds(1, 101), Unit("px")]
Sigma = Annotated[float, Bounds(0, 100), Unit("px")]
OptionalSigma = Annotated[float | None, Bounds(0, 100), Unit("px")]

_PER_SLICE = """
per_slice : bool
    Compute one threshold per image (True) or one for the whole stack (False).
"""

_NUCLEI_PARAMETERS = """
diameter : float or None
    Typical nucleus diameter, in pixels. ``None`` estimates it from each
    image: the median equivalent diameter of the compact (solidity >= 0.9)
    objects of an Otsu mask, so touching nuclei do not inflate it.
sigma : float or None
    Standard deviation of the Gaussian blur before thresholding, in pixels;
    ``None``: a twentieth of the diameter (at least 0.5).
min_size : int or None
    Objects smaller than this area, in pixels, are removed as debris;
    ``None``: a tenth of the area of a disk of the diameter.
min_distance : int or None
    Smallest distance between two nucleus centres, in pixels; ``None``:
    0.15 diameters (at least 1).
"""


def _unique_names(kw: Any, facts: Any) -> bool:
    names = kw["channel_names"]
    return names is None or (len(names) > 0 and len(set(names)) == len(names))


@operation("segmentation")
@fill_doc(nuclei_parameters=_NUCLEI_PARAMETERS)
def segment_nuclei(
    stack,
    *,
    diameter: Annotated[float | None, Bounds(2, 1000), Unit("px")] = None,
    sigma: OptionalSigma = None,
    min_size: Annotated[int | None, Bounds(0, None), Unit("px")] = None,
    min_distance: Annotated[int | None, Bounds(1, 200), Unit("px")] = None,
):
    """Segment nuclei in each image, sized from the image itself: ``int32`` labels from 1.

    The blur, the debris size and the seed distance follow the nucleus
    diameter (estimated when not given). Two thresholds are used: Otsu's
    separates the bright cores, whose distance-transform maxima seed one
    nucleus each; the lower level of a three-class multi-Otsu keeps dim
    nuclei next to bright ones and gives each nucleus its full extent. Dim
    objects without a bright core get seeds of their own, and a watershed on
    the distance transform of the low mask splits touching nuclei.

    When ``sigma``, ``min_size`` and ``min_distance`` are all given and
    ``diameter`` is not, the single-threshold method of earlier versions runs
    unchanged (blur, Otsu, watershed from distance maxima), so pipelines that
    set them keep their results.

    Parameters
    ----------
    {nuclei_parameters}
    """


@operation("background")
def top_hat(
    stack,
    *,
    radius: Radius = 10,
    downsample: Annotated[int, Bounds(1, 16)] = 1,
):
    """White top-hat of each image: the image minus its opening by a disk.

    Removes background that varies more slowly than objects of ``radius``;
    keeps the dtype and is never negative. Borders replicate the edge pixel.
    With ``downsample`` > 1 the background (the opening) is computed on the
    image shrunk by that factor (block means) with a disk of
    ``radius / downsample`` and interpolated back (bilinear), which is
    ``downsample`` squared to the fourth times faster and, for radii well
    above the factor, close to the full-resolution background.

    Parameters
    ----------
    radius : int
        Radius of the disk footprint, in pixels of the full image; larger than the objects to keep.
    downsample : int
        Factor the image is shrunk by to estimate the background (1: exact, full resolution).
    """


@operation("segmentation", special_outputs=("nuclei_labels",), constraints=(index_in_stack("nuclei_channel"),))
@fill_doc(nuclei_parameters=_NUCLEI_PARAMETERS)
def identify_nuclei(
    stack,
    *,
    nuclei_channel: Annotated[int, Bounds(0, None)] = 0,
    diameter: Annotated[float | None, Bounds(2, 1000), Unit("px")] = None,
    sigma: OptionalSigma = None,
    min_size: Annotated[int | None, Bounds(0, None), Unit("px")] = None,
    min_distance: Annotated[int | None, Bounds(1, 200), Unit("px")] = None,
):
    """Find the nuclei of one site in its nucleus channel and pass their labels on.

    The stack holds the channels of one site; image ``nuclei_channel`` is
    segmented as ``segment_nuclei`` does. Returns ``(stack, nuclei_labels)``:
    the stack unchanged and a (1, Y, X) ``int32`` label image.

    Parameters
    ----------
    nuclei_channel : int
        Index, in the stack, of the nucleus (DNA) channel; 0 is the first.
    {nuclei_parameters}
    """


@operation(
    "segmentation",
    special_inputs=("nuclei_labels",),
    special_outputs=("cell_labels", "cytoplasm_labels"),
    constraints=(index_in_stack("cell_channel"),),
)
def identify_cells(
    stack,
    *,
    nuclei_labels,
    cell_channel: Annotated[int, Bounds(0, None)] = 1,
    method: Literal["propagation", "watershed", "distance"] = "propagation",
    sigma: Sigma = 1.0,
    threshold_correction: Annotated[float, Bounds(0.05, 20)] = 1.0,
    regularization: Annotated[float, Bounds(0, 1000)] = 0.05,
    max_distance: Annotated[int, Bounds(0, 1000), Unit("px")] = 0,
):
    """Grow each nucleus into its cell on a cell-body channel; cells are numbered as their nucleus.

    The cell-body image (``cell_channel`` of the stack, blurred by
    ``sigma``) is thresholded with Otsu times ``threshold_correction``;
    inside that foreground each nucleus is grown into its cell:
    ``"propagation"`` by a watershed whose landscape adds intensity edges to
    distance (``regularization`` weighs distance; CellProfiler's
    Propagation), ``"watershed"`` by a watershed on the inverted intensity,
    ``"distance"`` by growing every nucleus by up to ``max_distance``
    pixels. A nucleus always lies inside its cell. ``max_distance`` > 0 also
    caps how far the other methods grow a cell from its nucleus. Returns
    ``(stack, cell_labels, cytoplasm_labels)``: the stack unchanged, the
    (1, Y, X) cell labels and the cytoplasm (the cell minus its nucleus,
    with the cell's number).

    Parameters
    ----------
    nuclei_labels : array
        (1, Y, X) nucleus labels, as ``identify_nuclei`` makes them.
    cell_channel : int
        Index, in the stack, of the cell-body (cytoplasm or membrane) channel.
    method : str
        How nuclei are grown into cells: ``"propagation"``, ``"watershed"`` or ``"distance"``.
    sigma : float
        Blur of the cell-body image before thresholding, in pixels.
    threshold_correction : float
        Factor on the Otsu threshold (unitless): below 1 keeps dimmer cell edges.
    regularization : float
        For ``"propagation"``: weight of distance against intensity edges
        (unitless); 0 follows edges only, large values approach ``"distance"``.
    max_distance : int
        Largest growth from the nucleus, in pixels; 0: unlimited (for
        ``"distance"``, 0 means 10 pixels).
    """


@operation(
    "measurement",
    special_inputs=("nuclei_labels", "cell_labels", "cytoplasm_labels"),
    special_outputs=("nuclei_measurements", "cells_measurements", "cytoplasm_measurements", "object_relationships"),
    materialize=True,
    constraints=(
        Constraint(
            _unique_names,
            fields=("channel_names",),
            message="channel_names={channel_names} must name each channel once, or be None",
            hint="give distinct names, e.g. ('DNA', 'Actin'), one per channel of the stack",
            example={"channel_names": ("DNA", "DNA")},
        ),
        one_per_image("channel_names", what="names"),
    ),
)
def measure_objects(
    stack,
    *,
    nuclei_labels,
    cell_labels,
    cytoplasm_labels,
    channel_names: tuple[str, ...] | None = None,
):
    """Measure every nucleus, cell and cytoplasm of one site in every channel.

    One row per object with ``ObjectNumber`` (the label; a cell and its
    cytoplasm have their nucleus's number) and, for each object kind
    (``Nuclei``, ``Cells``, ``Cytoplasm``), CellProfiler-style columns:
    ``<Kind>_AreaShape_Area``, ``_Perimeter``, ``_Eccentricity``,
    ``_Solidity``, ``<Kind>_Location_Center_X`` / ``_Y`` and, per channel,
    ``<Kind>_Intensity_MeanIntensity_<channel>``, ``MedianIntensity``,
    ``MaxIntensity``, ``MinIntensity``, ``IntegratedIntensity`` and
    ``StdIntensity`` (scikit-image ``regionprops_table``). The executor adds
    the well and site columns. ``object_relationships`` has one row per
    nucleus: ``Nuclei_ObjectNumber`` and ``Cells_ObjectNumber`` (0 when the
    nucleus has no cell). Returns the stack unchanged and the four tables.

    Parameters
    ----------
    nuclei_labels : array
        (1, Y, X) nucleus labels.
    cell_labels : array
        (1, Y, X) cell labels, numbered as their nuclei.
    cytoplasm_labels : array
        (1, Y, X) cytoplasm labels, numbered as their cells.
    channel_names : tuple of str or None
        A name per image of the stack for the column names; ``None``: ``C1``, ``C2``, ...
    """


@operation("background")
def bottom_hat(stack, *, radius: Radius = 10):
    """Black top-hat of each image: its closing by a disk minus the image; keeps the dtype.

    Picks out dark objects smaller than the disk. Borders replicate the edge pixel.

    Parameters
    ----------
    radius : int
        Radius of the disk footprint, in pixels.
    """


@operation("filter", constraints=(odd("size"),))
def mean_filter(stack, *, size: Window = 3):
    """Mean of each image over a square window; returns ``float32``. Borders replicate the edge pixel.

    Parameters
    ----------
    size : int
        Side of the square window, in pixels; odd.
    """


@operation("filter", constraints=(odd("size"),))
def minimum_filter(stack, *, size: Window = 3):
    """Minimum of each image over a square window (grey erosion); keeps the dtype.

    Parameters
    ----------
    size : int
        Side of the square window, in pixels; odd.
    """


@operation("filter", constraints=(odd("size"),))
def maximum_filter(stack, *, size: Window = 3):
    """Maximum of each image over a square window (grey dilation); keeps the dtype.

    Parameters
    ----------
    size : int
        Side of the square window, in pixels; odd.
    """


@operation("filter", constraints=(odd("size"),))
def variance_filter(stack, *, size: Window = 3):
    """Local variance of each image over a square window (population variance); ``float32``.

    Highlights texture and edges; borders replicate the edge pixel.

    Parameters
    ----------
    size : int
        Side of the square window, in pixels; odd.
    """


@operation("filter")
def sobel(stack):
    """Edge magnitude of each image by the Sobel operator (scikit-image), as ``float32``."""


@operation("filter")
def laplace(stack):
    """Laplacian of each image (the 5-point stencil), as ``float32``; borders replicate the edge pixel."""


@operation("filter", constraints=(less_than("low_sigma", "high_sigma", example={"low_sigma": 3.0, "high_sigma": 1.0}),))
def difference_of_gaussians(stack, *, low_sigma: Sigma = 1.0, high_sigma: Sigma = 3.0):
    """Band-pass each image: its Gaussian blur by ``low_sigma`` minus its blur by ``high_sigma``; ``float32``.

    Enhances spots and nuclei about ``2 * low_sigma`` to ``2 * high_sigma`` pixels across.

    Parameters
    ----------
    low_sigma : float
        The smaller blur, in pixels.
    high_sigma : float
        The larger blur, in pixels; above ``low_sigma``.
    """


@operation("background")
def subtract_gaussian_background(stack, *, sigma: Annotated[float, Bounds(0.5, 500), Unit("px")] = 20.0):
    """Subtract a Gaussian-blurred copy of each image as its background; ``float32`` (may be negative).

    Parameters
    ----------
    sigma : float
        Blur of the background estimate, in pixels; larger than the objects.
    """


@operation("normalize")
def invert_intensity(stack):
    """Mirror the intensities of the stack: ``max + min - value``, over the whole stack; keeps the dtype.

    Turns dark objects on a bright background (brightfield, absorbance)
    into bright ones for thresholding.
    """


@operation("projection", returns_one_image=True)
def min_projection(stack):
    """Minimum over the stack, as a (1, Y, X) stack of the input dtype."""


@operation("projection", returns_one_image=True)
def std_projection(stack):
    """Standard deviation over the stack (population, ``ddof=0``), as a (1, Y, X) ``float32`` stack."""


@operation("threshold")
def threshold_manual(stack, *, threshold: float = 0.5):
    """A ``uint8`` mask, 1 where the image is above a fixed value.

    Parameters
    ----------
    threshold : float
        The value to exceed, in intensity units of the stack.
    """


@operation("threshold")
@fill_doc(per_slice=_PER_SLICE)
def threshold_triangle(stack, *, per_slice: bool = True):
    """Triangle threshold (scikit-image), good for a few bright objects on a large background: a ``uint8`` mask.

    Parameters
    ----------
    {per_slice}
    """


@operation("threshold")
@fill_doc(per_slice=_PER_SLICE)
def threshold_yen(stack, *, per_slice: bool = True):
    """Yen's maximum-correlation threshold (scikit-image): a ``uint8`` mask.

    Parameters
    ----------
    {per_slice}
    """


@operation("threshold")
@fill_doc(per_slice=_PER_SLICE)
def threshold_isodata(stack, *, per_slice: bool = True):
    """ISODATA (Ridler-Calvard) threshold (scikit-image): a ``uint8`` mask.

    Parameters
    ----------
    {per_slice}
    """


@operation("threshold")
@fill_doc(per_slice=_PER_SLICE)
def threshold_mean(stack, *, per_slice: bool = True):
    """A ``uint8`` mask, 1 where the image is above its mean intensity.

    Parameters
    ----------
    {per_slice}
    """


@operation("morphology")
def binary_erosion(stack, *, radius: Radius = 1):
    """Erode each mask by a disk; ``uint8`` 0/1. Outside the image counts as foreground (no border shrinking).

    Parameters
    ----------
    radius : int
        Radius of the disk, in pixels.
    """


@operation("morphology")
def binary_dilation(stack, *, radius: Radius = 1):
    """Dilate each mask by a disk; ``uint8`` 0/1.

    Parameters
    ----------
    radius : int
        Radius of the disk, in pixels.
    """


@operation("morphology")
def binary_opening(stack, *, radius: Radius = 1):
    """Open each mask by a disk (erode, then dilate): removes specks and thin bridges; ``uint8``.

    Parameters
    ----------
    radius : int
        Radius of the disk, in pixels.
    """


@operation("morphology")
def binary_closing(stack, *, radius: Radius = 1):
    """Close each mask by a disk (dilate, then erode): fills small gaps; ``uint8``.

    Parameters
    ----------
    radius : int
        Radius of the disk, in pixels.
    """


@operation("morphology")
def fill_holes(stack):
    """Fill the holes (background enclosed by foreground) of each mask or label image; keeps the dtype.

    A label image's holes take the label that encloses them.
    """


@operation("morphology")
def remove_small_objects(
    stack,
    *,
    min_size: Annotated[int, Bounds(1, None), Unit("px")] = 30,
    connectivity: Literal[1, 2] = 1,
):
    """Remove objects smaller than ``min_size`` pixels from each mask or label image; keeps the dtype.

    Parameters
    ----------
    min_size : int
        Smallest area kept, in pixels.
    connectivity : int
        For masks: 1 (edge neighbours) or 2 (corner neighbours too) defines an object.
    """


@operation("labels")
def expand_labels(stack, *, distance: Annotated[int, Bounds(0, 500), Unit("px")] = 5):
    """Grow each label by up to ``distance`` pixels without overlapping its neighbours (scikit-image); ``int32``.

    Parameters
    ----------
    distance : int
        Largest growth, in pixels.
    """


@operation("labels")
def remove_border_objects(stack, *, buffer_size: Annotated[int, Bounds(0, 100), Unit("px")] = 0):
    """Remove the labelled objects that touch the image border (scikit-image ``clear_border``); ``int32``, renumbered from 1.

    Parameters
    ----------
    buffer_size : int
        Width of the border band, in pixels: objects reaching into it are removed too.
    """
