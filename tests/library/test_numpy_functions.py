"""The numpy library against scipy / scikit-image called directly, and exact expectations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage
from skimage.morphology import disk

from plateflow.library import numpy_functions as nf
from plateflow.signatures import describe_parameters

RNG = np.random.default_rng(3)
FLOAT = RNG.random((2, 30, 36)).astype(np.float32)
UINT16 = (RNG.random((2, 30, 36)) * 3000).astype(np.uint16)


def _per_slice(func, stack, **kw):
    return np.stack([func(plane, **kw) for plane in stack])


def test_gaussian_matches_scipy_per_slice() -> None:
    expected = _per_slice(ndi.gaussian_filter, UINT16.astype(np.float32), sigma=2.0, mode="nearest")
    result = nf.gaussian_filter(UINT16, sigma=2.0)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_median_and_top_hat_match_scipy() -> None:
    np.testing.assert_array_equal(nf.median_filter(UINT16, size=5), _per_slice(ndi.median_filter, UINT16, size=5, mode="nearest"))
    expected = _per_slice(ndi.white_tophat, UINT16, footprint=disk(4), mode="nearest")
    result = nf.top_hat(UINT16, radius=4)
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, expected)


def test_rolling_ball_and_unsharp_match_skimage() -> None:
    background = _per_slice(skimage.restoration.rolling_ball, UINT16, radius=10)
    np.testing.assert_array_equal(nf.rolling_ball(UINT16, radius=10), (UINT16 - background).astype(np.uint16))
    sharp = _per_slice(skimage.filters.unsharp_mask, FLOAT, radius=2.0, amount=1.5, preserve_range=True)
    np.testing.assert_allclose(nf.unsharp_mask(FLOAT, radius=2.0, amount=1.5), sharp, atol=1e-6)


def test_projections() -> None:
    np.testing.assert_array_equal(nf.max_projection(UINT16), UINT16.max(axis=0)[None])
    np.testing.assert_allclose(nf.sum_projection(UINT16), UINT16.sum(axis=0, dtype=np.float64)[None], rtol=1e-7)
    np.testing.assert_allclose(nf.mean_projection(UINT16), UINT16.mean(axis=0)[None], rtol=1e-6)
    assert nf.mean_projection(UINT16).dtype == np.float32


@pytest.mark.parametrize("measure", ["laplacian_variance", "variance"])
def test_best_focus_returns_the_sharp_plane(measure: str) -> None:
    sharp = (RNG.random((40, 40)) * 1000).astype(np.uint16)
    planes = [ndi.gaussian_filter(sharp, 3), sharp, ndi.gaussian_filter(sharp, 1.5)]
    result = nf.best_focus_projection(np.stack(planes), measure=measure)
    assert result.shape == (1, 40, 40)
    np.testing.assert_array_equal(result[0], sharp)


def test_thresholds_match_skimage() -> None:
    otsu = nf.threshold_otsu(UINT16)
    assert otsu.dtype == np.uint8 and set(np.unique(otsu)) == {0, 1}
    for plane, mask in zip(UINT16.astype(np.float32), otsu):
        np.testing.assert_array_equal(mask, plane > np.float32(skimage.filters.threshold_otsu(plane)))
    whole = UINT16.astype(np.float32)
    np.testing.assert_array_equal(nf.threshold_li(UINT16, per_slice=False), whole > skimage.filters.threshold_li(whole))
    local = nf.threshold_local(FLOAT, block_size=11, offset=0.01, method="mean")
    for plane, mask in zip(FLOAT, local):
        expected = plane > skimage.filters.threshold_local(plane, 11, method="mean", offset=0.01, mode="nearest")
        np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_label_matches_skimage_numbering(connectivity: int) -> None:
    mask = (RNG.random((2, 25, 25)) > 0.6).astype(np.uint8)
    result = nf.label(mask, connectivity=connectivity)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, _per_slice(skimage.measure.label, mask, connectivity=connectivity))


def test_normalize_percentile_maps_percentiles_to_target() -> None:
    low, high = np.percentile(UINT16, [5, 95])
    result = nf.normalize_percentile(UINT16, low_percentile=5, high_percentile=95, target_min=0, target_max=255, clip=True)
    expected = np.clip((UINT16.astype(np.float64) - low) / (high - low) * 255, 0, 255)
    np.testing.assert_allclose(result, expected, atol=1e-3)
    assert result.dtype == np.float32
    flat = nf.normalize_percentile(np.full((1, 4, 4), 7, np.uint16))
    np.testing.assert_array_equal(flat, 0)


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.float32)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1000
    return image


def test_segment_nuclei_splits_touching_nuclei_and_drops_debris() -> None:
    image = _discs((80, 80), [(20, 20), (20, 35), (60, 55)], 8)  # the first two touch
    image[70:72, 5:7] = 1000  # 4 px of debris
    labels = nf.segment_nuclei(image[None], sigma=1.0, min_size=30, min_distance=5)
    assert labels.dtype == np.int32
    assert labels.max() == 3
    assert labels[0, 70, 5] == 0
    assert len({labels[0, 20, 20], labels[0, 20, 35], labels[0, 60, 55]}) == 3


def test_identify_nuclei_larger_than_every_object_finds_none() -> None:
    # Found by tests/compiler/test_check_runs.py: a diameter of 99 px on a 64 px image left no core to seed from.
    image = _discs((64, 64), [(20, 20), (44, 40)], 6) + 100
    labels = nf.segment_nuclei(image[None], diameter=99.0)
    assert labels.shape == (1, 64, 64) and labels.dtype == np.int32 and labels.max() == 0
    assert nf.segment_nuclei(image[None], diameter=12.0).max() == 2


def test_measure_nuclei_tables() -> None:
    image = _discs((60, 60), [(15, 15), (40, 42)], 6) + 100
    image[40:, 30:] *= 2  # the second nucleus is twice as bright
    stack = np.stack([image, _discs((60, 60), [(30, 30)], 6) + 100])
    labels, objects, counts = nf.measure_nuclei(stack, sigma=1.0, min_size=10, min_distance=4)
    assert [row["object_count"] for row in counts] == [2, 1]
    assert [row["slice"] for row in counts] == [0, 1]
    assert len(objects) == 3
    for row in objects:
        plane = labels[row["slice"]] == row["label"]
        assert row["area"] == plane.sum()
        assert row["mean_intensity"] == pytest.approx(stack[row["slice"]][plane].mean())
        assert row["max_intensity"] == pytest.approx(stack[row["slice"]][plane].max())
        ys, xs = np.nonzero(plane)
        assert (row["centroid_y"], row["centroid_x"]) == pytest.approx((ys.mean(), xs.mean()))
    assert set(objects[0]) == {"slice", "label", "area", "mean_intensity", "max_intensity", "centroid_y", "centroid_x"}


def test_composite_channels() -> None:
    result = nf.composite_channels(UINT16, weights=(0.25, 2.0))
    np.testing.assert_allclose(result[0], UINT16[0] * 0.25 + UINT16[1] * 2.0, rtol=1e-6)
    np.testing.assert_allclose(nf.composite_channels(UINT16)[0], UINT16.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(nf.composite_channels(UINT16, method="max", weights=(1, 1))[0], UINT16.max(axis=0))
    with pytest.raises(ValueError, match="weights has 3 values but the stack has 2 images"):
        nf.composite_channels(UINT16, weights=(1, 1, 1))


def test_tiles_are_found_and_assembled() -> None:
    scene = ndi.gaussian_filter(RNG.random((160, 220)), 2).astype(np.float32)
    tile, step = 64, 51  # 20 % overlap: 13 px of 64
    jitter = {(0, 1): (2, -1), (1, 0): (-1, 2), (1, 2): (1, 1)}
    truth, tiles = [], []
    for r in range(2):
        for c in range(3):
            dy, dx = jitter.get((r, c), (0, 0))
            y, x = 10 + r * step + dy, 10 + c * step + dx
            truth.append((y, x))
            tiles.append(scene[y : y + tile, x : x + tile])
    stack = np.stack(tiles)
    returned, positions = nf.find_tile_positions(stack, grid_shape=(2, 3), overlap=0.2)
    assert returned is stack
    found = np.asarray(positions) - positions[0]
    np.testing.assert_allclose(found, np.asarray(truth) - truth[0], atol=0.5)
    mosaic = nf.assemble_tiles(stack, positions=positions, blend="overwrite")
    top, left = np.min(truth, axis=0)
    expected = scene[top : top + mosaic.shape[1], left : left + mosaic.shape[2]]
    covered = nf.assemble_tiles(np.ones_like(stack), positions=positions)[0] > 0
    np.testing.assert_allclose(mosaic[0][covered], expected[covered], atol=1e-6)


def test_validation_names_the_bad_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"sigma=-1.0 is not valid: -1.0 is below the minimum 0"):
        nf.gaussian_filter(FLOAT, sigma=-1.0)
    with pytest.raises(ValueError, match=r"low_percentile=90 must be below high_percentile=10"):
        nf.normalize_percentile(FLOAT, low_percentile=90, high_percentile=10)
    with pytest.raises(ValueError, match=r"'cubic' is not one of the choices: 'gaussian', 'mean', 'median'"):
        nf.threshold_local(FLOAT, method="cubic")
    with pytest.raises(ValueError, match="do not form a square grid"):
        nf.find_tile_positions(FLOAT)
    with pytest.raises(TypeError):
        nf.gaussian_filter(FLOAT, sigmaa=1.0)


def test_nan_is_outside_every_bound() -> None:
    # NaN compares false with both limits; it must not slip through as "in range".
    with pytest.raises(ValueError, match=r"sigma=nan is not valid: nan is not a number; use a value from 0 to 100"):
        nf.gaussian_filter(FLOAT, sigma=float("nan"))
    with pytest.raises(ValueError, match=r"low_percentile=nan is not valid: nan is not a number"):
        nf.normalize_percentile(FLOAT, low_percentile=float("nan"))


def test_parameters_carry_bounds_units_and_docs() -> None:
    (sigma,) = describe_parameters(nf.gaussian_filter)
    assert (sigma.name, sigma.default, sigma.unit, sigma.bounds.min) == ("sigma", 1.0, "px", 0)
    assert "Standard deviation" in sigma.doc
    size = describe_parameters(nf.median_filter)[0]
    assert size.annotation is int and size.keyword_only
    method = {p.name: p for p in describe_parameters(nf.threshold_local)}["method"]
    assert method.choices == ("gaussian", "mean", "median")
    for name in nf.__all__:
        for param in describe_parameters(getattr(nf, name)):
            assert param.doc, f"numpy.{name}: parameter {param.name} has no doc"


def test_stacks_that_are_not_n_y_x_are_named_before_any_kernel_runs() -> None:
    with pytest.raises(ValueError, match=r"gaussian_filter: expected an \(N, Y, X\) image stack, got an array of shape \(8, 8\); pass image\[None\]"):
        nf.gaussian_filter(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match=r"max_projection: the stack of shape \(0, 8, 8\) holds no pixels"):
        nf.max_projection(np.zeros((0, 8, 8), np.uint16))
    with pytest.raises(ValueError, match=r"label: expected an \(N, Y, X\) image stack, got an array of shape \(1, 2, 8, 8\)"):
        nf.label(np.zeros((1, 2, 8, 8), np.uint8))
    one_pixel = np.array([[[7]]], np.uint16)  # the smallest stack is fine
    assert nf.max_projection(one_pixel).tolist() == [[[7]]] and nf.median_filter(one_pixel).tolist() == [[[7]]]


def test_otsu_on_nan_names_the_values() -> None:
    stack = np.ones((1, 8, 8), np.float32)
    stack[0, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"values range from nan to nan: NaN or infinite values have no threshold"):
        nf.threshold_otsu(stack)
