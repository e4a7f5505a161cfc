"""A sample plate with a known illumination field, and illumination correction validated on it.

The plate (6 wells x 4 sites, 128 x 128, the nuclear channel) shares one
flat-field and dark-field whose truth the generator writes. The estimate from a
sample of the plate's wells must be within 5 % of the truth (relative RMS), the
background's unevenness across a field must drop by at least half after
correction, and nuclei counts on the corrected images must be no worse than on
the raw ones.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow.library import illumination as il
from plateflow.library import numpy_functions as nf
from plateflow.plate import generate_sample_plate, open_plate
from plateflow.plate.sample import DARKFIELD_TRUTH, FLATFIELD_TRUTH, IlluminationField
from tests.conftest import background_unevenness, hash_tree

WELLS = ("A01", "A02", "A03", "B01", "B02", "B03")
SAMPLE_WELLS = ("A01", "A03", "B02", "B03")  # the estimate sees 4 of the 6 wells
PLATE = dict(wells=WELLS, sites=4, channels=1, z_planes=1, size=(128, 128))
FIELD = IlluminationField(vignetting=0.5, gradient=(0.3, -0.2), background=1500.0)  # the defaults, spelt out


@pytest.fixture(scope="module")
def plates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("illumination")
    lit = generate_sample_plate(base / "lit" / "plate", illumination=FIELD, **PLATE)
    plain = generate_sample_plate(base / "plain" / "plate", **PLATE)
    return lit, plain


def _images(root: Path, wells: tuple[str, ...] = WELLS) -> tuple[list[tuple[str, int]], np.ndarray]:
    keys, images = [], []
    for well in wells:
        for site in range(1, PLATE["sites"] + 1):
            keys.append((well, site))
            images.append(tifffile.imread(root / "TimePoint_1" / f"{well}_s{site}_w1.tif"))
    return keys, np.stack(images)


def _background_masks(root: Path, keys: list[tuple[str, int]], shape: tuple[int, int]) -> list[np.ndarray]:
    """Pixels more than 16 px from every true nucleus centre: background, known from the truth, not from a segmentation."""
    centres: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with open(root / "ground_truth_centroids.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            centres.setdefault((row["well"], int(row["site"])), []).append((float(row["y"]), float(row["x"])))
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    masks = []
    for key in keys:
        far = np.ones(shape, dtype=bool)
        for y, x in centres.get(key, []):
            far &= (yy - y) ** 2 + (xx - x) ** 2 > 16.0**2
        masks.append(far)
    return masks


def test_default_output_is_unchanged_and_the_field_keeps_the_nuclei(plates):
    lit, plain = plates
    assert hash_tree(generate_sample_plate(lit.parent.parent / "again" / "plate", illumination=None, **PLATE)) == hash_tree(plain)
    lit_files, plain_files = hash_tree(lit), hash_tree(plain)
    assert set(lit_files) == set(plain_files) | {FLATFIELD_TRUTH, DARKFIELD_TRUTH}
    for truth in ("ground_truth.csv", "ground_truth_centroids.csv", "plate.HTD"):
        assert lit_files[truth] == plain_files[truth]  # same nuclei in the same places
    assert lit_files["TimePoint_1/A01_s1_w1.tif"] != plain_files["TimePoint_1/A01_s1_w1.tif"]
    plate = open_plate(lit)
    assert plate.wells == WELLS and plate.image_shape == (128, 128)
    assert set(plate.ignored_files) == {"ground_truth.csv", "ground_truth_centroids.csv", FLATFIELD_TRUTH, DARKFIELD_TRUTH}


def test_truth_files_describe_the_images(plates):
    lit, _ = plates
    flat, dark = np.load(lit / FLATFIELD_TRUTH), np.load(lit / DARKFIELD_TRUTH)
    assert flat.shape == dark.shape == (128, 128) and flat.dtype == np.float64
    assert flat.mean() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(flat, FIELD.flatfield((128, 128)))
    np.testing.assert_array_equal(dark, np.full((128, 128), 100.0))
    assert FIELD == IlluminationField()
    # vignetting: the farthest corner (bottom left of a centre at (0.45, 0.55)) loses that fraction of the centre's gain
    vignette = IlluminationField(gradient=(0.0, 0.0), center=(0.5, 0.5)).flatfield((65, 65))
    assert vignette[64, 0] / vignette[32, 32] == pytest.approx(0.5, abs=1e-12)
    # gradient: the gain changes by that fraction from the first row (column) to the last
    tilt = IlluminationField(vignetting=0.0, gradient=(0.3, -0.2)).flatfield((40, 50))
    assert tilt[-1, :].mean() - tilt[0, :].mean() == pytest.approx(0.3, rel=1e-9)
    assert tilt[:, -1].mean() - tilt[:, 0].mean() == pytest.approx(-0.2, rel=1e-9)
    # background pixels read background * flat-field + dark-field, to within the noise
    keys, raw = _images(lit)
    masks = _background_masks(lit, keys, (128, 128))
    expected = FIELD.background * flat + dark
    ratios = np.concatenate([image[mask] / expected[mask] for image, mask in zip(raw, masks)])
    assert np.median(ratios) == pytest.approx(1.0, abs=0.01)


def test_estimated_flatfield_is_within_5_percent_of_truth(plates):
    lit, _ = plates
    truth = np.load(lit / FLATFIELD_TRUTH)
    _, sample = _images(lit, SAMPLE_WELLS)
    assert len(sample) == 16

    def relative_rms(**options: object) -> float:
        _, illumination = il.estimate_illumination(sample, dark_offset=100.0, **options)
        return float(np.sqrt(np.mean((illumination[0] / truth - 1.0) ** 2)))

    default = relative_rms()  # the 25th percentile of each pixel's values, smoothed by sigma 16 px
    assert default < 0.05, f"relative RMS {default:.3f}"
    for options in ({"percentile": 10.0}, {"percentile": 30.0}, {"method": "median"}, {"smoothing_sigma": 8.0}):
        assert relative_rms(**options) < 0.05, options


def test_correction_evens_the_background_and_keeps_the_counts(plates):
    lit, _ = plates
    keys, raw = _images(lit)
    _, sample = _images(lit, SAMPLE_WELLS)
    _, illumination = il.estimate_illumination(sample, dark_offset=100.0)
    corrected = il.correct_illumination(raw, illumination=illumination)
    assert corrected.dtype == raw.dtype == np.uint16

    masks = _background_masks(lit, keys, (128, 128))
    before = np.array([background_unevenness(image, mask) for image, mask in zip(raw, masks)])
    after = np.array([background_unevenness(image, mask) for image, mask in zip(corrected, masks)])
    assert before.mean() > 0.04  # the field is there to correct
    assert after.mean() <= 0.5 * before.mean(), f"background CV {before.mean():.4f} -> {after.mean():.4f}"
    assert np.all(after < before)

    with open(lit / "ground_truth.csv", newline="", encoding="utf-8") as fh:
        truth = {(row["well"], int(row["site"])): int(row["nucleus_count"]) for row in csv.DictReader(fh)}
    raw_error = sum(abs(int(nf.segment_nuclei(image[None]).max()) - truth[key]) for key, image in zip(keys, raw))
    corrected_error = sum(abs(int(nf.segment_nuclei(image[None]).max()) - truth[key]) for key, image in zip(keys, corrected))
    assert corrected_error <= raw_error
    assert corrected_error <= 0.05 * sum(truth.values())


def test_through_the_registry_when_wired(plates):
    from plateflow.library import registry

    if "numpy.estimate_illumination" not in registry.names():
        pytest.skip("numpy.estimate_illumination is not yet in the registry (plateflow.library.numpy_functions does not list it)")
    lit, _ = plates
    _, sample = _images(lit, SAMPLE_WELLS)
    estimate, correct = registry.get("numpy.estimate_illumination"), registry.get("numpy.correct_illumination")
    _, illumination = estimate(sample, dark_offset=100.0)
    np.testing.assert_array_equal(illumination, il.estimate_illumination(sample, dark_offset=100.0)[1])
    np.testing.assert_array_equal(correct(sample, illumination=illumination), il.correct_illumination(sample, illumination=illumination))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vignetting": 1.5}, r"vignetting=1.5 is not valid; use a fraction from 0 to 0.9"),
        ({"gradient": (0.1,)}, r"gradient=\(0.1,\) is not valid; use \(y, x\) with each a number from -0.5 to 0.5"),
        ({"center": (0.5, 2.0), "background": -1.0}, r"center=\(0.5, 2.0\) is not valid.*; background=-1.0 is not valid; use counts from 0 to 10000"),
        ({"dark_offset": float("nan")}, r"dark_offset=nan is not valid"),
    ],
)
def test_illumination_field_is_validated(options, message):
    with pytest.raises(ValueError, match=r"IlluminationField: " + message):
        IlluminationField(**options)


def test_generator_refuses_a_field_of_the_wrong_kind(tmp_path):
    with pytest.raises(ValueError, match=r"illumination=True is not valid; pass an IlluminationField"):
        generate_sample_plate(tmp_path / "plate", illumination=True, **PLATE)  # type: ignore[arg-type]
    assert not (tmp_path / "plate").exists()


def test_dark_offset_and_dtype_follow_the_images(tmp_path):
    field = IlluminationField(dark_offset=50.0, vignetting=0.0, gradient=(0.0, 0.0), background=400.0)
    root = generate_sample_plate(tmp_path / "plate", illumination=field, wells=("A01",), sites=1, channels=1, z_planes=1, size=(64, 64), dtype="uint8")
    np.testing.assert_array_equal(np.load(root / DARKFIELD_TRUTH), np.full((64, 64), 150.0))
    np.testing.assert_allclose(np.load(root / FLATFIELD_TRUTH), np.ones((64, 64)), rtol=1e-12)
    image = tifffile.imread(root / "TimePoint_1" / "A01_s1_w1.tif")
    mask = _background_masks(root, [("A01", 1)], (64, 64))[0]
    # uint8 images are counts / 16: the background reads (400 + 150) / 16
    assert np.median(image[mask]) == pytest.approx(550 / 16, abs=1.0)


def test_estimate_then_correct_runs_as_a_per_well_pipeline_today(tmp_path):
    """Until plate steps exist, the pair works per well: the estimate passes its stack on and links by special I/O."""
    import plateflow
    from plateflow import FunctionStep, Pipeline

    root = generate_sample_plate(tmp_path / "plate", illumination=FIELD, wells=("A01", "B02"), sites=4, channels=1, z_planes=1, size=(64, 64))
    pipeline = Pipeline([
        FunctionStep((il.estimate_illumination, {"dark_offset": 100.0, "smoothing_sigma": 8.0}), name="Estimate"),
        FunctionStep(il.correct_illumination, name="Correct"),
    ])
    assert [d for d in plateflow.check(pipeline, open_plate(root)) if d.severity == "error"] == []
    report = plateflow.run(pipeline, root, tmp_path / "out", workers=1)
    assert report.succeeded == ["A01", "B02"] and report.failed == {}
    for well in ("A01", "B02"):
        raw = np.stack([tifffile.imread(root / "TimePoint_1" / f"{well}_s{site}_w1.tif") for site in range(1, 5)])
        _, illumination = il.estimate_illumination(raw, dark_offset=100.0, smoothing_sigma=8.0)
        written = np.stack([tifffile.imread(tmp_path / "out" / "TimePoint_1" / f"{well}_s{site}_w1.tif") for site in range(1, 5)])
        np.testing.assert_array_equal(written, il.correct_illumination(raw, illumination=illumination))


def test_every_channel_plane_and_timepoint_gets_the_field(tmp_path):
    grid = dict(wells=("B03",), sites=1, channels=3, z_planes=2, timepoints=2, size=(64, 96))
    lit = hash_tree(generate_sample_plate(tmp_path / "lit", illumination=FIELD, **grid))
    plain = hash_tree(generate_sample_plate(tmp_path / "plain", **grid))
    images = [path for path in plain if path.endswith(".tif")]
    assert len(images) == 3 * 2 * 2
    assert all(lit[path] != plain[path] for path in images)
    assert np.load(tmp_path / "lit" / FLATFIELD_TRUTH).shape == (64, 96)
