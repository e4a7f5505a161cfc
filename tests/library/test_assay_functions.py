"""Values of the filters, thresholds, morphology and label functions added for assays (numpy reference).

Each result is compared with a reference computed another way: brute force
over windows, scikit-image's own function, or a hand-made image with a known
answer.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from plateflow.library import numpy_functions as nf

RNG = np.random.default_rng(11)
FLOAT = RNG.random((2, 23, 31)).astype(np.float32)
UINT16 = (RNG.random((2, 23, 31)) * 4000).astype(np.uint16)


def _windows(stack: np.ndarray, size: int) -> np.ndarray:
    radius = size // 2
    padded = np.pad(stack, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    return sliding_window_view(padded, (size, size), axis=(1, 2))


def test_window_filters_match_brute_force() -> None:
    np.testing.assert_allclose(nf.mean_filter(FLOAT, size=5), _windows(FLOAT, 5).mean(axis=(-1, -2)), atol=1e-6)
    np.testing.assert_array_equal(nf.minimum_filter(UINT16, size=3), _windows(UINT16, 3).min(axis=(-1, -2)))
    np.testing.assert_array_equal(nf.maximum_filter(UINT16, size=5), _windows(UINT16, 5).max(axis=(-1, -2)))
    np.testing.assert_allclose(nf.variance_filter(FLOAT, size=3), _windows(FLOAT.astype(np.float64), 3).var(axis=(-1, -2)), atol=1e-6)
    assert nf.mean_filter(UINT16, size=3).dtype == np.float32 and nf.minimum_filter(UINT16, size=3).dtype == np.uint16


def test_laplace_and_band_pass_filters() -> None:
    padded = np.pad(FLOAT, ((0, 0), (1, 1), (1, 1)), mode="edge")
    stencil = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:] - 4 * padded[:, 1:-1, 1:-1]
    np.testing.assert_allclose(nf.laplace(FLOAT), stencil, atol=1e-6)
    from scipy.ndimage import gaussian_filter
    from skimage.filters import difference_of_gaussians, sobel

    expected = np.stack([difference_of_gaussians(p, 1.0, 3.0, mode="nearest") for p in FLOAT])
    np.testing.assert_allclose(nf.difference_of_gaussians(FLOAT, low_sigma=1.0, high_sigma=3.0), expected, atol=1e-5)
    background = np.stack([gaussian_filter(p, 4.0, mode="nearest") for p in FLOAT])
    np.testing.assert_allclose(nf.subtract_gaussian_background(FLOAT, sigma=4.0), FLOAT - background, atol=1e-5)
    np.testing.assert_allclose(nf.sobel(FLOAT), np.stack([sobel(p, mode="nearest") for p in FLOAT]), atol=1e-6)
    with pytest.raises(ValueError, match="low_sigma=3.0 must be below high_sigma=1.0"):
        nf.difference_of_gaussians(FLOAT, low_sigma=3.0, high_sigma=1.0)


def test_top_hat_downsampled_keeps_objects_and_removes_the_background() -> None:
    yy, xx = np.mgrid[:256, :256]
    background = 1000 + 400 * np.sin(yy / 90.0) + 300 * np.cos(xx / 120.0)
    spots = np.zeros((256, 256))
    for cy, cx in [(40, 40), (128, 200), (200, 80), (90, 150)]:
        spots[(yy - cy) ** 2 + (xx - cx) ** 2 <= 6**2] = 800.0
    image = (background + spots).astype(np.uint16)[None]
    from skimage.morphology import disk, white_tophat

    exact = nf.top_hat(image, radius=20)
    np.testing.assert_array_equal(exact[0, 30:-30, 30:-30], white_tophat(image[0], disk(20))[30:-30, 30:-30])
    fast = nf.top_hat(image, radius=20, downsample=4)
    assert fast.dtype == np.uint16 and fast.shape == image.shape
    inside = spots > 0
    assert abs(fast[0][inside].mean() - 800) < 40  # the objects keep their signal
    assert fast[0][~inside].mean() < 15  # the slowly varying background (700 to 1700) is gone
    assert fast[0][~inside].mean() <= exact[0][~inside].mean() + 5


def test_intensity_projection_and_manual_threshold() -> None:
    data = np.array([[[1, 5], [9, 3]]], dtype=np.uint16)
    np.testing.assert_array_equal(nf.invert_intensity(data), [[[9, 5], [1, 7]]])
    assert nf.invert_intensity(data).dtype == np.uint16
    np.testing.assert_array_equal(nf.min_projection(UINT16), UINT16.min(axis=0, keepdims=True))
    np.testing.assert_allclose(nf.std_projection(FLOAT), FLOAT.astype(np.float64).std(axis=0, keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(nf.threshold_manual(data, threshold=4.0), [[[0, 1], [1, 0]]])


@pytest.mark.parametrize("name", ["threshold_triangle", "threshold_yen", "threshold_isodata", "threshold_mean"])
def test_skimage_thresholds_per_image_and_per_stack(name: str) -> None:
    import skimage.filters

    method = getattr(skimage.filters, name)
    per_image = getattr(nf, name)(UINT16, per_slice=True)
    expected = np.stack([p > method(p) for p in UINT16.astype(np.float32)]).astype(np.uint8)
    np.testing.assert_array_equal(per_image, expected)
    whole = getattr(nf, name)(UINT16, per_slice=False)
    np.testing.assert_array_equal(whole, (UINT16 > method(UINT16.astype(np.float32))).astype(np.uint8))


def test_binary_morphology_on_a_square() -> None:
    mask = np.zeros((1, 15, 15), np.uint8)
    mask[0, 4:11, 4:11] = 1  # 7 x 7
    assert nf.binary_erosion(mask, radius=1).sum() == 25  # 5 x 5
    dilated = nf.binary_dilation(mask, radius=1)
    assert dilated.sum() == 9 * 9 - 4  # 9 x 9 without the corners (a disk of radius 1 is a cross)
    # Opening removes a speck and keeps the square; closing fills a one-pixel gap.
    specked = mask.copy()
    specked[0, 0, 14] = 1
    opened = mask.copy()
    opened[0, [4, 4, 10, 10], [4, 10, 4, 10]] = 0  # the cross-shaped disk cannot reach the corners
    np.testing.assert_array_equal(nf.binary_opening(specked, radius=1), opened)
    gapped = mask.copy()
    gapped[0, 7, 4:11] = 0
    np.testing.assert_array_equal(nf.binary_closing(gapped, radius=1)[0, 5:10, 5:10], mask[0, 5:10, 5:10])
    # An object at the border does not shrink from the border side.
    edge = np.zeros((1, 9, 9), np.uint8)
    edge[0, :, :4] = 1
    assert nf.binary_erosion(edge, radius=1)[0, :, :3].all()


def test_fill_holes_remove_small_expand_and_clear_border() -> None:
    ring = np.zeros((1, 9, 9), np.int32)
    ring[0, 2:7, 2:7] = 3
    ring[0, 4, 4] = 0
    filled = nf.fill_holes(ring)
    assert filled[0, 4, 4] == 3 and filled.dtype == np.int32
    mask = (ring > 0).astype(np.uint8)
    assert nf.fill_holes(mask)[0, 4, 4] == 1 and nf.fill_holes(mask).dtype == np.uint8
    objects = np.zeros((1, 12, 12), np.uint8)
    objects[0, 0:2, 0:2] = 1  # area 4
    objects[0, 5:10, 5:10] = 1  # area 25
    kept = nf.remove_small_objects(objects, min_size=10)
    assert kept[0, :2, :2].sum() == 0 and kept[0, 5:10, 5:10].all()
    labels = np.zeros((1, 12, 12), np.int32)
    labels[0, 0:2, 0:2] = 1
    labels[0, 5:10, 5:10] = 2
    np.testing.assert_array_equal(nf.remove_small_objects(labels, min_size=10), np.where(labels == 2, 2, 0))
    from skimage.segmentation import expand_labels

    np.testing.assert_array_equal(nf.expand_labels(labels, distance=2)[0], expand_labels(labels[0], distance=2))
    cleared = nf.remove_border_objects(labels)
    np.testing.assert_array_equal(cleared, np.where(labels == 2, 1, 0))  # renumbered from 1


def test_window_sizes_must_be_odd() -> None:
    for name in ("mean_filter", "minimum_filter", "maximum_filter", "variance_filter"):
        with pytest.raises(ValueError, match="size=4 must be odd"):
            getattr(nf, name)(FLOAT, size=4)
