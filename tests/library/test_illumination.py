"""Plate-level operations: illumination estimate and correction, plate percentiles, control normalisation.

Each value is checked against a reference computed another way (sorting by
hand, a hand-built separable convolution, Python's ``statistics`` module).
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from plateflow.library import illumination as il
from plateflow.library import numpy_functions as nf
from plateflow.signatures import describe_parameters
from plateflow.special_io import get_special_inputs, get_special_outputs


def _smooth_field(shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    return (1.0 - 0.3 * ((yy - 0.4) ** 2 + (xx - 0.6) ** 2)) * (1.0 + 0.2 * (xx - 0.5))


def _gaussian_by_hand(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian with edge replication, built from a sampled kernel and np.convolve."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, radius, mode="edge")
    rows = np.array([np.convolve(r, kernel, mode="valid") for r in padded])
    return np.array([np.convolve(c, kernel, mode="valid") for c in rows.T]).T


def test_estimate_recovers_a_field_exactly_when_images_differ_only_in_brightness():
    field = _smooth_field()
    brightness = np.array([80.0, 120.0, 100.0, 95.0, 140.0])
    stack = brightness[:, None, None] * field[None] + 100.0
    for method in ("percentile", "median", "mean"):
        passed, illumination = il.estimate_illumination(stack, method=method, smoothing_sigma=0.0, dark_offset=100.0)
        assert passed is stack  # the images go on to the next step unchanged
        assert illumination.shape == (2, 24, 32) and illumination.dtype == np.float32
        np.testing.assert_allclose(illumination[0], field / field.mean(), rtol=1e-6)
        np.testing.assert_array_equal(illumination[1], np.full((24, 32), 100.0, np.float32))
    # the camera offset left in flattens the estimate: it is not multiplied by the field
    _, flattened = il.estimate_illumination(stack, smoothing_sigma=0.0)
    truth = field / field.mean()
    assert np.abs(flattened[0] - 1.0).max() < 0.7 * np.abs(truth - 1.0).max()


def test_estimate_statistic_and_smoothing_match_a_hand_computed_reference():
    rng = np.random.default_rng(3)
    stack = rng.uniform(50, 150, size=(7, 20, 22))
    ordered = np.sort(stack - 10.0, axis=0)  # 7 values per pixel: the median is the 4th, the 25th percentile the 2.5th
    references = {
        "median": ordered[3],
        "mean": (stack - 10.0).sum(axis=0) / 7,
        "percentile": ordered[1] + 0.5 * (ordered[2] - ordered[1]),
    }
    for method, statistic in references.items():
        _, unsmoothed = il.estimate_illumination(stack, method=method, percentile=25.0, smoothing_sigma=0.0, dark_offset=10.0)
        np.testing.assert_allclose(unsmoothed[0], statistic / statistic.mean(), rtol=1e-6)
        _, smoothed = il.estimate_illumination(stack, method=method, percentile=25.0, smoothing_sigma=2.0, dark_offset=10.0)
        expected = _gaussian_by_hand(statistic, 2.0)
        np.testing.assert_allclose(smoothed[0], expected / expected.mean(), rtol=1e-5)


def test_a_low_percentile_follows_the_background_where_objects_cover_most_images():
    field = _smooth_field((12, 12))
    stack = np.repeat((200.0 * field)[None], 10, axis=0)
    stack[:6, 4:8, 4:8] += 3000.0  # an object over the same pixels in 6 of the 10 images
    _, by_percentile = il.estimate_illumination(stack, percentile=25.0, smoothing_sigma=0.0)
    np.testing.assert_allclose(by_percentile[0], field / field.mean(), rtol=1e-6)
    _, by_median = il.estimate_illumination(stack, method="median", smoothing_sigma=0.0)
    assert by_median[0][4:8, 4:8].min() > 5 * by_median[0][:4].max()  # the median sees the object


def test_estimate_refuses_a_dark_offset_above_the_signal():
    with pytest.raises(ValueError, match=r"estimate_illumination: the median of the 3 images minus dark_offset=500.0 is not positive"):
        il.estimate_illumination(np.full((3, 8, 8), 120.0), method="median", dark_offset=500.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "basic"}, r"method='basic' is not valid: 'basic' is not one of the choices: 'percentile', 'median', 'mean'"),
        ({"percentile": 120.0}, r"percentile=120.0 is not valid: 120.0 is above the maximum 100"),
        ({"smoothing_sigma": -1.0}, r"smoothing_sigma=-1.0 is not valid: -1.0 is below the minimum 0"),
        ({"dark_offset": -5.0}, r"dark_offset=-5.0 is not valid: -5.0 is below the minimum 0"),
    ],
)
def test_estimate_options_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        il.estimate_illumination(np.ones((2, 8, 8)), **options)


def test_correct_illumination_divides_after_subtracting_the_dark_field():
    field = _smooth_field((6, 5))
    flat = (field / field.mean()).astype(np.float32)
    illumination = np.stack([flat, np.full(flat.shape, 100.0, np.float32)])
    raw = np.array([[[100, 250, 40000], [65535, 101, 0]]], dtype=np.uint16)
    raw = np.resize(raw, (2, 6, 5)).astype(np.uint16)
    corrected = il.correct_illumination(raw, illumination=illumination)
    assert corrected.dtype == np.uint16
    for index in np.ndindex(raw.shape):
        _, y, x = index
        value = (float(raw[index]) - 100.0) / float(flat[y, x])
        assert corrected[index] == min(max(round(value), 0), 65535), index  # rounded, clipped to the uint16 range
    as_float = il.correct_illumination(raw, illumination=illumination, output_dtype="float32")
    assert as_float.dtype == np.float32
    assert as_float[0, 0, 0] == pytest.approx(0.0, abs=1e-4)
    assert as_float[0, 0, 1] == pytest.approx(150.0 / float(flat[0, 1]), rel=1e-6)
    floats = raw.astype(np.float64)
    kept = il.correct_illumination(floats, illumination=flat)  # a flat-field alone: no dark-field subtracted
    assert kept.dtype == np.float64
    np.testing.assert_allclose(kept, floats / flat.astype(np.float64), rtol=1e-12)
    np.testing.assert_allclose(il.correct_illumination(floats, illumination=flat[None]), kept, rtol=1e-12)


def test_correct_illumination_errors_name_the_problem():
    stack = np.ones((2, 8, 8), np.uint16)
    with pytest.raises(ValueError, match=r"the illumination field is 4 x 4 pixels but the images are 8 x 8"):
        il.correct_illumination(stack, illumination=np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r"the flat-field must be positive and finite everywhere \(lowest 0\)"):
        il.correct_illumination(stack, illumination=np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"illumination must be an array of shape .*\(2, Y, X\).*got shape \(3, 8, 8\)"):
        il.correct_illumination(stack, illumination=np.ones((3, 8, 8)))
    with pytest.raises(ValueError, match=r"illumination must be an array .* got list \[1, 2\]"):
        il.correct_illumination(stack, illumination=[1, 2])


def test_plate_percentiles_give_every_well_the_scale_of_the_whole_sample():
    rng = np.random.default_rng(7)
    wells = [rng.integers(100, 4000, size=(3, 16, 16)).astype(np.uint16) * scale for scale in (1, 2, 3)]
    sample = np.concatenate(wells)
    passed, percentiles = il.estimate_plate_percentiles(sample, low_percentile=2.0, high_percentile=98.0)
    assert passed is sample
    values = np.sort(sample.astype(np.float64).ravel())  # linear interpolation between order statistics, by hand
    expected = []
    for q in (2.0, 98.0):
        position = q / 100 * (len(values) - 1)
        below = int(np.floor(position))
        expected.append(values[below] + (position - below) * (values[below + 1] - values[below]))
    np.testing.assert_allclose(percentiles, expected, rtol=1e-12)
    assert percentiles.dtype == np.float64
    whole = nf.normalize_percentile(sample, low_percentile=2.0, high_percentile=98.0)  # one stack: the same scale
    for index, well in enumerate(wells):
        alone = il.normalize_plate_percentiles(well, percentiles=percentiles)
        assert alone.dtype == np.float32
        np.testing.assert_allclose(alone, whole[3 * index : 3 * index + 3], atol=2e-6)
    unclipped = il.normalize_plate_percentiles(wells[0], percentiles=[100.0, 300.0], target_min=-1.0, target_max=1.0, clip=False)
    np.testing.assert_allclose(unclipped, (wells[0].astype(np.float64) - 100.0) / 200.0 * 2.0 - 1.0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"percentiles": [5.0]}, r"percentiles must be \[low, high\] \(two intensities\), got \[5.0\]"),
        ({"percentiles": np.array([9.0, 3.0])}, r"percentiles=\[9.0, 3.0\]: the low intensity must be below the high one"),
        ({"percentiles": [1.0, 3.0], "target_min": 2.0, "target_max": 1.0}, r"target_min=2.0 must be below target_max=1.0"),
    ],
)
def test_normalize_plate_percentiles_validates(options, message):
    with pytest.raises(ValueError, match=message):
        il.normalize_plate_percentiles(np.ones((1, 4, 4)), **options)


def test_estimate_plate_percentiles_validates_order():
    with pytest.raises(ValueError, match=r"low_percentile=90.0 must be below high_percentile=10.0"):
        il.estimate_plate_percentiles(np.ones((1, 4, 4)), low_percentile=90.0, high_percentile=10.0)


_TABLE = [
    {"well": "A01", "site": 1, "slice": 0, "object_count": 40, "mean_intensity": 500.0},
    {"well": "A01", "site": 2, "slice": 1, "object_count": 44, "mean_intensity": 520.0},
    {"well": "A02", "site": 1, "slice": 0, "object_count": 38, "mean_intensity": 470.0},
    {"well": "A02", "site": 2, "slice": 1, "object_count": 90, "mean_intensity": 490.0},
    {"well": "B01", "site": 1, "slice": 0, "object_count": 10, "mean_intensity": 900.0},
    {"well": "B01", "site": 2, "slice": 1, "object_count": 14, "mean_intensity": 880.0},
]


def test_normalize_to_controls_matches_the_statistics_module():
    controls = ("A01", "A02")
    control_counts = [r["object_count"] for r in _TABLE if r["well"] in controls]
    control_means = [r["mean_intensity"] for r in _TABLE if r["well"] in controls]
    for method in ("zscore", "robust_z", "percent_of_control"):
        out = il.normalize_to_controls(_TABLE, control_wells=controls, method=method)
        assert len(out) == len(_TABLE)
        for row, original in zip(out, _TABLE):
            assert {k: row[k] for k in original} == original  # original columns kept as they were
            # identifiers are not normalised; measurements are
            assert set(row) - set(original) == {f"object_count_{method}", f"mean_intensity_{method}"}
            for column, values in (("object_count", control_counts), ("mean_intensity", control_means)):
                if method == "zscore":
                    expected = (original[column] - statistics.mean(values)) / statistics.stdev(values)
                elif method == "robust_z":
                    centre = statistics.median(values)
                    expected = (original[column] - centre) / (1.4826 * statistics.median(abs(v - centre) for v in values))
                else:
                    expected = 100.0 * original[column] / statistics.mean(values)
                assert row[f"{column}_{method}"] == pytest.approx(expected, rel=1e-12)
    assert "object_count_zscore" not in _TABLE[0]  # the input rows are not changed


def test_normalize_to_controls_named_columns_only():
    out = il.normalize_to_controls(_TABLE, control_wells=["B01"], method="percent_of_control", columns=("mean_intensity",))
    assert [round(r["mean_intensity_percent_of_control"], 6) for r in out] == [
        round(100 * r["mean_intensity"] / 890.0, 6) for r in _TABLE
    ]
    assert "object_count_percent_of_control" not in out[0]


@pytest.mark.parametrize(
    ("table", "options", "message"),
    [
        (_TABLE, {"control_wells": ("H12", "A01", "G07")}, r"control wells \['H12', 'G07'\] have no rows in the table; its wells are \['A01', 'A02', 'B01'\]"),
        (_TABLE, {"control_wells": ()}, r"control_wells is empty"),
        (_TABLE, {"control_wells": ("A01",), "columns": ("area",)}, r"columns \['area'\] are not in the table"),
        (_TABLE, {"control_wells": ("A01",), "columns": ("well",)}, r"columns \['well'\] hold values that are not finite numbers"),
        (_TABLE, {"control_wells": ("A01",), "method": "zscore"}, None),
        ([{**r, "mean_intensity": 7.0} for r in _TABLE], {"control_wells": ("A01", "A02"), "method": "robust_z", "columns": ("mean_intensity",)},
         r"cannot normalise with method='robust_z' over 4 control rows: 'mean_intensity' \(the controls' spread is 0\)"),
        ([{"site": 1, "x": 1.0}], {"control_wells": ("A01",)}, r"rows \[0\] have no 'well' column"),
        ([{"well": "A01", "name": "a"}], {"control_wells": ("A01",)}, r"has no numeric measurement column"),
        ([], {"control_wells": ("A01",)}, r"the table has no rows"),
        ("A01", {"control_wells": ("A01",)}, r"expected a table as a list of dict rows, got str"),
        (_TABLE, {"control_wells": ("A01",), "method": "fold"}, r"method='fold' is not valid: 'fold' is not one of the choices"),
    ],
)
def test_normalize_to_controls_errors(table, options, message):
    if message is None:  # two control rows: zscore still works (ddof 1 needs two)
        assert len(il.normalize_to_controls(table, **options)) == len(table)
        return
    with pytest.raises(ValueError, match=message):
        il.normalize_to_controls(table, **options)


def test_single_control_row_cannot_give_a_zscore():
    with pytest.raises(ValueError, match=r"over 1 control rows: 'object_count' \(the controls' spread is 0\)"):
        il.normalize_to_controls(_TABLE[:1] + _TABLE[2:], control_wells=("A01",), method="zscore", columns=("object_count",))


def test_metadata_for_the_registry_and_the_compiler():
    assert get_special_outputs(il.estimate_illumination) == ("illumination",)
    assert get_special_inputs(il.correct_illumination) == ("illumination",)
    assert get_special_outputs(il.estimate_plate_percentiles) == ("percentiles",)
    assert get_special_inputs(il.normalize_plate_percentiles) == ("percentiles",)
    for func in (getattr(il, name) for name in il.__all__):
        assert func.input_memory_type == func.output_memory_type == "numpy"
        assert func.__module__ == "plateflow.library.illumination"
    methods = {p.name: p for p in describe_parameters(il.estimate_illumination)}
    assert methods["method"].choices == ("percentile", "median", "mean")
    assert methods["smoothing_sigma"].unit == "px"
    assert il.estimate_illumination.category == il.correct_illumination.category == "illumination"
    assert il.normalize_to_controls.category == "measurement"


def test_registry_holds_the_image_operations_and_not_the_table_one():
    from plateflow.library import registry

    image_operations = [name for name in il.__all__ if name != "normalize_to_controls"]
    assert image_operations == ["estimate_illumination", "correct_illumination", "estimate_plate_percentiles", "normalize_plate_percentiles"]
    for name in image_operations:
        assert registry.get(f"numpy.{name}") is getattr(il, name)
    # A table in, a table out: called on a run's merged tables, never offered as an image step.
    assert "numpy.normalize_to_controls" not in registry.names()
    info = registry.info("numpy.correct_illumination")
    assert info.special_inputs == ("illumination",) and info.available
