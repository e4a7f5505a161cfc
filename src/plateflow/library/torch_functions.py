"""The bundled library for the ``torch`` memory type (CPU or CUDA: each result
stays on its input tensor's device).

Filters work on the (N, Y, X) tensor as N one-channel images with
replicate padding, which is scipy's ``mode="nearest"``. torch is imported when
a function runs, never when this module is imported. Registry names are
``torch.<function>``.
"""

from __future__ import annotations

from typing import Any

from . import _shared, specs, specs_assay
from ._spec import implement

#: Operations of :mod:`plateflow.library.specs_assay` with a torch version.
ASSAY: tuple[str, ...] = (
    "bottom_hat", "mean_filter", "minimum_filter", "maximum_filter", "variance_filter", "laplace",
    "difference_of_gaussians", "subtract_gaussian_background", "invert_intensity", "min_projection",
    "std_projection", "threshold_manual",
)

__all__ = ["normalize_percentile", *specs.ACCELERATED, *ASSAY]


def _working(stack: Any) -> Any:
    """``stack`` as floats for arithmetic: float64 where float32 would round its values."""
    import torch

    exact_in_float32 = stack.dtype in (torch.uint8, torch.int8, torch.int16, torch.uint16, torch.float16, torch.float32)
    return stack.to(torch.float32 if exact_in_float32 else torch.float64)


def _padded(images: Any, radius_y: int, radius_x: int, value: float | None = None) -> Any:
    """(N, 1, Y, X) images padded by replicating the edge (or with a constant ``value``)."""
    import torch.nn.functional as F

    pad = (radius_x, radius_x, radius_y, radius_y)
    return F.pad(images, pad, mode="replicate") if value is None else F.pad(images, pad, value=value)


def _normalize_percentile(stack: Any, *, low_percentile: float, high_percentile: float,
                          target_min: float, target_max: float, clip: bool) -> Any:
    import torch

    data = stack.to(torch.float32)
    flat = data.flatten()
    bounds = []
    for percentile in (low_percentile, high_percentile):
        lower, upper, fraction = _shared.percentile_ranks(flat.numel(), percentile)
        low_value = torch.kthvalue(flat, lower + 1).values.item()
        high_value = torch.kthvalue(flat, upper + 1).values.item()
        bounds.append(low_value + fraction * (high_value - low_value))
    scale, offset = _shared.rescale_coefficients(bounds[0], bounds[1], target_min, target_max)
    out = data * scale + offset
    return out.clamp(target_min, target_max) if clip else out


def _gaussian_weights(sigma: float) -> Any:
    """scipy's 1-D Gaussian kernel (radius ``int(4 * sigma + 0.5)``), as float64 numpy."""
    import numpy as np

    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _gaussian_filter(stack: Any, *, sigma: float) -> Any:
    import torch
    import torch.nn.functional as F

    images = stack.to(torch.float32)[:, None]
    if sigma > 0:
        weights = torch.as_tensor(_gaussian_weights(sigma), dtype=torch.float32, device=stack.device)
        radius = (len(weights) - 1) // 2
        images = F.conv2d(_padded(images, 0, radius), weights.view(1, 1, 1, -1))
        images = F.conv2d(_padded(images, radius, 0), weights.view(1, 1, -1, 1))
    return images[:, 0]


def _median_filter(stack: Any, *, size: int) -> Any:
    radius = size // 2
    images = _padded(_working(stack)[:, None], radius, radius)
    windows = images.unfold(2, size, 1).unfold(3, size, 1)  # (N, 1, Y, X, size, size)
    median = windows.flatten(-2).median(dim=-1).values  # odd window: the exact middle value
    return median[:, 0].to(stack.dtype)


def _extreme_over_disk(images: Any, offsets: list[tuple[int, int]], radius: int, reduce: Any) -> Any:
    padded = _padded(images, radius, radius)
    height, width = images.shape[-2:]
    result = None
    for dy, dx in offsets:
        shifted = padded[..., radius + dy : radius + dy + height, radius + dx : radius + dx + width]
        result = shifted if result is None else reduce(result, shifted)
    return result


def _opening(images: Any, radius: int) -> Any:
    import torch

    offsets = _shared.disk_offsets(radius)  # the disk is symmetric, so no footprint flip is needed
    eroded = _extreme_over_disk(images, offsets, radius, torch.minimum)
    return _extreme_over_disk(eroded, offsets, radius, torch.maximum)


def _closing(images: Any, radius: int) -> Any:
    import torch

    offsets = _shared.disk_offsets(radius)
    dilated = _extreme_over_disk(images, offsets, radius, torch.maximum)
    return _extreme_over_disk(dilated, offsets, radius, torch.minimum)


def _downsampled_background(images: Any, radius: int, factor: int) -> Any:
    """Opening on block means, interpolated back: the kernel of ``_xp.top_hat`` with ``downsample``."""
    import torch
    import torch.nn.functional as F

    height, width = images.shape[-2:]
    padded = F.pad(images.to(torch.float32), (0, -width % factor, 0, -height % factor), mode="replicate")
    blocks = F.avg_pool2d(padded, factor)
    opened = blocks
    sequence = _shared.disk_sequence(max(1, int(round(radius / factor))))
    # Erosion, then dilation, by the disk's 3 x 3 decomposition. Its footprints are not all
    # symmetric: dilation uses each one mirrored, as scipy's grey_dilation does.
    for reduce, mirror in ((torch.minimum, 1), (torch.maximum, -1)):
        for footprint, repeats in sequence:
            offsets = [(mirror * (int(y) - 1), mirror * (int(x) - 1)) for y, x in zip(*footprint.nonzero())]
            for _ in range(repeats):
                opened = _extreme_over_disk(opened, offsets, 1, reduce)
    # align_corners=False puts each block's value at its centre, as scipy's zoom(grid_mode=True) does.
    background = F.interpolate(opened, scale_factor=factor, mode="bilinear", align_corners=False)
    return background[..., :height, :width]


def _top_hat(stack: Any, *, radius: int, downsample: int) -> Any:
    import torch

    images = _working(stack)[:, None]
    if downsample == 1:
        return (images - _opening(images, radius))[:, 0].to(stack.dtype)
    background = _downsampled_background(images, radius, downsample)
    if not stack.dtype.is_floating_point:
        background = torch.round(background)
    background = background.to(images.dtype)
    return (images - torch.minimum(background, images))[:, 0].to(stack.dtype)


def _bottom_hat(stack: Any, *, radius: int) -> Any:
    images = _working(stack)[:, None]
    return (_closing(images, radius) - images)[:, 0].to(stack.dtype)


def _window_max(images: Any, size: int) -> Any:
    import torch.nn.functional as F

    radius = size // 2
    return F.max_pool2d(_padded(images, radius, radius), size, stride=1)


def _minimum_filter(stack: Any, *, size: int) -> Any:
    return (-_window_max(-_working(stack)[:, None], size))[:, 0].to(stack.dtype)


def _maximum_filter(stack: Any, *, size: int) -> Any:
    return _window_max(_working(stack)[:, None], size)[:, 0].to(stack.dtype)


def _window_mean(images: Any, size: int) -> Any:
    import torch.nn.functional as F

    radius = size // 2
    return F.avg_pool2d(_padded(images, radius, radius), size, stride=1)


def _mean_filter(stack: Any, *, size: int) -> Any:
    import torch

    return _window_mean(stack.to(torch.float64)[:, None], size)[:, 0].to(torch.float32)


def _variance_filter(stack: Any, *, size: int) -> Any:
    import torch

    images = stack.to(torch.float64)[:, None]
    mean = _window_mean(images, size)
    return (_window_mean(images * images, size) - mean * mean).clamp(min=0)[:, 0].to(torch.float32)


def _laplace(stack: Any) -> Any:
    import torch

    images = _padded(stack.to(torch.float32)[:, None], 1, 1)[:, 0]
    centre = images[:, 1:-1, 1:-1]
    vertical = images[:, :-2, 1:-1] - 2 * centre + images[:, 2:, 1:-1]
    horizontal = images[:, 1:-1, :-2] - 2 * centre + images[:, 1:-1, 2:]
    return vertical + horizontal


def _difference_of_gaussians(stack: Any, *, low_sigma: float, high_sigma: float) -> Any:
    return _gaussian_filter(stack, sigma=low_sigma) - _gaussian_filter(stack, sigma=high_sigma)


def _subtract_gaussian_background(stack: Any, *, sigma: float) -> Any:
    import torch

    return stack.to(torch.float32) - _gaussian_filter(stack, sigma=sigma)


def _invert_intensity(stack: Any) -> Any:
    import torch

    wide = stack.to(torch.float64 if stack.dtype.is_floating_point else torch.int64)
    return (wide.max() + wide.min() - wide).to(stack.dtype)


def _min_projection(stack: Any) -> Any:
    return _working(stack).amin(dim=0, keepdim=True).to(stack.dtype)


def _std_projection(stack: Any) -> Any:
    import torch

    return stack.to(torch.float64).std(dim=0, keepdim=True, correction=0).to(torch.float32)


def _threshold_manual(stack: Any, *, threshold: float) -> Any:
    import torch

    return (_working(stack) > threshold).to(torch.uint8)


def _max_projection(stack: Any) -> Any:
    # Through floats: torch has no max for some integer dtypes (uint16) on the CPU.
    return _working(stack).amax(dim=0, keepdim=True).to(stack.dtype)


def _sum_projection(stack: Any) -> Any:
    import torch

    return stack.to(torch.float32).sum(dim=0, keepdim=True)


def _mean_projection(stack: Any) -> Any:
    return _sum_projection(stack) / float(len(stack))


def _otsu_mask(data: Any) -> Any:
    import torch

    low, high = data.min().item(), data.max().item()
    if low == high:
        return torch.zeros(data.shape, dtype=torch.uint8, device=data.device)
    edges = _shared.histogram_edges(low, high)
    inner = torch.as_tensor(edges[1:-1], device=data.device)
    # right=True puts a value equal to an edge in the bin above it, as numpy.histogram does.
    counts = torch.bucketize(data.flatten(), inner, right=True).bincount(minlength=len(edges) - 1)
    threshold = _shared.otsu_from_counts(counts.cpu().numpy(), edges)
    return (data > torch.tensor(threshold, dtype=torch.float32)).to(torch.uint8)


def _threshold_otsu(stack: Any, *, per_slice: bool) -> Any:
    import torch

    data = stack.to(torch.float32)
    if not per_slice:
        return _otsu_mask(data)
    return torch.stack([_otsu_mask(plane) for plane in data])


def _neighbourhood_max(values: Any, connectivity: int) -> Any:
    import torch
    import torch.nn.functional as F

    if connectivity == 2:
        return F.max_pool2d(values, 3, stride=1, padding=1)
    padded = _padded(values, 1, 1, value=float("-inf"))
    height, width = values.shape[-2:]
    result = values
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        result = torch.maximum(result, padded[..., dy : dy + height, dx : dx + width])
    return result


def _label(stack: Any, *, connectivity: int) -> Any:
    """Connected components of each plane, numbered in raster order as ``scipy.ndimage.label`` does.

    Every foreground pixel points at a pixel of its component (at first itself). Each round,
    a pixel's pointer takes the smallest pointer of its neighbourhood, the pixel it points at
    takes it too (hooking), and pointers are followed until they point at a root (pointer
    jumping); rounds stop when nothing changes. Pointers only decrease and stay inside their
    component, so each ends on the component's first pixel in raster order. Jumping makes this
    take a few dozen rounds where spreading one pixel a round took as many as a component is long.
    """
    import torch

    planes, height, width = stack.shape
    mask = stack != 0
    foreground = mask.flatten().nonzero().squeeze(1)
    pointer = torch.arange(planes * height * width, dtype=torch.int64, device=stack.device)
    background = torch.tensor(float("-inf"), dtype=torch.float64, device=stack.device)
    while True:
        # float64 holds every pixel index exactly; the max of the negation is the smallest pointer.
        negated = torch.where(mask[:, None], -pointer.view(planes, 1, height, width).to(torch.float64), background)
        smallest = (-_neighbourhood_max(negated, connectivity)).flatten()[foreground].to(torch.int64)
        updated = pointer.clone()
        updated.scatter_reduce_(0, pointer[foreground], smallest, reduce="amin")
        updated[foreground] = torch.minimum(updated[foreground], smallest)
        while not torch.equal(jumped := updated[updated], updated):
            updated = jumped
        if torch.equal(updated, pointer):
            break
        pointer = updated
    labels = torch.zeros(planes * height * width, dtype=torch.int32, device=stack.device)
    roots, plane_of = pointer[foreground], foreground // (height * width)
    for plane in range(planes):
        in_plane = plane_of == plane
        plane_roots = roots[in_plane]
        labels[foreground[in_plane]] = (torch.searchsorted(torch.unique(plane_roots), plane_roots) + 1).to(torch.int32)
    return labels.view(planes, height, width)


def _make(op: Any, kernel: Any) -> Any:
    return implement(op, kernel, memory_type="torch", module=__name__)


normalize_percentile = _make(specs.normalize_percentile, _normalize_percentile)
gaussian_filter = _make(specs.gaussian_filter, _gaussian_filter)
median_filter = _make(specs.median_filter, _median_filter)
top_hat = _make(specs_assay.top_hat, _top_hat)
max_projection = _make(specs.max_projection, _max_projection)
mean_projection = _make(specs.mean_projection, _mean_projection)
sum_projection = _make(specs.sum_projection, _sum_projection)
threshold_otsu = _make(specs.threshold_otsu, _threshold_otsu)
label = _make(specs.label, _label)
bottom_hat = _make(specs_assay.bottom_hat, _bottom_hat)
mean_filter = _make(specs_assay.mean_filter, _mean_filter)
minimum_filter = _make(specs_assay.minimum_filter, _minimum_filter)
maximum_filter = _make(specs_assay.maximum_filter, _maximum_filter)
variance_filter = _make(specs_assay.variance_filter, _variance_filter)
laplace = _make(specs_assay.laplace, _laplace)
difference_of_gaussians = _make(specs_assay.difference_of_gaussians, _difference_of_gaussians)
subtract_gaussian_background = _make(specs_assay.subtract_gaussian_background, _subtract_gaussian_background)
invert_intensity = _make(specs_assay.invert_intensity, _invert_intensity)
min_projection = _make(specs_assay.min_projection, _min_projection)
std_projection = _make(specs_assay.std_projection, _std_projection)
threshold_manual = _make(specs_assay.threshold_manual, _threshold_manual)
