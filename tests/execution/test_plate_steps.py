"""Running plate-level steps: once over the sample, values to every well, validated on a known illumination field.

The plate (6 wells x 4 sites, 128 x 128) shares one flat-field whose truth the
generator writes. A plate step estimates it from 4 of the wells; every well is
then corrected by a per-well step that reads the plate step's value. Checked
against the truth: the estimate within 5 % (relative RMS), the background's
unevenness across a field at least halved, nuclei counts no worse.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep, Pipeline
from plateflow.compiler import compile_with_plate_steps
from plateflow.execution.plate_steps import (
    PlateStepError,
    load_plate_values,
    plate_values,
    preload_plate_values,
    run_plate_steps,
)
from plateflow.execution.well import bind_context, new_filemanager, run_well
from plateflow.library import illumination as il
from plateflow.library import numpy_functions as nf
from plateflow.memory import numpy as numpy_type
from plateflow.plate import generate_sample_plate, open_plate
from plateflow.plate.sample import FLATFIELD_TRUTH, IlluminationField
from tests.conftest import background_unevenness

WELLS = ("A01", "A02", "A03", "B01", "B02", "B03")
SAMPLE_WELLS = ("A01", "A03", "B02", "B03")
SITES = 4


@pytest.fixture(scope="module")
def lit_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample_plate(
        tmp_path_factory.mktemp("plate-step-run") / "plate",
        illumination=IlluminationField(),
        wells=WELLS,
        sites=SITES,
        channels=1,
        z_planes=1,
        size=(128, 128),
    )


def _pipeline() -> Pipeline:
    return Pipeline([
        FunctionStep((il.estimate_illumination, {"dark_offset": 100.0}), name="Illumination field", scope="plate", sample_wells=SAMPLE_WELLS),
        FunctionStep(il.correct_illumination, name="Correct"),
    ])


def _run(plate_root: Path, out: Path, pipeline: Pipeline, wells=None):
    plate = open_plate(plate_root)
    contexts, planning = compile_with_plate_steps(pipeline, plate, wells=wells, output_root=out)
    fm = new_filemanager(str(plate.root))
    results = run_plate_steps(planning.plans, fm, output_root=str(out))
    wells_run = {well: run_well(bind_context(context, filemanager=fm)) for well, context in contexts.items()}
    return planning, results, wells_run


def _image(root: Path, well: str, site: int) -> np.ndarray:
    return tifffile.imread(root / "TimePoint_1" / f"{well}_s{site}_w1.tif")


def _background(root: Path, well: str, site: int, shape: tuple[int, int]) -> np.ndarray:
    """Pixels more than 16 px from every true nucleus centre (from the truth, not a segmentation)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    far = np.ones(shape, dtype=bool)
    with open(root / "ground_truth_centroids.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["well"] == well and int(row["site"]) == site:
                far &= (yy - float(row["y"])) ** 2 + (xx - float(row["x"])) ** 2 > 16.0**2
    return far


def test_plate_step_estimates_the_field_once_and_every_well_is_corrected(lit_plate, tmp_path):
    out = tmp_path / "out"
    planning, results, wells_run = _run(lit_plate, out, _pipeline())
    (result,) = results.values()
    assert (result.groups, result.images, result.sample_wells) == (1, len(SAMPLE_WELLS) * SITES, SAMPLE_WELLS)
    assert all(r.ok for r in wells_run.values()), {w: r.failure for w, r in wells_run.items() if not r.ok}

    # the estimate, against the generator's truth
    ((path, illumination),) = result.values.items()
    truth = np.load(lit_plate / FLATFIELD_TRUTH)
    relative_rms = float(np.sqrt(np.mean((illumination[0] / truth - 1.0) ** 2)))
    assert relative_rms < 0.05, relative_rms
    # and the same as the function computes on the sample's images in stack order (wells, then sites)
    sample = np.stack([_image(lit_plate, w, s) for w in SAMPLE_WELLS for s in range(1, SITES + 1)])
    np.testing.assert_array_equal(illumination, il.estimate_illumination(sample, dark_offset=100.0)[1])

    # its file, for resume, holds the same value
    (written,) = result.files
    assert written == f"{path}.npy" and Path(written).is_file() and "/_plate/01_illumination-field/illumination/" in written
    np.testing.assert_array_equal(np.load(written), illumination)

    before, after, raw_error, corrected_error, nuclei = [], [], 0, 0, 0
    with open(lit_plate / "ground_truth.csv", newline="", encoding="utf-8") as fh:
        counts = {(row["well"], int(row["site"])): int(row["nucleus_count"]) for row in csv.DictReader(fh)}
    for well in WELLS:  # every well, the two not in the sample too
        for site in range(1, SITES + 1):
            raw = _image(lit_plate, well, site)
            corrected = tifffile.imread(out / "TimePoint_1" / f"{well}_s{site}_w1.tif")
            np.testing.assert_array_equal(corrected, il.correct_illumination(raw[None], illumination=illumination)[0])
            mask = _background(lit_plate, well, site, raw.shape)
            before.append(background_unevenness(raw, mask))
            after.append(background_unevenness(corrected, mask))
            truth_count = counts[(well, site)]
            nuclei += truth_count
            raw_error += abs(int(nf.segment_nuclei(raw[None]).max()) - truth_count)
            corrected_error += abs(int(nf.segment_nuclei(corrected[None]).max()) - truth_count)
    assert np.mean(before) > 0.04
    assert np.mean(after) <= 0.5 * np.mean(before), (np.mean(before), np.mean(after))
    assert corrected_error <= raw_error and corrected_error <= 0.05 * nuclei, (raw_error, corrected_error, nuclei)


def test_values_ship_to_another_file_manager_and_reload_from_disk(lit_plate, tmp_path):
    out = tmp_path / "out"
    planning, results, _ = _run(lit_plate, out, _pipeline(), wells=["A02"])
    values = plate_values(results)
    (plate_plan,) = planning.plans
    reloaded = load_plate_values(plate_plan, new_filemanager(str(lit_plate)))
    assert list(reloaded) == list(values)
    for path in values:
        np.testing.assert_array_equal(reloaded[path], values[path])

    # a worker: a fresh file manager with the values preloaded runs a well the plate step never saw
    contexts, _ = compile_with_plate_steps(_pipeline(), open_plate(lit_plate), wells=["B01"], output_root=out)
    worker_fm = new_filemanager(str(lit_plate))
    preload_plate_values(worker_fm, reloaded)
    result = run_well(bind_context(contexts["B01"], filemanager=worker_fm))
    assert result.ok, result.failure
    ((_, illumination),) = values.items()
    raw = _image(lit_plate, "B01", 2)
    np.testing.assert_array_equal(
        tifffile.imread(out / "TimePoint_1" / "B01_s2_w1.tif"),
        il.correct_illumination(raw[None], illumination=illumination)[0],
    )
    # a worker handed nothing reads each value once from the plate step's file, then keeps it in memory
    from plateflow.execution.plate_steps import fetch_plate_values

    correct = contexts["B01"].plans()[0]
    spec, sources = correct.special_inputs["illumination"], correct.special_sources["illumination"]
    bare_fm = new_filemanager(str(lit_plate))
    assert run_well(bind_context(contexts["B01"], filemanager=bare_fm)).ok
    assert fetch_plate_values(spec, sources, bare_fm) == 0  # already in memory: not read again
    # with neither the value nor its file the consuming well fails, naming the special input
    for path in values:
        Path(f"{path}.npy").unlink()
    failed = run_well(bind_context(contexts["B01"], filemanager=new_filemanager(str(lit_plate))))
    assert not failed.ok and "no value for special input 'illumination' from its plate step" in failed.failure.error


def test_missing_files_are_named_on_reload(lit_plate, tmp_path):
    contexts, planning = compile_with_plate_steps(_pipeline(), open_plate(lit_plate), output_root=tmp_path / "never-run")
    with pytest.raises(FileNotFoundError, match=r"plate step 1 'Illumination field': its outputs .*illumination/_?.*\.npy are missing"):
        load_plate_values(planning.plans[0], new_filemanager(str(lit_plate)))


def test_plate_percentiles_give_every_well_one_scale(lit_plate, tmp_path):
    out = tmp_path / "out"
    pipeline = Pipeline([
        FunctionStep((il.estimate_plate_percentiles, {"low_percentile": 1.0, "high_percentile": 99.0}), name="Percentiles", scope="plate", sample_sites=("1", "2")),
        FunctionStep(il.normalize_plate_percentiles, name="Normalize"),
    ])
    planning, results, wells_run = _run(lit_plate, out, pipeline)
    assert all(r.ok for r in wells_run.values())
    ((_, percentiles),) = plate_values(results).items()
    sample = np.stack([_image(lit_plate, w, s) for w in WELLS for s in (1, 2)])
    np.testing.assert_allclose(percentiles, np.percentile(sample, [1.0, 99.0]))
    low, high = percentiles
    raw = _image(lit_plate, "B03", 4)  # a site outside the sample
    written = tifffile.imread(out / "TimePoint_1" / "B03_s4_w1.tif")
    np.testing.assert_allclose(written, np.clip((raw.astype(np.float64) - low) / (high - low), 0.0, 1.0), atol=1e-5)


@numpy_type
def _broken_estimate(stack):
    raise RuntimeError("no field today")


def test_a_failing_plate_step_names_step_function_and_group(lit_plate, tmp_path):
    from plateflow.special_io import special_outputs

    broken = special_outputs("illumination")(_broken_estimate)
    pipeline = Pipeline([FunctionStep(broken, name="Field", scope="plate"), FunctionStep(il.correct_illumination, name="Correct")])
    contexts, planning = compile_with_plate_steps(pipeline, open_plate(lit_plate), output_root=tmp_path)
    with pytest.raises(PlateStepError) as info:
        run_plate_steps(planning.plans, new_filemanager(str(lit_plate)), output_root=str(tmp_path))
    error = info.value
    assert (error.step_index, error.step_name, error.function) == (0, "Field", "_broken_estimate")
    assert error.group == "[channel=1 z_index=1 timepoint=1]"
    assert str(error).startswith("plate step 1 'Field', function _broken_estimate, group [channel=1 z_index=1 timepoint=1]: RuntimeError: no field today")
    assert not (tmp_path / "_plate").exists()


def test_resume_reuses_a_finished_plate_step_and_reruns_a_changed_one(lit_plate, tmp_path):
    from plateflow.execution.plate_steps import ensure_plate_steps, plate_step_record

    out = tmp_path / "out"
    plate = open_plate(lit_plate)
    _, planning = compile_with_plate_steps(_pipeline(), plate, output_root=out)
    first, ran = ensure_plate_steps(planning.plans, new_filemanager(str(lit_plate)), output_root=str(out))
    (step_id,) = ran
    record = plate_step_record(first[step_id])
    assert record["status"] == "done" and record["sample_wells"] == list(SAMPLE_WELLS) and len(record["files"]) == 1
    key = planning.plans[0].key
    assert key == "01_illumination-field"
    (first_value,) = first[step_id].values.values()

    # a new process builds new step objects (new step ids): the record is found by the step's key
    _, planning = compile_with_plate_steps(_pipeline(), plate, output_root=out)
    step_id = planning.plans[0].step_id
    fm = new_filemanager(str(lit_plate))
    again, ran = ensure_plate_steps(planning.plans, fm, output_root=str(out), previous={key: record})
    assert ran == () and again[step_id].reused
    ((path, value),) = again[step_id].values.items()
    np.testing.assert_array_equal(value, first_value)
    np.testing.assert_array_equal(fm.load(path, "memory"), value)  # preloaded for the wells

    # another digest (the sample changed) or a lost file: it runs again
    changed, ran = ensure_plate_steps(planning.plans, new_filemanager(str(lit_plate)), output_root=str(out), previous={key: {**record, "digest": "0" * 64}})
    assert ran == (step_id,) and not changed[step_id].reused
    Path(record["files"][0]).unlink()
    lost, ran = ensure_plate_steps(planning.plans, new_filemanager(str(lit_plate)), output_root=str(out), previous={key: record})
    assert ran == (step_id,) and Path(record["files"][0]).is_file()


def test_tuning_runs_the_plate_step_on_its_whole_sample_once_and_caches_it(lit_plate):
    from plateflow.execution.sample import SampleRunner, SampleStepOutput

    runner = SampleRunner(lit_plate)
    outputs = list(runner.run(_pipeline(), "A02", "3"))  # a well outside the sample
    assert all(isinstance(o, SampleStepOutput) for o in outputs), outputs
    field, corrected = outputs
    assert (field.step_index, field.step_count, field.reused, field.planes) == (0, 2, False, ())
    ((special),) = field.specials
    sample = np.stack([_image(lit_plate, w, s) for w in SAMPLE_WELLS for s in range(1, SITES + 1)])  # the whole sample, not the site
    np.testing.assert_array_equal(special.value, il.estimate_illumination(sample, dark_offset=100.0)[1])
    assert special.name == "illumination" and dict(special.fixed) == {"channel": "1", "z_index": "1", "timepoint": "1"}
    np.testing.assert_array_equal(corrected.stack[0], il.correct_illumination(_image(lit_plate, "A02", 3)[None], illumination=special.value)[0])
    assert corrected.is_last and runner.computed == 2

    # an edit after the plate step reuses the estimate; an edit of the estimate recomputes it and what follows
    edited = Pipeline([_pipeline()[0], FunctionStep((il.correct_illumination, {"output_dtype": "float32"}), name="Correct")])
    field, corrected = list(runner.run(edited, "A02", "3"))
    assert field.reused and not corrected.reused and corrected.stack.dtype == np.float32 and runner.computed == 3
    changed = Pipeline([
        FunctionStep((il.estimate_illumination, {"dark_offset": 90.0}), name="Illumination field", scope="plate", sample_wells=SAMPLE_WELLS),
        FunctionStep(il.correct_illumination, name="Correct"),
    ])
    field, corrected = list(runner.run(changed, "A02", "3"))
    assert not field.reused and not corrected.reused and runner.computed == 5


def test_a_plate_step_forced_to_disk_writes_its_images_under_plate_only(lit_plate, tmp_path):
    out = tmp_path / "out"
    pipeline = Pipeline([
        FunctionStep((il.estimate_illumination, {"dark_offset": 100.0}), name="Field", scope="plate", sample_wells=("A01",), sample_sites=("2",), force_disk_output=True),
        FunctionStep(il.correct_illumination, name="Correct"),
    ])
    planning, results, wells_run = _run(lit_plate, out, pipeline, wells=["B02"])
    (result,) = results.values()
    images = sorted(p for p in result.files if p.endswith(".tif"))
    assert images == [f"{out}/_plate/01_field/TimePoint_1/A01_s2_w1.tif"]
    np.testing.assert_array_equal(tifffile.imread(images[0]), _image(lit_plate, "A01", 2))  # the estimate passes its stack on
    assert wells_run["B02"].ok and not (out / "TimePoint_1" / "A01_s2_w1.tif").exists()
