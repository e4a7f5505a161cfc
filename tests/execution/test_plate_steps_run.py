"""Plate steps through plateflow.run: in this process, in worker processes, on Dask; wells=, resume, failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import plateflow
from plateflow import FunctionStep, Pipeline
from plateflow.library import illumination as il
from plateflow.memory import numpy as numpy_type
from plateflow.plate import generate_sample_plate
from plateflow.plate.sample import IlluminationField

WELLS = ("A01", "A02", "B01", "B02")


@pytest.fixture(scope="module")
def plate_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample_plate(tmp_path_factory.mktemp("plate-steps-api") / "plate", illumination=IlluminationField(),
                                 wells=WELLS, sites=2, channels=1, z_planes=1, size=(64, 64))


def _pipeline(**sample) -> Pipeline:
    return Pipeline([
        FunctionStep((il.estimate_illumination, {"dark_offset": 100.0, "smoothing_sigma": 8.0}), name="Field", scope="plate", **sample),
        FunctionStep(il.correct_illumination, name="Correct"),
    ])


def _expected(plate_root: Path, wells=WELLS, sites=(1, 2)) -> np.ndarray:
    sample = np.stack([tifffile.imread(plate_root / "TimePoint_1" / f"{w}_s{s}_w1.tif") for w in wells for s in sites])
    return il.estimate_illumination(sample, dark_offset=100.0, smoothing_sigma=8.0)[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_run_applies_the_plate_estimate_to_every_well(plate_root, tmp_path, workers):
    out = tmp_path / "out"
    report = plateflow.run(_pipeline(sample_wells=("A01", "B02")), plate_root, out, workers=workers, progress=False)
    assert sorted(report.succeeded) == list(WELLS) and report.failed == {}
    illumination = _expected(plate_root, wells=("A01", "B02"))
    for well in WELLS:
        raw = tifffile.imread(plate_root / "TimePoint_1" / f"{well}_s2_w1.tif")
        written = tifffile.imread(out / "TimePoint_1" / f"{well}_s2_w1.tif")
        np.testing.assert_array_equal(written, il.correct_illumination(raw[None], illumination=illumination)[0])


def test_wells_subset_uses_the_whole_plate_estimate_and_says_so(plate_root, tmp_path):
    out = tmp_path / "out"
    report = plateflow.run(_pipeline(), plate_root, out, wells=["B01"], workers=1, progress=False)
    assert report.succeeded == ["B01"]
    (record,) = report.plate_steps.values()
    assert record["sample_wells"] == list(WELLS) and record["sample_sites"] == ["1", "2"] and not record["reused"]
    raw = tifffile.imread(plate_root / "TimePoint_1" / "B01_s1_w1.tif")
    np.testing.assert_array_equal(
        tifffile.imread(out / "TimePoint_1" / "B01_s1_w1.tif"), il.correct_illumination(raw[None], illumination=_expected(plate_root))[0]
    )


def test_resume_does_not_redo_the_plate_step(plate_root, tmp_path):
    import json

    out = tmp_path / "out"
    first = plateflow.run(_pipeline(), plate_root, out, workers=1, progress=False)
    (key,) = first.plate_steps
    (written,) = first.plate_steps[key]["files"]
    manifest = json.loads(first.manifest.read_text())
    assert manifest["plate_steps"][key]["status"] == "done" and manifest["plate_steps"][key]["digest"] == first.plate_steps[key]["digest"]
    stamp = Path(written).stat().st_mtime_ns
    again = plateflow.run(_pipeline(), plate_root, out, workers=1, resume=True, progress=False)
    assert again.plate_steps[key]["reused"] and sorted(again.skipped) == list(WELLS) and Path(written).stat().st_mtime_ns == stamp
    # a lost plate file: the plate step runs again and so do the wells that used it
    Path(written).unlink()
    third = plateflow.run(_pipeline(), plate_root, out, workers=1, resume=True, progress=False)
    assert not third.plate_steps[key]["reused"] and sorted(third.succeeded) == list(WELLS) and third.skipped == []
    assert Path(written).is_file()


@numpy_type
def _no_field(stack):
    raise RuntimeError("no field today")


def test_a_failing_plate_step_stops_the_run_before_any_well(plate_root, tmp_path):
    from plateflow.special_io import special_outputs

    pipeline = Pipeline([FunctionStep(special_outputs("illumination")(_no_field), name="Field", scope="plate"), FunctionStep(il.correct_illumination)])
    report = plateflow.run(pipeline, plate_root, tmp_path / "out", workers=2, progress=False)
    assert list(report.failed) == ["plate"] and report.succeeded == []
    failure = report.failed["plate"]
    assert (failure.step_index, failure.step_name, failure.function) == (0, "Field", "_no_field")
    assert "RuntimeError: no field today" in failure.error and "Traceback" in failure.traceback
    assert not (tmp_path / "out" / "TimePoint_1").exists()


def test_dask_workers_read_the_plate_estimate(plate_root, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        report = plateflow.run(_pipeline(sample_wells=("A01", "B02")), plate_root, out, scheduler=client, progress=False)
    assert sorted(report.succeeded) == list(WELLS) and report.failed == {}
    illumination = _expected(plate_root, wells=("A01", "B02"))
    raw = tifffile.imread(plate_root / "TimePoint_1" / "B01_s1_w1.tif")
    np.testing.assert_array_equal(tifffile.imread(out / "TimePoint_1" / "B01_s1_w1.tif"), il.correct_illumination(raw[None], illumination=illumination)[0])
