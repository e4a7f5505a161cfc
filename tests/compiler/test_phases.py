"""The phases one by one, the frozen contexts, and valid pipelines that must give no error."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep, Pipeline, check
from plateflow._frozen import FrozenError
from plateflow.compiler import (
    PLAN_KEYS,
    Orchestrator,
    PipelineCompiler,
    ProcessingContext,
    StepPlan,
    assign_gpu_resources_for_context,
    compile_pipeline,
    declare_zarr_stores_for_context,
    initialize_step_plans_for_context,
    plan_materialization_flags_for_context,
    validate_memory_contracts_for_context,
)
from plateflow.config import GlobalConfig

from .functions import assemble, blur, count, find_positions, pad, project, scale, to_torch, torch_blur, torch_to_numpy

SEED_KEYS = (
    "step_name", "step_type", "well_id", "input_dir", "output_dir", "read_backend", "write_backend",
    "input_memory_type", "output_memory_type", "gpu_id", "func", "special_inputs", "special_outputs",
    "zarr_config", "force_disk_output", "visualize",
)


def run_phase_1(steps, plate, **config):
    orchestrator = Orchestrator(plate=plate, global_config=GlobalConfig(**config), output_root="/out")
    context = ProcessingContext(orchestrator.global_config, "A01")
    resolved, state_map = initialize_step_plans_for_context(context, steps, orchestrator)
    return context, orchestrator, resolved, state_map


def test_phase_1_paths_and_special_links(plate):
    steps = [FunctionStep(func=find_positions, name="Find"), FunctionStep(func=blur, name="Blur"), FunctionStep(func=assemble, name="Assemble")]
    context, _, resolved, state_map = run_phase_1(steps, plate)
    assert resolved == steps and list(state_map) == [s.step_id for s in steps]
    find, blur_plan, assemble_plan = context.plans()
    assert find["input_dir"] == str(plate.root) and find.reads_plate
    assert find["output_dir"] == "/out/steps/01_find"
    assert blur_plan["input_dir"] == "/out/steps/01_find" and not blur_plan.reads_plate
    assert assemble_plan["output_dir"] == "/out"
    produced = find["special_outputs"]["positions"]
    assert produced["path"] == "/out/special/A01/01_positions" and produced["backend"] == "memory"
    assert assemble_plan["special_inputs"]["positions"] == {"path": produced["path"], "backend": "memory"}
    assert blur_plan["special_inputs"] == {}


def test_phase_1_chain_breaker_sends_next_step_to_plate_input(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=project, variable_components=("z_index",)), FunctionStep(func=blur)]
    context, *_ = run_phase_1(steps, plate)
    first, breaker, after = context.plans()
    assert breaker.chain_breaker and not first.chain_breaker
    assert after["input_dir"] == str(plate.root) and after.reads_plate
    assert breaker["input_dir"] == first["output_dir"]


def test_phase_1_config_resolution_global_plate_step(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=blur, config={"float_output_dtype": "float64"})]
    orchestrator = Orchestrator(
        plate=plate,
        global_config=GlobalConfig(num_workers=3, intermediate_backend="memory"),
        plate_config={"intermediate_backend": "disk"},
        output_root="/out",
    )
    context = ProcessingContext(orchestrator.global_config, "A01")
    initialize_step_plans_for_context(context, steps, orchestrator)
    first, second = context.plans()
    assert first.config.intermediate_backend == "disk"  # plate wins over global
    assert first.config.num_workers == 3  # unset values inherit
    assert first.config.float_output_dtype == "float32"
    assert second.config.float_output_dtype == "float64"  # step wins
    assert second.config.intermediate_backend == "disk"


def test_phase_3_materialization(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=blur), FunctionStep(func=blur, force_disk_output=True), FunctionStep(func=blur), FunctionStep(func=blur)]
    context, orchestrator, resolved, _ = run_phase_1(steps, plate)
    declare_zarr_stores_for_context(context, resolved, orchestrator)
    plan_materialization_flags_for_context(context, resolved, orchestrator)
    backends = [(p["read_backend"], p["write_backend"]) for p in context.plans()]
    assert backends == [("disk", "memory"), ("memory", "memory"), ("memory", "disk"), ("disk", "memory"), ("memory", "disk")]


def test_phase_3_after_chain_breaker_reads_disk(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=project), FunctionStep(func=blur), FunctionStep(func=blur)]
    context, orchestrator, resolved, _ = run_phase_1(steps, plate)
    plan_materialization_flags_for_context(context, resolved, orchestrator)
    assert [p["read_backend"] for p in context.plans()] == ["disk", "memory", "disk", "memory"]


def test_phase_2_zarr_store_for_last_step(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=blur)]
    context, orchestrator, resolved, _ = run_phase_1(steps, plate, output_format="zarr")
    declare_zarr_stores_for_context(context, resolved, orchestrator)
    plan_materialization_flags_for_context(context, resolved, orchestrator)
    first, last = context.plans()
    assert first["zarr_config"] is None
    assert last["zarr_config"]["store_path"] == "/out/plate.zarr"
    assert last["zarr_config"]["wells"] == ("A01", "A02", "B01")
    assert last["zarr_config"]["channel_names"] == {"1": "DAPI", "2": "FITC"}
    assert last["write_backend"] == "zarr"


def test_phase_4_memory_types_conversions_and_visualizers(plate):
    steps = [
        FunctionStep(func=blur, visualize=True, name="Blur"),
        FunctionStep(func=[to_torch, torch_blur]),
        FunctionStep(func=torch_to_numpy, visualize=True, name="Back"),
        FunctionStep(func=(scale, {"factor": 2.0})),
    ]
    context, orchestrator, resolved, state_map = run_phase_1(steps, plate)
    plan_materialization_flags_for_context(context, resolved, orchestrator)
    validate_memory_contracts_for_context(context, resolved, orchestrator, step_state_map=state_map)
    plans = context.plans()
    assert [(p["input_memory_type"], p["output_memory_type"]) for p in plans] == [
        ("numpy", "numpy"), ("numpy", "torch"), ("torch", "numpy"), ("numpy", "numpy"),
    ]
    # Planes arrive as numpy from disk and in the previous step's type from memory: no conversion here.
    assert [(p.input_conversion, p.output_conversion) for p in plans] == [(None, None)] * 4
    assert [v.step_name for v in context.required_visualizers] == ["Blur", "Back"]
    assert plans[1]["func"].kind == "chain" and [c.name for c in plans[1]["func"].calls()][-1].endswith("torch_blur")
    assert plans[3]["func"].chains[None][0].kwargs == {"factor": 2.0}


def test_phase_4_plans_the_conversions_around_disk(plate):
    steps = [
        FunctionStep(func=torch_blur, name="Torch first"),
        FunctionStep(func=[torch_blur], force_disk_output=True, name="Saved torch"),
        FunctionStep(func=[torch_blur, torch_to_numpy], name="Back"),
    ]
    context, orchestrator, resolved, state_map = run_phase_1(steps, plate)
    plan_materialization_flags_for_context(context, resolved, orchestrator)
    before = context.plans()
    validate_memory_contracts_for_context(context, resolved, orchestrator, step_state_map=state_map)
    plans = context.plans()
    # The plate is read as numpy; a saved torch step is stored as numpy and read back as numpy.
    assert [p.input_conversion for p in plans] == [("numpy", "torch"), None, ("numpy", "torch")]
    assert [p.output_conversion for p in plans] == [None, ("torch", "numpy"), None]
    # The phase made new plans and left the ones it was given as they were.
    assert all(old is not new for old, new in zip(before, plans))
    assert [p.input_memory_type for p in before] == [None, None, None] and before[0].input_conversion is None


def test_phase_5_cpu_fallback_for_torch(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=[to_torch, torch_blur, torch_to_numpy])]
    context, orchestrator, resolved, state_map = run_phase_1(steps, plate, gpu_ids=())
    validate_memory_contracts_for_context(context, resolved, orchestrator, step_state_map=state_map)
    assign_gpu_resources_for_context(context, resolved, orchestrator)
    assert [(p["gpu_id"], p.device) for p in context.plans()] == [(None, "cpu"), (None, "cpu")]
    assert not context.diagnostics.has_errors


def test_phase_5_balances_wells_over_gpus(plate, monkeypatch):
    import plateflow.memory.devices as devices
    from plateflow.memory.devices import LibraryStatus

    status = LibraryStatus(installed=True, devices=("cuda:0", "cuda:1"), gpu_ids=(0, 1), runs_on_cpu=True, reason="", extra="torch")
    monkeypatch.setattr(devices, "library_status", lambda mt: status)
    steps = [FunctionStep(func=blur), FunctionStep(func=[to_torch, torch_blur, torch_to_numpy])]
    contexts = compile_pipeline(steps, plate)
    assignment = {well: [p["gpu_id"] for p in ctx.plans()] for well, ctx in contexts.items()}
    assert assignment == {"A01": [None, 0], "A02": [None, 1], "B01": [None, 0]}
    assert contexts["A02"].plans()[1].device == "cuda:1"
    # gpu_ids in the config restricts the choice.
    contexts = compile_pipeline(steps, plate, config=GlobalConfig(gpu_ids=(1,)))
    assert {w: c.plans()[1]["gpu_id"] for w, c in contexts.items()} == {"A01": 1, "A02": 1, "B01": 1}


def test_contexts_are_deeply_frozen(plate):
    steps = [FunctionStep(func=find_positions), FunctionStep(func=(pad, {"width": 2})), FunctionStep(func=assemble)]
    contexts = compile_pipeline(steps, plate)
    assert list(contexts) == ["A01", "A02", "B01"]
    context = contexts["A02"]
    plan = context.plans()[2]
    assert context.is_frozen() and plan.is_frozen
    with pytest.raises(FrozenError):
        context.well_id = "A03"
    with pytest.raises(FrozenError):
        context.step_plans["x"] = plan
    with pytest.raises(FrozenError):
        plan["read_backend"] = "disk"
    with pytest.raises(FrozenError):
        plan.output_dir = "/elsewhere"
    with pytest.raises(FrozenError):
        plan["special_inputs"]["positions"]["path"] = "/x"
    with pytest.raises(TypeError):
        plan["special_inputs"]["positions"] = {}
    with pytest.raises(TypeError):
        context.plans()[1]["func"].chains[None][0].kwargs["width"] = 3
    with pytest.raises(AttributeError):
        context.required_visualizers.append(None)
    with pytest.raises(AttributeError):
        context.step_order.append("x")


def test_plan_reads_as_mapping_with_the_seed_keys(plate):
    (context,) = compile_pipeline([FunctionStep(func=blur)], plate, wells=["B01"]).values()
    plan = context.plans()[0]
    assert isinstance(plan, StepPlan)
    assert set(SEED_KEYS) <= set(plan.keys()) and set(plan.keys()) == set(PLAN_KEYS)
    assert plan["well_id"] == "B01" and plan["step_type"] == "FunctionStep"
    assert (plan["read_backend"], plan["write_backend"]) == ("disk", "disk")
    assert dict(plan)["step_name"] == "blur"
    with pytest.raises(KeyError):
        plan["no_such_key"]


def test_per_step_checks_run_once_per_compile(plate, monkeypatch):
    import plateflow.compiler.phases as phases

    calls = []
    original = phases.check_step
    monkeypatch.setattr(phases, "check_step", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    compile_pipeline([FunctionStep(func=blur), FunctionStep(func=blur)], plate)
    assert calls == [0, 1]  # not once per well


VALID_PIPELINES = {
    "single": [FunctionStep(func=blur)],
    "tuple": [FunctionStep(func=(blur, {"sigma": 2.5, "mode": "reflect"}))],
    "chain": [FunctionStep(func=[blur, (scale, {"factor": 0.5}), (pad, {"mode": "reflect"})])],
    "dict": [FunctionStep(func={"1": blur, "2": [(scale, {"factor": 2}), blur]}, group_by="channel")],
    "int keys": [FunctionStep(func={1: blur, 2: blur}, group_by="channel")],
    "special io": [FunctionStep(func=find_positions), FunctionStep(func=blur), FunctionStep(func=assemble)],
    "torch round trip": [FunctionStep(func=[to_torch, (torch_blur, {"sigma": 2.0})]), FunctionStep(func=torch_to_numpy)],
    "projection + count": [FunctionStep(func=project, variable_components=("z_index",)), FunctionStep(func=count)],
    "variable z and channel": [FunctionStep(func=blur, variable_components=("z_index", "channel"))],
    "enum member": [FunctionStep(func=(pad, {"mode": __import__("tests.compiler.functions", fromlist=["Mode"]).Mode.REFLECT}))],
}


@pytest.mark.parametrize("name", list(VALID_PIPELINES))
def test_valid_pipelines_have_no_diagnostics(name, plate):
    pipeline = Pipeline(VALID_PIPELINES[name], name=name)
    assert check(pipeline) == [] or all(d.code == "uncovered-group-value" for d in check(pipeline))
    assert check(pipeline, plate) == []
    contexts = compile_pipeline(pipeline, plate)
    assert len(contexts) == 3


def test_compiler_exposes_the_phases_under_their_names():
    for name in (
        "initialize_step_plans_for_context",
        "declare_zarr_stores_for_context",
        "plan_materialization_flags_for_context",
        "validate_memory_contracts_for_context",
        "assign_gpu_resources_for_context",
    ):
        assert callable(getattr(PipelineCompiler, name))


def test_write_outputs_false_keeps_everything_in_memory(plate):
    steps = [FunctionStep(func=blur), FunctionStep(func=blur, force_disk_output=True), FunctionStep(func=blur)]
    contexts = compile_pipeline(steps, plate, config=GlobalConfig(write_outputs=False, output_format="zarr"))
    plans = contexts["A01"].plans()
    assert [(p["read_backend"], p["write_backend"]) for p in plans] == [("disk", "memory"), ("memory", "memory"), ("memory", "memory")]
    assert plans[-1]["zarr_config"] is None


def test_rebind_shares_frozen_plans_with_another_filemanager(plate):
    context = compile_pipeline([FunctionStep(func=blur)], plate, wells=["A01"])["A01"]
    marker = object()
    bound = context.rebind(filemanager=marker)
    assert bound.filemanager is marker and bound.plate is plate and bound.is_frozen()
    assert bound.step_plans is context.step_plans
    with pytest.raises(FrozenError):
        bound.well_id = "B01"


def test_plans_change_only_into_new_plans(plate):
    import dataclasses

    (context,) = compile_pipeline([FunctionStep(func=find_positions), FunctionStep(func=assemble)], plate, wells=["A01"]).values()
    plan = context.plans()[1]
    moved = plan.evolve(output_dir="/elsewhere", special_inputs={"positions": {"path": "/p", "backend": "memory"}})
    assert moved.output_dir == "/elsewhere" and plan.output_dir != "/elsewhere"
    assert moved.special_inputs["positions"]["path"] == "/p" and plan.special_inputs["positions"]["path"] != "/p"
    with pytest.raises(FrozenError):
        moved["special_inputs"]["positions"]["path"] = "/q"  # changed values are frozen too
    assert dataclasses.replace(plan, step_name="Renamed").step_name == "Renamed" and plan.step_name == "assemble"
    with pytest.raises(TypeError, match="'no_such_field' is not a plan field; plan fields are: step_name"):
        plan.evolve(no_such_field=1)
    with pytest.raises(FrozenError, match="plan.evolve"):
        del plan.output_dir


def test_special_sources_name_the_producing_groups(plate):
    steps = [FunctionStep(func={"1": find_positions, "2": blur}, group_by="channel", variable_components=("site", "z_index")), FunctionStep(func=assemble)]
    (context,) = compile_pipeline(steps, plate, wells=["A02"]).values()
    producer, consumer = context.plans()
    # Only channel 1's entry produces it: one value per (channel 1, timepoint) group of the producer.
    assert consumer.special_sources == {"positions": ((("channel", "1"), ("timepoint", "1")),)}
    assert [dict(g.fixed) for g in producer.groups] == [
        {"well": "A02", "channel": "1", "timepoint": "1"}, {"well": "A02", "channel": "2", "timepoint": "1"},
    ]
    assert len(producer.groups[0].files) == 2 * 3  # sites x z planes, in stack order
    assert [(f.site, f.z_index) for f in producer.groups[0].files] == [(s, z) for s in ("1", "2") for z in ("1", "2", "3")]
