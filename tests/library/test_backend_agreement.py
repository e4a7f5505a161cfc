"""Every backend's version of an operation agrees with the numpy one.

Tolerances (the numpy result is the reference):

| output                                   | comparison                                  |
|------------------------------------------|---------------------------------------------|
| gaussian_filter, float32 input in [0, 1) | atol 1e-5                                   |
| gaussian_filter, uint16 input < 4000     | atol 5e-3 (float32 rounding of the sums)    |
| normalize_percentile (float32 in [0, 1]) | atol 1e-5                                   |
| mean/sum projection                      | rtol 1e-6                                   |
| median, top-hat, max projection          | exact, same dtype                           |
| threshold_otsu masks (uint8)             | exact                                       |
| label (int32)                            | torch, cupy: exact (raster-order numbering, |
|                                          | as scipy); pyclesperanto: the same objects, |
|                                          | compared up to relabelling                  |
| bottom-hat, min/max filters, min proj.   | exact, same dtype                           |
| threshold_manual, invert_intensity       | exact                                       |
| mean_filter (float32 in [0, 1))          | atol 1e-5                                   |
| variance_filter (float32 in [0, 1))      | atol 1e-5                                   |
| laplace (float32 in [0, 1))              | atol 1e-5                                   |
| difference_of_gaussians, subtract_       | atol 1e-5 (float input), as gaussian_filter |
| gaussian_background                      |                                             |
| std_projection                           | atol 1e-5                                   |
| top_hat with downsample=4 (uint16)       | atol 1 (rounding of the interpolated        |
|                                          | background to the integer dtype)            |

Borders: every backend replicates the edge pixel (scipy ``mode="nearest"``,
torch ``replicate``, pyclesperanto's only rule). cupy cases skip without a
CUDA GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from plateflow.library import numpy_functions

RNG = np.random.default_rng(7)
FLOAT = RNG.random((3, 33, 40)).astype(np.float32)
UINT16 = (RNG.random((3, 33, 40)) * 4000).astype(np.uint16)
MASK = (RNG.random((3, 33, 40)) > 0.55).astype(np.uint8)
BIG_UINT16 = (RNG.random((2, 70, 61)) * 4000).astype(np.uint16)


def _serpentine(height: int, width: int) -> np.ndarray:
    """One 1-px-wide path winding over the whole plane (a component as long as it can be: the worst
    case for labelling by spreading), beside nested rings (components inside components)."""
    mask = np.zeros((2, height, width), np.uint8)
    mask[0, ::2, :] = 1
    for row in range(1, height, 2):
        mask[0, row, width - 1 if row % 4 == 1 else 0] = 1
    for ring in range(0, min(height, width) // 2, 3):
        mask[1, ring, ring : width - ring] = mask[1, height - 1 - ring, ring : width - ring] = 1
        mask[1, ring : height - ring, ring] = mask[1, ring : height - ring, width - 1 - ring] = 1
    return mask


SERPENTINE = _serpentine(41, 37)

# (operation, input, options, comparison)
CASES = [
    ("gaussian_filter", FLOAT, {"sigma": 1.5}, ("atol", 1e-5)),
    ("gaussian_filter", UINT16, {"sigma": 2.0}, ("atol", 5e-3)),
    ("gaussian_filter", FLOAT, {"sigma": 0.0}, ("atol", 0.0)),
    ("median_filter", FLOAT, {"size": 3}, ("exact",)),
    ("median_filter", UINT16, {"size": 5}, ("exact",)),
    ("top_hat", UINT16, {"radius": 3}, ("exact",)),
    ("top_hat", FLOAT, {"radius": 2}, ("exact",)),
    ("max_projection", UINT16, {}, ("exact",)),
    ("mean_projection", UINT16, {}, ("rtol", 1e-6)),
    ("sum_projection", FLOAT, {}, ("rtol", 1e-6)),
    ("normalize_percentile", UINT16, {"low_percentile": 2.0, "high_percentile": 98.0}, ("atol", 1e-5)),
    ("threshold_otsu", FLOAT, {"per_slice": True}, ("exact",)),
    ("threshold_otsu", UINT16, {"per_slice": False}, ("exact",)),
    ("label", MASK, {"connectivity": 1}, ("labels",)),
    ("label", SERPENTINE, {"connectivity": 1}, ("labels",)),
    ("label", SERPENTINE, {"connectivity": 2}, ("labels",)),
    ("label", MASK, {"connectivity": 2}, ("labels",)),
    ("top_hat", BIG_UINT16, {"radius": 9, "downsample": 4}, ("atol", 1.0)),
    ("top_hat", BIG_UINT16, {"radius": 50, "downsample": 4}, ("atol", 1.0)),
    ("bottom_hat", UINT16, {"radius": 3}, ("exact",)),
    ("bottom_hat", FLOAT, {"radius": 2}, ("exact",)),
    ("minimum_filter", UINT16, {"size": 5}, ("exact",)),
    ("maximum_filter", FLOAT, {"size": 3}, ("exact",)),
    ("mean_filter", FLOAT, {"size": 5}, ("atol", 1e-5)),
    ("variance_filter", FLOAT, {"size": 3}, ("atol", 1e-5)),
    ("laplace", FLOAT, {}, ("atol", 1e-5)),
    ("difference_of_gaussians", FLOAT, {"low_sigma": 1.0, "high_sigma": 2.5}, ("atol", 1e-5)),
    ("subtract_gaussian_background", FLOAT, {"sigma": 3.0}, ("atol", 1e-5)),
    ("invert_intensity", UINT16, {}, ("exact",)),
    ("invert_intensity", FLOAT, {}, ("exact",)),
    ("min_projection", UINT16, {}, ("exact",)),
    ("std_projection", FLOAT, {}, ("atol", 1e-5)),
    ("threshold_manual", FLOAT, {"threshold": 0.4}, ("exact",)),
    ("threshold_manual", UINT16, {"threshold": 2000.0}, ("exact",)),
]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to renumbering: background agrees and labels map one to one."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize(
    ("operation", "data", "options", "comparison"), CASES, ids=[f"{c[0]}-{c[1].dtype}-{i}" for i, c in enumerate(CASES)]
)
def test_backend_agrees_with_numpy(backend, operation, data, options, comparison) -> None:
    if operation not in backend.module.__all__:
        pytest.skip(f"{backend.name} has no {operation}")
    expected = getattr(numpy_functions, operation)(data, **options)
    result = backend.to_numpy(getattr(backend.module, operation)(backend.to_backend(data), **options))
    assert result.shape == expected.shape
    assert result.dtype == expected.dtype
    kind = comparison[0]
    if kind == "exact":
        np.testing.assert_array_equal(result, expected)
    elif kind == "atol":
        np.testing.assert_allclose(result, expected, rtol=0, atol=comparison[1])
    elif kind == "rtol":
        np.testing.assert_allclose(result, expected, rtol=comparison[1])
    elif backend.name == "pyclesperanto":  # its labelling numbers objects in its own order
        for got, want in zip(result, expected):
            assert _same_partition(got, want)
        assert [len(np.unique(p)) for p in result] == [len(np.unique(p)) for p in expected]
    else:
        np.testing.assert_array_equal(result, expected)


def test_backend_results_stay_on_the_backend(backend) -> None:
    out = backend.module.gaussian_filter(backend.to_backend(FLOAT), sigma=1.0)
    assert type(out) is type(backend.to_backend(FLOAT))


def test_backend_validates_like_numpy(backend) -> None:
    with pytest.raises(ValueError, match="size=4 must be odd"):
        backend.module.median_filter(backend.to_backend(FLOAT), size=4)
