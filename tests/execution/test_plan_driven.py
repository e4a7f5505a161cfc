"""The compiled plan is the one source of truth: what it holds, and that execution reads nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep, compile_pipeline
from plateflow.compiler import PipelineCompiler, phases
from plateflow.execution import run_well
from plateflow.execution.well import bind_context, new_filemanager, pack_context, unpack_context
from plateflow.memory import numpy as numpy_memory
from plateflow.library import registry
from plateflow.plate import open_plate
from plateflow.vfs import FileManager

from . import functions as f


def _steps():
    project = registry.get("numpy.max_projection")
    return [
        FunctionStep((registry.get("numpy.gaussian_filter"), {"sigma": 1.0}), variable_components=("z_index",), name="blur"),
        FunctionStep(project, variable_components=("z_index",), name="project"),
        FunctionStep({"1": f.double}, group_by="channel", variable_components=("site",), force_disk_output=True, name="channel 1"),
        FunctionStep(f.add_one, variable_components=("site",), name="last"),
    ]


def test_a_plan_holds_its_groups_with_paths_in_stack_order(small_plate, tmp_path):
    plate = open_plate(small_plate)
    context = compile_pipeline(_steps(), plate, wells=["A01"], output_root=tmp_path / "out")["A01"]
    blur, project, channel_one, last = context.plans()
    # The first step reads the plate: one stack per (site, channel), its z planes in order.
    assert len(blur.groups) == 2 * 2
    group = blur.groups[0]
    assert dict(group.fixed) == {"well": "A01", "site": "1", "channel": "1", "timepoint": "1"}
    expected = sorted((x for x in plate.files_for_well("A01") if x.site == "1" and x.channel == "1"), key=lambda x: int(x.z_index))
    assert blur.input_paths(group) == tuple(str(plate.root / x.path) for x in expected)
    assert blur.output_paths(group) == tuple(f"{blur.output_dir}/{x.path}" for x in expected)
    # A step reads the paths its predecessor's plan names.
    assert project.input_paths(project.groups[0]) == blur.output_paths(blur.groups[0])
    # channel_one groups by site (stacks of sites) and keys the dict on the channel.
    assert [g.group_key for g in channel_one.groups] == ["1", "1", "1", "2", "2", "2"]
    assert last.read_backend == "disk" and last.input_dir == channel_one.output_dir
    assert [p.plate_image for p in context.plans()] == [((64, 64), "uint16"), None, None, None]


def test_phases_make_new_plans_and_leave_theirs_alone(small_plate, tmp_path):
    compiler = PipelineCompiler(_steps(), small_plate, output_root=tmp_path / "out")
    resolved = compiler.resolve()
    first = phases.plan_steps(resolved, compiler.orchestrator, "A01")
    snapshot = [dict(plan) for plan in first]
    stored = phases.plan_materialization_flags(first)
    typed, visualizers = phases.validate_memory_contracts(stored, resolved)
    placed = phases.assign_gpu_resources(typed, well_index=0, sink=compiler.sink)
    assert [dict(plan) for plan in first] == snapshot  # untouched
    assert all(a is not b for a, b in zip(first, stored))
    assert [p.write_backend for p in stored] == ["memory", "memory", "disk", "disk"]
    assert [p.write_backend for p in first] == ["memory"] * 4  # the defaults, as made by phase 1
    assert [p.input_memory_type for p in stored] == [None] * 4 and [p.input_memory_type for p in typed] == ["numpy"] * 4
    assert visualizers == () and [p.device for p in placed] == ["cpu"] * 4
    # The compile keeps nothing on the orchestrator.
    assert set(vars(compiler.orchestrator)) == {"plate", "global_config", "plate_config", "output_root"}


def test_a_worker_runs_a_well_from_the_plans_alone(small_plate, tmp_path, monkeypatch):
    """No Plate, no microscope handler, no listing of storage: the packed plans and a file manager."""
    out = tmp_path / "out"
    context = compile_pipeline(_steps(), small_plate, wells=["A01"], output_root=out)["A01"]
    blob = pack_context(context)
    from plateflow.plate import MicroscopeHandler, Plate

    def forbidden(*args, **kwargs):
        raise AssertionError("execution must read only the plans")

    monkeypatch.setattr(FileManager, "list", forbidden)
    monkeypatch.setattr(Plate, "files_for_well", forbidden)
    monkeypatch.setattr(MicroscopeHandler, "parse_path", forbidden)
    monkeypatch.setattr(MicroscopeHandler, "group_files", forbidden)
    worker_context = unpack_context(blob, new_filemanager(str(small_plate)))
    assert worker_context.plate is None
    result = run_well(worker_context)
    monkeypatch.undo()
    assert result.ok, result.failure
    # The dict names channel 1 only; the projection wrote one plane per (site, channel).
    finals = ["TimePoint_1/ZStep_1/A01_s1_w1.tif", "TimePoint_1/ZStep_1/A01_s2_w1.tif"]
    assert sorted(result.outputs) == finals + [f"steps/03_channel-1/{name}" for name in finals]
    plate = open_plate(small_plate)
    for site in ("1", "2"):
        files = sorted((x for x in plate.files_for_well("A01") if x.site == site and x.channel == "1"), key=lambda x: int(x.z_index))
        stack = np.stack([tifffile.imread(plate.root / x.path) for x in files])
        blurred = registry.get("numpy.gaussian_filter")(stack, sigma=1.0)
        expected = (blurred.max(axis=0) * 2 + 1).astype(np.float32)
        np.testing.assert_allclose(tifffile.imread(out / files[0].path), expected, rtol=1e-6)


def test_the_legacy_unpack_form_still_works(small_plate, tmp_path):
    context = compile_pipeline([FunctionStep(f.double)], small_plate, wells=["B02"], output_root=tmp_path / "out")["B02"]
    plate = open_plate(small_plate)
    unpacked = unpack_context(pack_context(context), plate, new_filemanager(plate))
    assert unpacked.plate is None and unpacked.filemanager.is_protected(small_plate)
    assert run_well(unpacked).ok
    with pytest.raises(TypeError, match="takes 2 arguments"):
        unpack_context(b"", 1, 2, 3)


def test_the_sample_runner_reads_only_the_plans(small_plate, monkeypatch):
    from plateflow.execution.sample import SampleRunner, SampleStepOutput
    from plateflow.plate import MicroscopeHandler, Plate

    runner = SampleRunner(small_plate)
    steps = [FunctionStep(f.measure_mean, variable_components=("z_index",)), FunctionStep(f.subtract_mean, variable_components=("z_index",))]
    prepared = runner.prepare(steps, "A01", "1")

    def forbidden(*args, **kwargs):
        raise AssertionError("the sample runner must read only the plans")

    monkeypatch.setattr(FileManager, "list", forbidden)
    monkeypatch.setattr(Plate, "files_for_well", forbidden)
    monkeypatch.setattr(MicroscopeHandler, "parse_path", forbidden)
    outputs = list(runner.execute(prepared))
    monkeypatch.undo()
    assert all(isinstance(o, SampleStepOutput) for o in outputs), outputs
    producer, consumer = outputs
    assert [image.path for image in consumer.images] == [image.path for image in producer.images]
    assert len(consumer.images) == 2 * 3  # site 1: two channels x three z planes
    assert {special.name for special in producer.specials} == {"mean_value"} and len(producer.specials) == 2  # one per channel


_MEMORY_SEEN: list[int] = []
_PROBED: list[FileManager] = []


@numpy_memory
def _project_and_count_memory(stack):
    _MEMORY_SEEN.append(len(_PROBED[0].backends["memory"]))
    return stack.max(axis=0, keepdims=True)


def test_a_step_frees_each_group_of_the_previous_steps_images_once_stacked(small_plate, tmp_path):
    steps = [
        FunctionStep((registry.get("numpy.gaussian_filter"), {"sigma": 1.0}), variable_components=("z_index",), name="blur"),
        FunctionStep(_project_and_count_memory, variable_components=("z_index",), name="project"),
        FunctionStep(f.add_one, variable_components=("site",), name="last"),
    ]
    context = compile_pipeline(steps, small_plate, wells=["A01"], output_root=tmp_path / "out")["A01"]
    filemanager = new_filemanager(str(small_plate))
    _PROBED[:] = [filemanager]
    _MEMORY_SEEN.clear()
    result = run_well(bind_context(context, filemanager=filemanager))
    assert result.ok, result.failure
    # blur left 12 planes (2 sites x 2 channels x 3 Z) in memory; each of the projection's 4 groups
    # takes its 3 and adds 1 plane: 12 - 3k blur planes and k - 1 projections when group k runs.
    assert _MEMORY_SEEN == [9, 7, 5, 3]
    assert len(filemanager.backends["memory"]) == 0  # and the well frees the rest when it ends
