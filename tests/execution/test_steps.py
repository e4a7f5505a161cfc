"""One well, step by step: pixel values, patterns, special outputs, naming and errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep, compile_pipeline
from plateflow.execution import StepError, process_step, run, run_well
from plateflow.library import registry
from plateflow.plate import open_plate
from plateflow.vfs import FileManager

from . import functions as f
from .conftest import read_tree


def _plate_stack(plate, well, site, channel):
    files = [x for x in plate.files_for_well(well) if x.site == site and x.channel == channel]
    files.sort(key=lambda x: int(x.z_index))
    return [x.path for x in files], np.stack([tifffile.imread(plate.root / x.path) for x in files])


def test_pixels_match_direct_library_calls(small_plate, tmp_path, plate_hashes):
    before = plate_hashes(small_plate)
    normalize = registry.get("numpy.normalize_percentile")
    top_hat = registry.get("numpy.top_hat")
    project = registry.get("numpy.max_projection")
    steps = [
        FunctionStep(normalize, variable_components=("z_index",)),
        FunctionStep((top_hat, {"radius": 5}), variable_components=("z_index",)),
        FunctionStep(project, variable_components=("z_index",)),
    ]
    report = run(steps, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok and report.succeeded == ["A01", "B02"]
    outputs = read_tree(tmp_path / "out")
    plate = open_plate(small_plate)
    # Projection collapses Z: one output per site and channel, named after the first Z plane.
    assert len(outputs) == 2 * 2 * 2
    assert all("/ZStep_1/" in name for name in outputs)
    for well in ("A01", "B02"):
        for site in ("1", "2"):
            for channel in ("1", "2"):
                names, stack = _plate_stack(plate, well, site, channel)
                expected = project(top_hat(normalize(stack), radius=5))[0]
                got = outputs[names[0]]
                assert got.dtype == expected.dtype == np.float32
                np.testing.assert_array_equal(got, expected)
    assert plate_hashes(small_plate) == before


def test_chain_and_dict_patterns(small_plate, tmp_path):
    steps = [
        FunctionStep([f.add_one, f.double], variable_components=("site",)),
        FunctionStep({"1": f.double, "2": [f.add_one, (f.double, {})]}, variable_components=("site",), group_by="channel"),
    ]
    report = run(steps, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok
    outputs = read_tree(tmp_path / "out")
    plate = open_plate(small_plate)
    for image in plate.files:
        raw = tifffile.imread(plate.root / image.path).astype(np.float32)
        first = (raw + 1) * 2
        expected = first * 2 if image.channel == "1" else (first + 1) * 2
        np.testing.assert_array_equal(outputs[image.path], expected)


def test_dict_pattern_skips_groups_without_an_entry(small_plate, tmp_path):
    steps = [FunctionStep({"2": f.double}, variable_components=("site",), group_by="channel")]
    report = run(steps, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok
    assert {name.rsplit("_", 1)[-1] for name in read_tree(tmp_path / "out")} == {"w2.tif"}


def test_special_outputs_reach_the_consumer(small_plate, tmp_path):
    steps = [
        FunctionStep(f.find_positions, variable_components=("site",)),
        FunctionStep(f.assemble, variable_components=("site",)),
    ]
    report = run(steps, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    outputs = read_tree(tmp_path / "out")
    plate = open_plate(small_plate)
    # One mosaic per (channel, z): the two sites side by side, named after site 1.
    assert len(outputs) == 2 * 2 * 3
    for name, image in outputs.items():
        assert "_s1_" in name and image.shape == (64, 128)
        left = tifffile.imread(plate.root / name)
        right = tifffile.imread(plate.root / name.replace("_s1_", "_s2_"))
        np.testing.assert_array_equal(image, np.concatenate([left, right], axis=1))


def test_special_value_matches_producer_after_projection(small_plate, tmp_path):
    # Producer groups fix (site, channel); after the projection the consumer's groups fix
    # z_index too, and take the value of the producer whose fixed components they contain.
    steps = [
        FunctionStep(f.measure_mean, variable_components=("z_index", "timepoint")),
        FunctionStep(registry.get("numpy.max_projection"), variable_components=("z_index",)),
        FunctionStep(f.subtract_mean, variable_components=("timepoint",)),
    ]
    report = run(steps, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    outputs = read_tree(tmp_path / "out")
    plate = open_plate(small_plate)
    names, stack = _plate_stack(plate, "A01", "2", "1")
    expected = stack.max(axis=0).astype(np.float32) - np.float32(stack.mean())
    np.testing.assert_array_equal(outputs[names[0]], expected)


def test_chain_breaker_next_step_reads_the_plate(small_plate, tmp_path):
    steps = [FunctionStep(f.zero_out), FunctionStep(f.add_one)]
    report = run(steps, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok
    outputs = read_tree(tmp_path / "out")
    plate = open_plate(small_plate)
    image = plate.files[0]
    np.testing.assert_array_equal(outputs[image.path], tifffile.imread(plate.root / image.path).astype(np.float32) + 1)


def test_float64_written_as_float32_and_bool_as_uint8(small_plate, tmp_path):
    report = run([FunctionStep(f.as_float64)], small_plate, tmp_path / "f", workers=1, progress=False)
    assert report.ok
    image = next(iter(read_tree(tmp_path / "f").values()))
    assert image.dtype == np.float32
    report = run([FunctionStep(f.as_bool)], small_plate, tmp_path / "b", workers=1, progress=False)
    image = next(iter(read_tree(tmp_path / "b").values()))
    assert image.dtype == np.uint8 and set(np.unique(image)) <= {0, 1}


def test_float64_kept_when_configured(small_plate, tmp_path):
    from plateflow import GlobalConfig

    report = run([FunctionStep(f.as_float64)], small_plate, tmp_path / "f", workers=1, progress=False, config=GlobalConfig(float_output_dtype="float64"))
    assert report.ok
    assert next(iter(read_tree(tmp_path / "f").values())).dtype == np.float64


@pytest.mark.parametrize(
    ("func", "needle"),
    [
        (f.returns_only_stack, "declares special outputs mean_value"),
        (f.returns_tuple, "declares no special outputs"),
        (f.two_of_three, "returned 2 images for a stack of 3"),
        (f.flat_image, "returned an array of shape (64, 64)"),
        (f.not_an_array, "returned list, not an image stack"),
    ],
)
def test_bad_results_name_step_function_well_and_group(small_plate, tmp_path, func, needle):
    steps = [FunctionStep(f.add_one, name="Prepare"), FunctionStep(func, name="Bad step", variable_components=("z_index",))]
    report = run(steps, small_plate, tmp_path / "out", wells=["A01"], workers=1, progress=False)
    failure = report.failed["A01"]
    assert needle in failure.error
    assert "step 2 'Bad step'" in failure.error
    assert func.__name__ in failure.error and failure.function == func.__name__
    assert "well A01" in failure.error and "site=1" in failure.error and "channel=1" in failure.error
    assert failure.step_index == 1 and failure.step_name == "Bad step"
    assert "Traceback" in failure.traceback


def test_process_step_reads_the_frozen_context(small_plate, tmp_path):
    steps = [FunctionStep(f.double)]
    fm = FileManager(read_only_roots=[small_plate])
    contexts = compile_pipeline(steps, small_plate, wells=["A01"], output_root=str(tmp_path / "out"), filemanager=fm)
    context = contexts["A01"]
    before = [dict(p) for p in context.plans()]
    result = process_step(steps[0], context)
    assert result.groups == 2 * 3 * 1 and len(result.outputs) == 2 * 2 * 3
    assert [dict(p) for p in context.plans()] == before


def test_load_error_names_the_file(tmp_path):
    from .conftest import make_plate

    plate_root = make_plate(tmp_path / "plate", wells=("A01",))
    broken = sorted(plate_root.rglob("A01_s2_w1.tif"))[0]
    broken.write_bytes(broken.read_bytes()[:200])
    report = run([FunctionStep(f.double)], plate_root, tmp_path / "out", workers=1, progress=False)
    failure = report.failed["A01"]
    assert failure.file.endswith("A01_s2_w1.tif")
    assert "cannot load the image" in failure.error


def test_run_well_frees_memory(small_plate, tmp_path):
    fm = FileManager(read_only_roots=[small_plate])
    steps = [FunctionStep(f.measure_mean, variable_components=("z_index",)), FunctionStep(f.subtract_mean, variable_components=("z_index",)), FunctionStep(f.double)]
    contexts = compile_pipeline(steps, small_plate, output_root=str(tmp_path / "out"), filemanager=fm)
    result = run_well(contexts["A01"])
    assert result.ok and len(result.outputs) == 12
    assert len(fm.backend("memory")) == 0


def test_step_error_message():
    error = StepError("boom", step_index=2, step_name="Seg", well="B03", function="segment", group="[site=1]", file="x.tif")
    assert str(error) == "step 3 'Seg', function segment, well B03, group [site=1], file x.tif: boom"
