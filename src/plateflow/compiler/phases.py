"""The five compiler phases. Each is a function of the context's plans (and the steps).

1. ``initialize_step_plans_for_context``: plans, paths, config resolution,
   special output -> input links, chain breakers.
2. ``declare_zarr_stores_for_context``: which steps write the OME-Zarr plate, and its layout.
3. ``plan_materialization_flags_for_context``: read/write backends per step.
4. ``validate_memory_contracts_for_context``: memory types, conversions between
   steps, the normalized pattern in ``plan["func"]``, the visualizers napari needs.
5. ``assign_gpu_resources_for_context``: a device per GPU step, balanced over GPUs.

Problems go to ``context.diagnostics`` (a :class:`DiagnosticSink`); phases never
raise on a user mistake.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .._frozen import freeze
from ..config import resolve_config
from ..memory.types import CPU_CAPABLE_GPU_TYPES, GPU_MEMORY_TYPES, MEMORY_TYPES, is_installed
from ..patterns import FunctionCall, NormalizedPattern
from ..steps import FunctionStep
from .context import ProcessingContext, VisualizerRequest
from .diagnostics import DiagnosticSink, did_you_mean
from .orchestrator import Orchestrator
from .plan import StepPlan
from .step_checks import StepState, check_step

__all__ = [
    "initialize_step_plans_for_context",
    "declare_zarr_stores_for_context",
    "plan_materialization_flags_for_context",
    "validate_memory_contracts_for_context",
    "assign_gpu_resources_for_context",
    "step_directory_name",
]


def _sink(context: ProcessingContext) -> DiagnosticSink:
    if context.diagnostics is None:
        context.diagnostics = DiagnosticSink()
    return context.diagnostics


def step_directory_name(index: int, name: str) -> str:
    """``"02_top-hat"``: a folder name for a step's intermediate output."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "step"
    return f"{index + 1:02d}_{slug}"


# -- phase 1 ---------------------------------------------------------------------


def initialize_step_plans_for_context(
    context: ProcessingContext,
    steps: Sequence[FunctionStep],
    orchestrator: Orchestrator,
    steps_already_resolved: bool = False,
) -> tuple[list[FunctionStep], dict[str, StepState]]:
    """Create a plan per step with paths, resolved config and special I/O links.

    With ``steps_already_resolved`` the per-step checks and config resolution of
    an earlier well (kept on the orchestrator) are reused: they do not depend on the well.
    """
    sink = _sink(context)
    context.plate = orchestrator.plate
    context.output_root = orchestrator.output_root
    cached = orchestrator.resolved_states if steps_already_resolved else None
    if cached is None:
        state_map = _resolve_steps(steps, orchestrator, sink)
        orchestrator.resolved_states = state_map
    else:
        state_map = cached
    resolved_steps = [state.step for state in state_map.values()]

    well = context.well_id or "_"
    out_root = orchestrator.output_root.rstrip("/") or "."
    previous: StepPlan | None = None
    previous_breaks_chain = False
    last = len(resolved_steps) - 1
    for step_id, state in state_map.items():
        step = state.step
        reads_plate = previous is None or previous_breaks_chain
        output_dir = out_root if state.index == last else f"{out_root}/steps/{step_directory_name(state.index, step.name)}"
        plan = StepPlan(
            step_name=step.name,
            step_type=type(step).__name__,
            well_id=context.well_id,
            input_dir=orchestrator.input_root if reads_plate else previous.output_dir,  # type: ignore[union-attr]
            output_dir=output_dir,
            force_disk_output=step.force_disk_output,
            visualize=step.visualize,
            step_index=state.index,
            step_id=step_id,
            variable_components=tuple(step.variable_components),
            group_by=step.group_by,
            chain_breaker=state.chain_breaker,
            reads_plate=reads_plate,
            config=state.config,
        )
        plan.special_outputs = {
            name: {
                "path": f"{out_root}/special/{well}/{step_directory_name(state.index, name)}",
                "backend": "memory",
                "materialize": name in state.materialized,
            }
            for name in state.produces
        }
        context.step_plans[step_id] = plan
        context.step_order.append(step_id)
        previous, previous_breaks_chain = plan, state.chain_breaker

    _link_special_io(context, state_map, sink, report=cached is None)
    return resolved_steps, state_map


def _resolve_steps(steps: Sequence[FunctionStep], orchestrator: Orchestrator, sink: DiagnosticSink) -> dict[str, StepState]:
    state_map: dict[str, StepState] = {}
    if not steps:
        sink.add("empty-pipeline", None, "", "", "the pipeline has no steps", "add a FunctionStep")
    for index, step in enumerate(steps):
        if not isinstance(step, FunctionStep):
            sink.add("not-a-step", index, getattr(step, "name", type(step).__name__), "", f"item {index + 1} is a {type(step).__name__}, not a FunctionStep", "wrap it: FunctionStep(func=...)")
            continue
        if step.step_id in state_map:
            sink.add("duplicate-step", index, step.name, "", f"this step object already appears as step {state_map[step.step_id].index + 1}", "use step.copy() to add it twice")
            continue
        state = check_step(step, index, sink, orchestrator.components)
        try:
            state.config = resolve_config(orchestrator.global_config, orchestrator.plate_config, step.config)
        except (ValueError, TypeError) as error:
            sink.add("invalid-config", index, step.name, "config", str(error), "fix the step's config overrides")
        state_map[step.step_id] = state
    return state_map


def _link_special_io(context: ProcessingContext, state_map: dict[str, StepState], sink: DiagnosticSink, *, report: bool) -> None:
    producers: dict[str, StepState] = {}
    for state in state_map.values():
        for name in state.produces:
            if name in producers:
                if report:
                    first = producers[name]
                    sink.add(
                        "special-output-duplicate",
                        state.index,
                        state.step.name,
                        f"special_outputs.{name}",
                        f"{name!r} is already produced by step {first.index + 1} {first.step.name!r}",
                        "rename one of the outputs, or remove one of the producing steps",
                    )
                continue
            producers[name] = state
    consumed: set[str] = set()
    for state in state_map.values():
        plan = context.step_plans[state.step.step_id]
        links = {}
        for name in state.consumes:
            producer = producers.get(name)
            if producer is not None and producer.index < state.index:
                consumed.add(name)
                links[name] = dict(context.step_plans[producer.step.step_id].special_outputs[name])
                links[name].pop("materialize", None)
                continue
            if not report:
                continue
            field = f"special_inputs.{name}"
            if producer is not None:
                sink.add(
                    "special-input-later",
                    state.index,
                    state.step.name,
                    field,
                    f"{name!r} is produced only by a later step",
                    f"step {producer.index + 1} {producer.step.name!r} produces {name!r} but runs after this step; move it before step {state.index + 1}",
                )
            else:
                earlier = [n for n, p in producers.items() if p.index < state.index]
                hint = did_you_mean(name, earlier) or f"add a step before this one whose function has @special_outputs({name!r})"
                sink.add("special-input-missing", state.index, state.step.name, field, f"no step produces {name!r}", hint)
        plan.special_inputs = links
    if report:
        for name, producer in producers.items():
            if name not in consumed and name not in producer.materialized:
                sink.add(
                    "special-output-unused",
                    producer.index,
                    producer.step.name,
                    f"special_outputs.{name}",
                    f"{name!r} is produced but no later step uses it",
                    f"add a step with @special_inputs({name!r}) after this one, or ignore this if it is not needed",
                )


# -- phase 2 ---------------------------------------------------------------------


def declare_zarr_stores_for_context(context: ProcessingContext, steps: Sequence[FunctionStep], orchestrator: Orchestrator) -> None:
    """Give the last step the OME-Zarr store it writes when the output format is zarr."""
    plans = context.plans()
    if not plans:
        return
    last = plans[-1]
    if last.config.output_format != "zarr" or not last.config.write_outputs:
        return
    plate = orchestrator.plate
    name = plate.root.name if plate is not None else "plate"
    components = plate.components if plate is not None else {}
    last.zarr_config = {
        "store_path": f"{orchestrator.output_root.rstrip('/') or '.'}/{name}.zarr",
        "plate_name": name,
        "wells": tuple(plate.wells) if plate is not None else (),
        "sites": tuple(components.get("site", ())),
        "channels": tuple(components.get("channel", ())),
        "channel_names": dict(getattr(plate, "channel_names", {}) or {}) if plate is not None else {},
        "timepoints": tuple(components.get("timepoint", ())),
        "pixel_size": getattr(plate, "pixel_size", None) if plate is not None else None,
        "compressor": last.config.zarr_compressor,
    }


# -- phase 3 ---------------------------------------------------------------------


def plan_materialization_flags_for_context(context: ProcessingContext, steps: Sequence[FunctionStep], orchestrator: Orchestrator) -> None:
    """First step reads disk, last step writes disk (or zarr), the middle stays in memory unless forced.

    With ``write_outputs=False`` in the config every step writes memory: nothing reaches the disk.
    """
    plans = context.plans()
    for position, plan in enumerate(plans):
        if not plan.config.write_outputs:
            plan.write_backend = "memory"
        elif position == len(plans) - 1:
            plan.write_backend = "zarr" if plan.zarr_config else "disk"
        elif plan.force_disk_output:
            plan.write_backend = "disk"
        else:
            plan.write_backend = plan.config.intermediate_backend
        plan.read_backend = "disk" if plan.reads_plate else plans[position - 1].write_backend


# -- phase 4 ---------------------------------------------------------------------


def _frozen_pattern(pattern: NormalizedPattern) -> NormalizedPattern:
    chains = {
        key: tuple(FunctionCall(call.func, freeze(dict(call.kwargs)), call.place) for call in chain)
        for key, chain in pattern.chains.items()
    }
    return NormalizedPattern(pattern.kind, freeze(chains))


def validate_memory_contracts_for_context(
    context: ProcessingContext,
    steps: Sequence[FunctionStep],
    orchestrator: Orchestrator | None = None,
    *,
    step_state_map: dict[str, StepState],
) -> None:
    """Store memory types, the conversion each step's input needs, and the normalized pattern.

    The per-function checks ran in phase 1 (once per compile); here the results
    reach the plans: ``input_arrives_as`` is the memory type the data has when the
    step loads it (numpy from disk, the previous step's type from memory).
    """
    visualizers: list[VisualizerRequest] = []
    previous: StepPlan | None = None
    for plan in context.plans():
        state = step_state_map[plan.step_id]
        if state.pattern is not None:
            plan.func = _frozen_pattern(state.pattern)
        plan.input_memory_type = state.input_memory_type
        plan.output_memory_type = state.output_memory_type
        if plan.read_backend == "memory" and previous is not None:
            plan.input_arrives_as = previous.output_memory_type
        else:
            plan.input_arrives_as = "numpy"
        if plan.visualize:
            visualizers.append(VisualizerRequest(plan.step_index, plan.step_id, plan.step_name))
        previous = plan
    context.required_visualizers = visualizers


# -- phase 5 ---------------------------------------------------------------------


def _memory_types_of(plan: StepPlan) -> list[str]:
    types: list[str] = []
    if plan.func is not None:
        for call in plan.func.calls():
            for attribute in ("input_memory_type", "output_memory_type"):
                value = getattr(call.func, attribute, None)
                if value in MEMORY_TYPES and value not in types:
                    types.append(value)
    return types


def assign_gpu_resources_for_context(context: ProcessingContext, steps: Sequence[FunctionStep] = (), orchestrator: Orchestrator | None = None) -> None:
    """Give GPU steps a device: the GPUs found, balanced by well; CPU where the library allows.

    All GPU steps of one well share its device, so arrays move between steps
    without crossing devices.
    """
    from ..memory.devices import library_status

    sink = _sink(context)
    for plan in context.plans():
        gpu_types = [t for t in _memory_types_of(plan) if t in GPU_MEMORY_TYPES and is_installed(t)]
        plan.gpu_id, plan.device = None, "cpu"
        for memory_type in gpu_types:
            status = library_status(memory_type)
            wanted = plan.config.gpu_ids
            gpus = [g for g in status.gpu_ids if wanted is None or g in wanted]
            if gpus:
                gpu = gpus[context.well_index % len(gpus)]
                plan.gpu_id = gpu
                plan.device = f"cuda:{gpu}" if memory_type != "pyclesperanto" else f"opencl:{gpu}"
                continue
            if memory_type in CPU_CAPABLE_GPU_TYPES and status.runs_on_cpu:
                continue  # the library runs on the CPU here; the plan says "cpu"
            field = _first_field_of_type(plan, memory_type)
            fix = (
                "use the numpy version of this function (or the torch one, which runs on CPU), or run on a machine with a CUDA GPU"
                if memory_type == "cupy"
                else status.reason or f"{memory_type} found no device to run on"
            )
            sink.add(
                "no-gpu-device",
                plan.step_index,
                plan.step_name,
                field,
                f"{memory_type} needs a device and none was found" + (f" ({status.reason})" if status.reason and memory_type == "cupy" else ""),
                fix,
            )


def _first_field_of_type(plan: StepPlan, memory_type: str) -> str:
    if plan.func is not None:
        for call in plan.func.calls():
            if memory_type in (getattr(call.func, "input_memory_type", None), getattr(call.func, "output_memory_type", None)):
                return call.field
    return "func"


