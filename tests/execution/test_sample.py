"""Sample runs for tuning: step-by-step outputs of one site, equal to a plate run, with a cache of steps."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import tifffile

from plateflow import CompileError, FunctionStep, special_inputs, special_outputs
from plateflow.execution import run
from plateflow.execution.demo import demo_pipeline
from plateflow.execution.sample import (
    CancelToken,
    SampleCache,
    SampleRunner,
    SampleStepFailure,
    SampleStepOutput,
    run_sample,
)
from plateflow.memory import numpy


CALLS: Counter = Counter()


@numpy
def counted_scale(stack, factor=1.0):
    CALLS["scale"] += 1
    return stack.astype(np.float32) * np.float32(factor)


@numpy
def counted_offset(stack, offset=0.0):
    CALLS["offset"] += 1
    return stack + np.float32(offset)


@numpy
def counted_clip(stack, high=1e9):
    CALLS["clip"] += 1
    return np.minimum(stack, np.float32(high))


@special_outputs("tile_positions")
@numpy
def counted_positions(stack, spacing=64):
    CALLS["positions"] += 1
    return stack, [(0, i * spacing) for i in range(len(stack))]


@special_inputs("tile_positions")
@numpy
def counted_assemble(stack, tile_positions):
    CALLS["assemble"] += 1
    height, width = stack.shape[1:]
    canvas = np.zeros((height, max(x for _, x in tile_positions) + width), dtype=np.float32)
    for tile, (y, x) in zip(stack, tile_positions):
        canvas[y : y + height, x : x + width] = tile
    return canvas[None]


@numpy
def fails_on_purpose(stack, threshold=0.5):
    raise ValueError(f"threshold {threshold} is too low for this site")


@pytest.fixture(autouse=True)
def reset_counts():
    CALLS.clear()


def three_steps(factor=2.0, offset=1.0, high=1e9):
    return [
        FunctionStep((counted_scale, {"factor": factor}), name="Scale", variable_components=("z_index",)),
        FunctionStep((counted_offset, {"offset": offset}), name="Offset", variable_components=("z_index",)),
        FunctionStep((counted_clip, {"high": high}), name="Clip", variable_components=("z_index",)),
    ]


def outputs_of(runner, pipeline, well="A01", site="2", cancel=None):
    return list(runner.run(pipeline, well, site, cancel))


def test_outputs_equal_what_run_writes_for_that_site(small_plate, tmp_path):
    pipeline = demo_pipeline()
    # The same pipeline, but the plate run also writes step 2 to disk, to compare an intermediate step too.
    on_disk = [step.copy(force_disk_output=(index == 1)) for index, step in enumerate(pipeline)]
    report = run(on_disk, small_plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    out = tmp_path / "out"

    runner = SampleRunner(small_plate)
    outputs = outputs_of(runner, pipeline, "A01", "2")
    assert [o.step_name for o in outputs] == [s.name for s in pipeline]
    assert all(isinstance(o, SampleStepOutput) and o.well == "A01" and o.site == "2" for o in outputs)

    background = outputs[1]
    assert len(background.images) == 2 * 3  # channels x Z planes of site 2
    assert {image.site for image in background.images} == {"2"}
    for image, plane in zip(background.images, background.planes):
        written = tifffile.imread(out / "steps" / "02_remove-background" / image.path)
        assert plane.dtype == written.dtype
        np.testing.assert_array_equal(plane, written)

    last = outputs[-1]
    assert last.is_last and len(last.images) == 1  # the dict pattern runs channel 1 only
    for image, plane in zip(last.images, last.planes):
        written = tifffile.imread(out / image.path)
        assert plane.dtype == written.dtype == np.int32
        np.testing.assert_array_equal(plane, written)
    np.testing.assert_array_equal(last.stack, np.stack(last.planes))

    for table in ("object_counts", "object_measurements"):
        with open(out / f"{table}.csv", newline="") as handle:
            written_rows = [row for row in csv.DictReader(handle) if row["well"] == "A01" and row["site"] == "2"]
        sample_rows = last.tables[table]
        assert written_rows, table
        # ``slice`` counts images in the stack the function got: the plate run's stack held both sites.
        assert [{k: str(v) for k, v in row.items() if k != "slice"} for row in sample_rows] == [
            {k: v for k, v in row.items() if k != "slice"} for row in written_rows
        ]
        assert {row["slice"] for row in sample_rows} == {0}


def test_editing_one_step_recomputes_only_that_step_and_later_ones(small_plate):
    runner = SampleRunner(small_plate)
    first = outputs_of(runner, three_steps(offset=1.0))
    groups = 2  # one call per channel (Z varies inside the stack) on one site
    assert CALLS == Counter(scale=groups, offset=groups, clip=groups)
    assert not any(o.reused for o in first)

    CALLS.clear()
    second = outputs_of(runner, three_steps(offset=5.0))
    assert CALLS == Counter(offset=groups, clip=groups)  # step 1 came from the cache
    assert [o.reused for o in second] == [True, False, False]
    np.testing.assert_array_equal(second[0].stack, first[0].stack)
    np.testing.assert_allclose(second[2].stack, first[2].stack + 4.0)
    assert runner.computed == 3 + 2

    CALLS.clear()
    third = outputs_of(runner, three_steps(offset=5.0, high=100.0))
    assert CALLS == Counter(clip=groups)
    assert [o.reused for o in third] == [True, True, False]
    np.testing.assert_array_equal(third[2].stack, np.minimum(second[2].stack, 100.0))

    CALLS.clear()
    again = outputs_of(runner, three_steps(offset=5.0, high=100.0))
    assert CALLS == Counter() and all(o.reused for o in again)


def test_renaming_or_asking_to_see_a_step_reuses_it_but_another_site_does_not(small_plate):
    runner = SampleRunner(small_plate)
    outputs_of(runner, three_steps())
    CALLS.clear()
    renamed = [step.copy(name=f"{step.name} renamed", visualize=True) for step in three_steps()]
    outputs = outputs_of(runner, renamed)
    assert CALLS == Counter() and all(o.visualize for o in outputs)
    outputs_of(runner, three_steps(), site="1")
    assert CALLS == Counter(scale=2, offset=2, clip=2)


def test_disabling_a_step_changes_everything_after_it(small_plate):
    runner = SampleRunner(small_plate)
    outputs_of(runner, three_steps())
    CALLS.clear()
    steps = three_steps()
    outputs = outputs_of(runner, [steps[0], steps[2]])
    assert CALLS == Counter(clip=2)
    assert [o.step_index for o in outputs] == [0, 1] and outputs[-1].is_last


def test_cached_special_outputs_reach_the_steps_after_them(small_plate):
    def pipeline(factor):
        return [
            FunctionStep(counted_positions, name="Positions", variable_components=("z_index",)),
            FunctionStep((counted_scale, {"factor": factor}), name="Scale", variable_components=("z_index",)),
            FunctionStep(counted_assemble, name="Assemble", variable_components=("z_index",)),
        ]

    runner = SampleRunner(small_plate)
    before = outputs_of(runner, pipeline(1.0))
    positions = before[0].specials
    assert [s.name for s in positions] == ["tile_positions", "tile_positions"]
    assert positions[0].fixed == {"well": "A01", "site": "2", "channel": "1", "timepoint": "1"}
    assert positions[0].value == [(0, 0), (0, 64), (0, 128)] and positions[0].rows is None

    CALLS.clear()
    after = outputs_of(runner, pipeline(3.0))
    assert CALLS == Counter(scale=2, assemble=2)  # positions were not recomputed, but assemble got them
    fresh = list(run_sample(pipeline(3.0), small_plate, "A01", "2"))
    for cached_run, fresh_run in zip(after, fresh):
        np.testing.assert_array_equal(cached_run.stack, fresh_run.stack)
    assert after[2].stack.shape == (2, 64, 192)


def test_a_failing_step_yields_its_error_and_stops(small_plate):
    runner = SampleRunner(small_plate)
    steps = three_steps()
    steps.insert(1, FunctionStep((fails_on_purpose, {"threshold": 0.25}), name="Threshold", variable_components=("z_index",)))
    outputs = outputs_of(runner, steps)
    assert [type(o).__name__ for o in outputs] == ["SampleStepOutput", "SampleStepFailure"]
    failure = outputs[-1]
    assert isinstance(failure, SampleStepFailure)
    assert (failure.step_index, failure.step_name) == (1, "Threshold")
    assert "fails_on_purpose" in failure.function
    assert "threshold 0.25 is too low" in failure.message
    assert "fails_on_purpose" in failure.traceback and "ValueError" in failure.traceback
    assert failure.format().startswith("step 2 'Threshold', function ")
    assert CALLS["offset"] == 0 and CALLS["clip"] == 0


def test_a_step_whose_outputs_cannot_be_read_back_is_that_steps_failure(small_plate, monkeypatch):
    # Not only the step's function: anything that goes wrong with the step (reading its planes back
    # as numpy, say) ends the run with a failure on that step, never an exception out of the generator.
    runner = SampleRunner(small_plate)
    original = SampleRunner._collect

    def collect(self, plan, *args, **kwargs):
        if plan.step_index == 1:
            raise RuntimeError("cannot convert the planes to numpy")
        return original(self, plan, *args, **kwargs)

    monkeypatch.setattr(SampleRunner, "_collect", collect)
    outputs = outputs_of(runner, three_steps())
    assert [type(o).__name__ for o in outputs] == ["SampleStepOutput", "SampleStepFailure"]
    failure = outputs[-1]
    assert (failure.step_index, failure.step_name) == (1, "Offset")
    assert failure.message == "RuntimeError: cannot convert the planes to numpy" and "_collect" not in failure.function
    assert "cannot convert the planes" in failure.traceback


def test_cancel_stops_between_steps(small_plate):
    runner = SampleRunner(small_plate)
    token = CancelToken()
    seen = []
    for output in runner.run(three_steps(), "A01", "1", token):
        seen.append(output)
        token.cancel()
    assert len(seen) == 1 and CALLS == Counter(scale=2)


def test_compile_errors_are_raised_before_anything_runs(small_plate):
    runner = SampleRunner(small_plate)
    with pytest.raises(CompileError):
        runner.prepare([FunctionStep((counted_scale, {"factr": 2.0}))], "A01", "1")
    with pytest.raises(ValueError):
        runner.prepare(three_steps(), "A01", "9")
    assert CALLS == Counter()


def test_nothing_is_written_to_disk_or_the_plate(small_plate, plate_hashes, monkeypatch):
    from plateflow.vfs import FileManager

    backends = []
    original = FileManager.save

    def recording_save(self, data, path, backend, **options):
        backends.append(backend)
        return original(self, data, path, backend, **options)

    monkeypatch.setattr(FileManager, "save", recording_save)
    before = plate_hashes(small_plate)
    runner = SampleRunner(small_plate)
    outputs = outputs_of(runner, demo_pipeline(), "B02", "1")
    assert outputs[-1].tables["object_counts"][0]["well"] == "B02"
    assert backends and set(backends) == {"memory"}  # tables included: no disk, no zarr
    assert plate_hashes(small_plate) == before
    runner.close()
    assert len(runner.cache) == 0


def test_cache_is_bounded_by_bytes_least_recently_used_first(small_plate):
    plane_bytes = 64 * 64 * 4
    step_bytes = 2 * 3 * plane_bytes  # channels x Z planes of one site, float32
    runner = SampleRunner(small_plate, cache_bytes=2 * step_bytes)
    outputs_of(runner, three_steps())
    assert len(runner.cache) == 2 and runner.cache.nbytes <= 2 * step_bytes
    CALLS.clear()
    outputs_of(runner, three_steps())
    # Step 1 went first; recomputing it evicts step 2, and so on: a cache smaller than one run's
    # outputs keeps only the latest steps, and each rerun recomputes everything.
    assert CALLS == Counter(scale=2, offset=2, clip=2)
    assert len(runner.cache) == 2

    cache = SampleCache(max_bytes=10)
    assert cache.max_bytes == 10
    with pytest.raises(ValueError):
        SampleCache(max_bytes=-1)


def test_kwargs_of_every_kind_fingerprint_stably(small_plate):
    runner = SampleRunner(small_plate)

    def key(offset):
        steps = [FunctionStep((counted_scale, {"factor": 2.0})), FunctionStep((counted_offset, {"offset": offset}))]
        return runner.prepare(steps, "A01", "1").key

    array = np.array([0.5, 0.25], dtype=np.float32)[:, None, None]
    assert key(array) == key(array.copy())
    assert key(array)[0] == key(array * 2)[0] and key(array)[1] != key(array * 2)[1]
    assert key({"a": [1, 2], "b": (3.0, None)}) == key({"b": (3.0, None), "a": [1, 2]})
    assert key(np.float32(1.5)) == key(np.float32(1.5)) != key(1.5)
