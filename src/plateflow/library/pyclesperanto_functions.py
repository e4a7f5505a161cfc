"""The bundled library for the ``pyclesperanto`` memory type (OpenCL: GPUs, or CPUs through pocl).

Functions take and return pyclesperanto arrays. A zero Z radius (or sigma)
makes each filter work on each image of the (N, Y, X) stack; pyclesperanto
replicates edge pixels at borders (scipy's ``mode="nearest"``). Operations
that would connect images through Z (thresholds per image, labelling) run
image by image. pyclesperanto is imported when a function runs, never when
this module is imported. Registry names are ``pyclesperanto.<function>``.
"""

from __future__ import annotations

from typing import Any

from . import specs, specs_assay
from ._spec import implement

#: Operations of :mod:`plateflow.library.specs_assay` with a pyclesperanto version.
ASSAY: tuple[str, ...] = (
    "bottom_hat", "mean_filter", "minimum_filter", "maximum_filter", "variance_filter", "laplace",
    "difference_of_gaussians", "subtract_gaussian_background", "min_projection", "std_projection",
    "threshold_manual",
)

__all__ = [*specs.ACCELERATED, *ASSAY]


def _as_dtype(image: Any, dtype: Any) -> Any:
    import pyclesperanto as cle

    if image.dtype == dtype:
        return image
    converted = cle.create_like(image, dtype=dtype)
    cle.copy(image, converted)
    return converted


def _per_image(stack: Any, compute: Any, dtype: Any) -> Any:
    """Run ``compute`` on each image and paste the results into one (N, Y, X) array of ``dtype``."""
    import pyclesperanto as cle

    out = cle.create(stack.shape, dtype=dtype)
    for index in range(stack.shape[0]):
        cle.paste(_as_dtype(compute(stack[index]), dtype), out, destination_z=index)
    return out


def _gaussian_filter(stack: Any, *, sigma: float) -> Any:
    import numpy as np
    import pyclesperanto as cle

    return cle.gaussian_blur(_as_dtype(stack, np.float32), sigma_x=sigma, sigma_y=sigma, sigma_z=0)


def _median_filter(stack: Any, *, size: int) -> Any:
    import pyclesperanto as cle

    radius = size // 2
    return cle.median(stack, radius_x=radius, radius_y=radius, radius_z=0, connectivity="box")


def _top_hat(stack: Any, *, radius: int, downsample: int) -> Any:
    import numpy as np
    import pyclesperanto as cle

    if downsample == 1:
        return cle.top_hat(stack, radius_x=radius, radius_y=radius, radius_z=0, connectivity="sphere")
    # pyclesperanto has no block-mean shrink matching the numpy kernel: the small opening runs
    # on the host (it is cheap by design) and the result goes back to the device.
    from . import _xp

    result = _xp.top_hat(_xp.numpy_namespace(), np.asarray(cle.pull(stack)), radius=radius, downsample=downsample)
    return cle.push(result)


def _bottom_hat(stack: Any, *, radius: int) -> Any:
    import pyclesperanto as cle

    return cle.bottom_hat(stack, radius_x=radius, radius_y=radius, radius_z=0, connectivity="sphere")


def _box(name: str, dtype: str | None = None) -> Any:
    def kernel(stack: Any, *, size: int) -> Any:
        import numpy as np
        import pyclesperanto as cle

        radius = size // 2
        source = stack if dtype is None else _as_dtype(stack, np.dtype(dtype))
        return getattr(cle, name)(source, radius_x=radius, radius_y=radius, radius_z=0, connectivity="box")

    return kernel


def _laplace(stack: Any) -> Any:
    import numpy as np
    import pyclesperanto as cle

    # The 4-neighbour Laplacian per image (a 3-D diamond would reach into the neighbouring images);
    # pyclesperanto's has the opposite sign of scipy's (centre minus neighbours).
    def laplacian(image: Any) -> Any:
        return cle.multiply_image_and_scalar(cle.laplace(image, connectivity="sphere"), scalar=-1.0)

    return _per_image(_as_dtype(stack, np.float32), laplacian, np.float32)


def _difference_of_gaussians(stack: Any, *, low_sigma: float, high_sigma: float) -> Any:
    import numpy as np
    import pyclesperanto as cle

    return cle.difference_of_gaussian(
        _as_dtype(stack, np.float32), sigma1_x=low_sigma, sigma1_y=low_sigma, sigma1_z=0,
        sigma2_x=high_sigma, sigma2_y=high_sigma, sigma2_z=0,
    )


def _subtract_gaussian_background(stack: Any, *, sigma: float) -> Any:
    import numpy as np
    import pyclesperanto as cle

    return cle.subtract_gaussian_background(_as_dtype(stack, np.float32), sigma_x=sigma, sigma_y=sigma, sigma_z=0)


def _std_projection(stack: Any) -> Any:
    import numpy as np
    import pyclesperanto as cle

    out = cle.create((1, *stack.shape[1:]), dtype=np.float32)
    return cle.std_z_projection(_as_dtype(stack, np.float32), out, ddof=0)


def _threshold_manual(stack: Any, *, threshold: float) -> Any:
    import numpy as np
    import pyclesperanto as cle

    return _as_dtype(cle.greater_constant(_as_dtype(stack, np.float32), scalar=threshold), np.uint8)


def _projection(project: str, dtype: str | None = None) -> Any:
    def kernel(stack: Any) -> Any:
        import numpy as np
        import pyclesperanto as cle

        source = stack if dtype is None else _as_dtype(stack, np.dtype(dtype))
        out = cle.create((1, *stack.shape[1:]), dtype=source.dtype)
        return getattr(cle, project)(source, out)

    return kernel


def _threshold_otsu(stack: Any, *, per_slice: bool) -> Any:
    import numpy as np
    import pyclesperanto as cle

    # As in the other backends, the histogram is of the values as float32.
    data = _as_dtype(stack, np.float32)
    if not per_slice:
        return _as_dtype(cle.threshold_otsu(data), np.uint8)
    return _per_image(data, cle.threshold_otsu, np.uint8)


def _label(stack: Any, *, connectivity: int) -> Any:
    import numpy as np
    import pyclesperanto as cle

    neighbourhood = "box" if connectivity == 2 else "sphere"

    def label_image(image: Any) -> Any:
        return cle.connected_component_labeling(image, connectivity=neighbourhood)

    return _per_image(stack, label_image, np.int32)


def _make(op: Any, kernel: Any) -> Any:
    return implement(op, kernel, memory_type="pyclesperanto", module=__name__)


gaussian_filter = _make(specs.gaussian_filter, _gaussian_filter)
median_filter = _make(specs.median_filter, _median_filter)
top_hat = _make(specs_assay.top_hat, _top_hat)
max_projection = _make(specs.max_projection, _projection("maximum_z_projection"))
mean_projection = _make(specs.mean_projection, _projection("mean_z_projection", "float32"))
sum_projection = _make(specs.sum_projection, _projection("sum_z_projection", "float32"))
threshold_otsu = _make(specs.threshold_otsu, _threshold_otsu)
label = _make(specs.label, _label)
bottom_hat = _make(specs_assay.bottom_hat, _bottom_hat)
mean_filter = _make(specs_assay.mean_filter, _box("mean_filter", "float32"))
minimum_filter = _make(specs_assay.minimum_filter, _box("minimum_filter"))
maximum_filter = _make(specs_assay.maximum_filter, _box("maximum_filter"))
variance_filter = _make(specs_assay.variance_filter, _box("variance_filter", "float32"))
laplace = _make(specs_assay.laplace, _laplace)
difference_of_gaussians = _make(specs_assay.difference_of_gaussians, _difference_of_gaussians)
subtract_gaussian_background = _make(specs_assay.subtract_gaussian_background, _subtract_gaussian_background)
min_projection = _make(specs_assay.min_projection, _projection("minimum_z_projection"))
std_projection = _make(specs_assay.std_projection, _std_projection)
threshold_manual = _make(specs_assay.threshold_manual, _threshold_manual)
