"""The five compiler phases: each is a function from frozen plans to new frozen plans.

The pure phases (what the compiler runs):

0. :func:`resolve_pipeline` (once per compile, not per well): the per-step
   checks, config resolution global -> plate -> step, special output -> input
   links and their diagnostics. The result is held by the compile call.
1. :func:`plan_steps`: a plan per step for one well: paths, pattern groups with
   their input and output paths, special I/O paths, chain breakers.
2. :func:`declare_zarr_stores`: which steps write the OME-Zarr plate, and its layout.
3. :func:`plan_materialization_flags`: read/write backends per step.
4. :func:`validate_memory_contracts`: memory types, the conversions planned in
   front of and after each step, the normalized pattern in ``plan["func"]``, and
   the visualizers napari needs.
5. :func:`assign_gpu_resources`: a device per GPU step, balanced over GPUs.

None of them changes what it is given: they return new plans
(``StepPlan.evolve``, a fast ``dataclasses.replace``). The seed's phase functions, which take a
``ProcessingContext``, are thin adapters over these that put the new plans into
the (not yet frozen) context. Problems go to a :class:`DiagnosticSink`; phases
never raise on a user mistake.
"""

from __future__ import annotations

import re
import weakref
from functools import lru_cache
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._frozen import FrozenDict, freeze
from ..config import resolve_config
from ..memory.types import CPU_CAPABLE_GPU_TYPES, GPU_MEMORY_TYPES, MEMORY_TYPES, is_installed
from ..patterns import FunctionCall, NormalizedPattern
from ..special_io import get_special_inputs, get_special_outputs
from ..steps import FunctionStep
from .context import ProcessingContext, VisualizerRequest
from .diagnostics import DiagnosticSink, did_you_mean
from .orchestrator import Orchestrator
from .plan import PlannedGroup, StepPlan
from .step_checks import StepState, check_step

__all__ = [
    "ResolvedPipeline",
    "resolve_pipeline",
    "plan_steps",
    "declare_zarr_stores",
    "plan_materialization_flags",
    "validate_memory_contracts",
    "assign_gpu_resources",
    "initialize_step_plans_for_context",
    "declare_zarr_stores_for_context",
    "plan_materialization_flags_for_context",
    "validate_memory_contracts_for_context",
    "assign_gpu_resources_for_context",
    "step_directory_name",
]

Plans = tuple[StepPlan, ...]
_EMPTY: Mapping[str, Any] = FrozenDict()


def _sink(context: ProcessingContext) -> DiagnosticSink:
    if context.diagnostics is None:
        context.diagnostics = DiagnosticSink()
    return context.diagnostics


@lru_cache(maxsize=4096)  # called for every step of every well with the same few names
def step_directory_name(index: int, name: str) -> str:
    """``"02_top-hat"``: a folder name for a step's intermediate output."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "step"
    return f"{index + 1:02d}_{slug}"


# -- phase 0: once per compile -----------------------------------------------------


@dataclass(frozen=True)
class ResolvedPipeline:
    """The well-independent part of a compile: per-step checks, resolved config, special links.

    Attributes:
        states: step id -> what the per-step checks found (pipeline order).
        patterns: step id -> the step's normalized pattern, deeply frozen (``None`` if malformed).
        links: consumer step id -> ((special input name, producer step id), ...).
        plate_image: ((Y, X), dtype name) of the plate's images, or ``None``.
        memo: the compile's cache of well groupings.
    """

    states: Mapping[str, StepState]
    patterns: Mapping[str, NormalizedPattern | None]
    links: Mapping[str, tuple[tuple[str, str], ...]]
    plate_image: tuple[tuple[int, ...], str] | None = None
    #: groupings worked out for this compile's wells (see ``_well_groups``); gone with the compile
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def steps(self) -> list[FunctionStep]:
        return [state.step for state in self.states.values()]


def resolve_pipeline(steps: Sequence[Any], orchestrator: Orchestrator, sink: DiagnosticSink) -> ResolvedPipeline:
    """Check every step once and link special outputs to inputs; diagnostics go to ``sink``."""
    states = _resolve_steps(steps, orchestrator, sink)
    links = _link_special_io(states, sink)
    patterns = {step_id: _frozen_pattern(state.pattern) if state.pattern is not None else None for step_id, state in states.items()}
    return ResolvedPipeline(FrozenDict(states), FrozenDict(patterns), FrozenDict(links), _plate_image(orchestrator.plate))


def _plate_image(plate: Any) -> tuple[tuple[int, ...], str] | None:
    """The plate's (Y, X) and dtype name, or ``None`` when its header cannot be read."""
    if plate is None:
        return None
    from ..plate import PlateError  # compiler > plate: a downward import

    try:
        return tuple(int(n) for n in plate.image_shape), str(plate.dtype)
    except (PlateError, AttributeError, TypeError, ValueError):
        return None  # no readable header: a stack is compared with itself at run time


def _resolve_steps(steps: Sequence[Any], orchestrator: Orchestrator, sink: DiagnosticSink) -> dict[str, StepState]:
    state_map: dict[str, StepState] = {}
    previous_state: StepState | None = None
    if not steps:
        sink.add("empty-pipeline", None, "", "", "the pipeline has no steps", "add a FunctionStep")
    for index, step in enumerate(steps):
        if not isinstance(step, FunctionStep):
            sink.add("not-a-step", index, getattr(step, "name", type(step).__name__), "", f"item {index + 1} is a {type(step).__name__}, not a FunctionStep", "wrap it: FunctionStep(func=...)")
            continue
        if step.step_id in state_map:
            sink.add("duplicate-step", index, step.name, "", f"this step object already appears as step {state_map[step.step_id].index + 1}", "use step.copy() to add it twice")
            continue
        state = check_step(step, index, sink, orchestrator.components, previous=previous_state)
        previous_state = state  # tells the next step its stack sizes after projections
        try:
            state.config = resolve_config(orchestrator.global_config, orchestrator.plate_config, step.config)
        except (ValueError, TypeError) as error:
            sink.add("invalid-config", index, step.name, "config", str(error), "fix the step's config overrides", path=("config",))
        state_map[step.step_id] = state
    return state_map


def _chain_specials(pattern: NormalizedPattern | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names the pattern needs from earlier steps, names it consumes inside one of its own chains)."""
    if pattern is None:
        return (), ()
    external: list[str] = []
    internal: list[str] = []
    for chain in pattern.chains.values():
        made: set[str] = set()
        for call in chain:
            for name in get_special_inputs(call.func):
                target = internal if name in made else external
                if name not in target:
                    target.append(name)
            made.update(get_special_outputs(call.func))
    return tuple(external), tuple(internal)


def _link_special_io(state_map: Mapping[str, StepState], sink: DiagnosticSink) -> dict[str, tuple[tuple[str, str], ...]]:
    producers: dict[str, StepState] = {}
    for state in state_map.values():
        for name in state.produces:
            if name in producers:
                first = producers[name]
                sink.add(
                    "special-output-duplicate",
                    state.index,
                    state.step.name,
                    "",
                    f"{name!r} is already produced by step {first.index + 1} {first.step.name!r}",
                    "rename one of the outputs, or remove one of the producing steps",
                    path=("special_outputs", name),
                )
                continue
            producers[name] = state
    consumed: set[tuple[str, str]] = set()  # (name, producer step id)
    links: dict[str, tuple[tuple[str, str], ...]] = {}
    for step_id, state in state_map.items():
        external, internal = _chain_specials(state.pattern)
        consumed.update((name, step_id) for name in internal)
        found: list[tuple[str, str]] = []
        for name in external:
            producer = producers.get(name)
            if producer is state:
                continue  # made later in this step's own chain: step_checks reports it with a chain hint
            if producer is not None and producer.index < state.index:
                consumed.add((name, producer.step.step_id))
                found.append((name, producer.step.step_id))
                continue
            field_path = ("special_inputs", name)
            if producer is not None:
                sink.add(
                    "special-input-later",
                    state.index,
                    state.step.name,
                    "",
                    f"{name!r} is produced only by a later step",
                    f"step {producer.index + 1} {producer.step.name!r} produces {name!r} but runs after this step; move it before step {state.index + 1}",
                    path=field_path,
                )
            else:
                earlier = [n for n, p in producers.items() if p.index < state.index]
                hint = did_you_mean(name, earlier) or f"add a step before this one whose function has @special_outputs({name!r})"
                sink.add("special-input-missing", state.index, state.step.name, "", f"no step produces {name!r}", hint, path=field_path)
        links[step_id] = tuple(found)
    for name, producer in producers.items():
        if (name, producer.step.step_id) not in consumed and name not in producer.materialized:
            sink.add(
                "special-output-unused",
                producer.index,
                producer.step.name,
                "",
                f"{name!r} is produced but no later step uses it",
                f"add a step with @special_inputs({name!r}) after this one, or ignore this if it is not needed",
                path=("special_outputs", name),
            )
    return links


def _frozen_pattern(pattern: NormalizedPattern) -> NormalizedPattern:
    chains = {
        key: tuple(FunctionCall(call.func, freeze(dict(call.kwargs)), call.place, call.path) for call in chain)
        for key, chain in pattern.chains.items()
    }
    return NormalizedPattern(pattern.kind, freeze(chains))


# -- phase 1 ---------------------------------------------------------------------


def _well_groups(files: Sequence[Any], well: str, variable: tuple[str, ...], group_by: str | None, memo: dict[Any, Any]) -> tuple[PlannedGroup, ...]:
    """The well's images grouped into stacks, as ``plate.model.group_files`` groups them.

    Wells of one plate nearly always hold the same component values, so the
    grouping (as positions in the well's file list) is worked out once per
    compile for each layout and reused; ``memo`` is the compile's. Steps of the
    well with the same components share the result.
    """
    per_well = memo.setdefault(("well", well), {})
    found = per_well.get((variable, group_by))
    if found is not None:
        return found
    layout = tuple([(f.site, f.channel, f.z_index, f.timepoint) for f in files])
    template = memo.get((variable, group_by, layout))
    if template is None:
        from ..plate.model import group_files  # compiler > plate: a downward import

        try:
            groups = group_files(files, variable, group_by)
        except ValueError:
            groups = []  # bad components: the per-step checks report them
        position = {id(f): i for i, f in enumerate(files)}
        template = [
            (tuple((k, v) for k, v in group.fixed.items() if k != "well"), tuple(position[id(f)] for f in group.files))
            for group in groups
        ]
        memo[(variable, group_by, layout)] = template
    made = []
    for rest, positions in template:
        fixed = FrozenDict({"well": well, **dict(rest)})
        made.append(PlannedGroup(well, fixed, fixed.get(group_by) if group_by is not None else None, tuple([files[i] for i in positions])))
    found = per_well[(variable, group_by)] = tuple(made)
    return found


_Sources = tuple[tuple[tuple[str, str], ...], ...]  # the fixed components (well left out) of each producing group


def _producing_groups(groups: Sequence[PlannedGroup], pattern: NormalizedPattern | None, names: Sequence[str]) -> dict[str, _Sources]:
    """For each special output, the groups whose chain saves it (a dict pattern's entries differ)."""
    if pattern is None:
        return {}
    found: dict[str, list[tuple[tuple[str, str], ...]]] = {name: [] for name in names}
    for group in groups:
        if pattern.is_dict and group.group_key not in pattern.chains:
            continue
        made = {out for call in pattern.chain_for(group.group_key) for out in get_special_outputs(call.func)}
        fixed = tuple((k, v) for k, v in group.fixed.items() if k != "well")
        for name in names:
            if name in made:
                found[name].append(fixed)
    return {name: tuple(values) for name, values in found.items()}


def plan_steps(resolved: ResolvedPipeline, orchestrator: Orchestrator, well_id: str | None, *, memo: dict[Any, Any] | None = None) -> Plans:
    """Phase 1 for one well: a new plan per step with paths, groups, resolved config and special I/O paths.

    Every step's groups come from the well's plate images: a step's outputs keep
    its inputs' relative paths, so the images a step can read are always among
    the plate's. A step reads the planes its predecessor's plan names.
    ``memo`` caches groupings for the wells of one compile (``resolved.memo`` by default).
    """
    plate = orchestrator.plate
    files = plate.files_for_well(well_id) if plate is not None and well_id is not None and well_id in plate.wells else ()
    memo = resolved.memo if memo is None else memo
    well = well_id or "_"
    out_root = orchestrator.output_root.rstrip("/") or "."
    input_root = orchestrator.input_root
    states = list(resolved.states.items())
    last = len(states) - 1
    plans: list[StepPlan] = []
    special_paths: dict[tuple[str, str], Mapping[str, Any]] = {}  # (producer step id, name) -> its output spec
    producer_groups: dict[str, dict[str, _Sources]] = {}  # step id -> output name -> the groups that save it
    previous: StepPlan | None = None
    for position, (step_id, state) in enumerate(states):
        step = state.step
        reads_plate = previous is None or previous.chain_breaker
        output_dir = out_root if position == last else f"{out_root}/steps/{step_directory_name(state.index, step.name)}"
        input_dir = input_root if reads_plate or previous is None else previous.output_dir
        outputs = _EMPTY
        if state.produces:
            outputs = freeze({
                name: {
                    "path": f"{out_root}/special/{well}/{step_directory_name(state.index, name)}",
                    "backend": "memory",
                    "materialize": name in state.materialized,
                }
                for name in state.produces
            })
            for name, spec in outputs.items():
                special_paths[(step_id, name)] = spec
        links = resolved.links.get(step_id, ())
        inputs = sources = _EMPTY
        if links:
            linked = [(name, producer) for name, producer in links if (producer, name) in special_paths]
            inputs = freeze({
                name: {"path": special_paths[(producer, name)]["path"], "backend": special_paths[(producer, name)]["backend"]}
                for name, producer in linked
            })
            sources = FrozenDict({name: producer_groups[producer].get(name, ()) for name, producer in linked})
        variable = tuple(step.variable_components)
        groups = _well_groups(files, well, variable, step.group_by, memo) if files and state.components_ok else ()
        pattern = resolved.patterns.get(step_id)
        if state.produces:
            producer_groups[step_id] = _producing_groups(groups, pattern, state.produces)
        template_key = ("template", step_id, input_dir, output_dir)
        template = memo.get(template_key)
        if template is None:  # what does not depend on the well, made once per compile
            template = memo[template_key] = StepPlan(
                step_name=step.name,
                step_type=type(step).__name__,
                well_id=None,
                input_dir=input_dir,
                output_dir=output_dir,
                force_disk_output=step.force_disk_output,
                visualize=step.visualize,
                step_index=state.index,
                step_id=step_id,
                variable_components=variable,
                group_by=step.group_by,
                chain_breaker=state.chain_breaker,
                reads_plate=reads_plate,
                plate_image=resolved.plate_image if reads_plate else None,
                config=state.config,
            )
        plan = template.evolve(well_id=well_id, special_inputs=inputs, special_outputs=outputs, special_sources=sources, groups=groups)
        plans.append(plan)
        previous = plan
    return tuple(plans)


# -- phase 2 ---------------------------------------------------------------------


def declare_zarr_stores(plans: Plans, orchestrator: Orchestrator) -> Plans:
    """A new last plan carrying the OME-Zarr store it writes, when the output format is zarr."""
    if not plans:
        return plans
    last = plans[-1]
    if last.config.output_format != "zarr" or not last.config.write_outputs:
        return plans
    plate = orchestrator.plate
    name = plate.root.name if plate is not None else "plate"
    components = plate.components if plate is not None else {}
    zarr_config = {
        "store_path": f"{orchestrator.output_root.rstrip('/') or '.'}/{name}.zarr",
        "plate_name": name,
        "wells": tuple(plate.wells) if plate is not None else (),
        "sites": tuple(components.get("site", ())),
        "channels": tuple(components.get("channel", ())),
        "channel_names": dict(getattr(plate, "channel_names", {}) or {}) if plate is not None else {},
        "timepoints": tuple(components.get("timepoint", ())),
        "pixel_size": getattr(plate, "pixel_size", None) if plate is not None else None,
        "compressor": last.config.zarr_compressor,
        "microscope": plate.format_name if plate is not None else None,
    }
    return (*plans[:-1], last.evolve(zarr_config=freeze(zarr_config)))


# -- phase 3 ---------------------------------------------------------------------


def plan_materialization_flags(plans: Plans) -> Plans:
    """New plans with their backends: first step reads disk, last step writes disk (or zarr), the middle memory unless forced.

    With ``write_outputs=False`` in the config every step writes memory: nothing reaches the disk.
    """
    result: list[StepPlan] = []
    for position, plan in enumerate(plans):
        if not plan.config.write_outputs:
            write = "memory"
        elif position == len(plans) - 1:
            write = "zarr" if plan.zarr_config else "disk"
        elif plan.force_disk_output:
            write = "disk"
        else:
            write = plan.config.intermediate_backend
        read = "disk" if plan.reads_plate or position == 0 else result[position - 1].write_backend
        result.append(plan.evolve(read_backend=read, write_backend=write))
    return tuple(result)


# -- phase 4 ---------------------------------------------------------------------


def _stored_type(plan: StepPlan) -> str | None:
    """The memory type a step's planes are saved in: numpy on disk and in zarr, its output type in memory."""
    return "numpy" if plan.write_backend in ("disk", "zarr") else plan.output_memory_type


def validate_memory_contracts(plans: Plans, resolved: ResolvedPipeline) -> tuple[Plans, tuple[VisualizerRequest, ...]]:
    """New plans with memory types, the planned conversions and the normalized pattern; and the visualizers.

    The per-function checks ran once per compile (:func:`resolve_pipeline`);
    here their results reach the plans. ``input_conversion`` is (the type the
    planes arrive in, the function's input type): numpy from disk, the previous
    step's output type from memory. ``output_conversion`` is (the function's
    output type, the type the planes are stored in).
    """
    visualizers: list[VisualizerRequest] = []
    result: list[StepPlan] = []
    previous: StepPlan | None = None
    for plan in plans:
        state = resolved.states[plan.step_id]
        input_type, output_type = state.input_memory_type, state.output_memory_type
        if plan.read_backend == "memory" and previous is not None:
            arrives = _stored_type(previous)
        else:
            arrives = "numpy"
        stored = "numpy" if plan.write_backend in ("disk", "zarr") else output_type
        new = plan.evolve(
            func=resolved.patterns.get(plan.step_id),
            input_memory_type=input_type,
            output_memory_type=output_type,
            input_conversion=(arrives, input_type) if arrives and input_type and arrives != input_type else None,
            output_conversion=(output_type, stored) if output_type and stored and output_type != stored else None,
        )
        if new.visualize:
            visualizers.append(VisualizerRequest(new.step_index, new.step_id, new.step_name))
        result.append(new)
        previous = new
    return tuple(result), tuple(visualizers)


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


def assign_gpu_resources(plans: Plans, *, well_index: int, sink: DiagnosticSink) -> Plans:
    """New plans with a device: the GPUs found, balanced by well; CPU where the library allows.

    All GPU steps of one well share its device, so arrays move between steps
    without crossing devices.
    """
    from ..memory.devices import library_status

    result: list[StepPlan] = []
    for plan in plans:
        gpu_types = [t for t in _memory_types_of(plan) if t in GPU_MEMORY_TYPES and is_installed(t)]
        gpu_id: int | None = None
        device = "cpu"
        for memory_type in gpu_types:
            status = library_status(memory_type)
            wanted = plan.config.gpu_ids
            gpus = [g for g in status.gpu_ids if wanted is None or g in wanted]
            if gpus:
                gpu_id = gpus[well_index % len(gpus)]
                device = f"cuda:{gpu_id}" if memory_type != "pyclesperanto" else f"opencl:{gpu_id}"
                continue
            if memory_type in CPU_CAPABLE_GPU_TYPES and status.runs_on_cpu:
                continue  # the library runs on the CPU here; the plan says "cpu"
            fix = (
                "use the numpy version of this function (or the torch one, which runs on CPU), or run on a machine with a CUDA GPU"
                if memory_type == "cupy"
                else status.reason or f"{memory_type} found no device to run on"
            )
            sink.add(
                "no-gpu-device",
                plan.step_index,
                plan.step_name,
                "",
                f"{memory_type} needs a device and none was found" + (f" ({status.reason})" if status.reason and memory_type == "cupy" else ""),
                fix,
                path=_first_path_of_type(plan, memory_type),
            )
        result.append(plan if (plan.gpu_id, plan.device) == (gpu_id, device) else plan.evolve(gpu_id=gpu_id, device=device))
    return tuple(result)


def _first_path_of_type(plan: StepPlan, memory_type: str) -> tuple[str | int, ...]:
    if plan.func is not None:
        for call in plan.func.calls():
            if memory_type in (getattr(call.func, "input_memory_type", None), getattr(call.func, "output_memory_type", None)):
                return tuple(call.path) or ("func",)
    return ("func",)


# -- the seed's phase functions: thin adapters over the pure phases ---------------------


def _put(context: ProcessingContext, plans: Plans) -> None:
    """Hand the new plans to the (not yet frozen) context; the old plans are left as they were."""
    context.step_plans = {plan.step_id: plan for plan in plans}
    context.step_order = [plan.step_id for plan in plans]


# What phase 1 resolved for a context, for the later adapters called on the same context. Kept
# beside the context (not in it, not on the orchestrator) and gone with it.
_RESOLVED: "weakref.WeakKeyDictionary[ProcessingContext, ResolvedPipeline]" = weakref.WeakKeyDictionary()


def _resolved_of(context: ProcessingContext) -> ResolvedPipeline | None:
    return _RESOLVED.get(context)


def initialize_step_plans_for_context(
    context: ProcessingContext,
    steps: Sequence[FunctionStep],
    orchestrator: Orchestrator,
    steps_already_resolved: bool = False,
) -> tuple[list[FunctionStep], dict[str, StepState]]:
    """Phase 1 on a context: plans with paths, resolved config and special I/O links.

    With ``steps_already_resolved`` the steps were checked before (for another
    well of the same compile): their findings are not reported again.
    """
    sink = DiagnosticSink() if steps_already_resolved else _sink(context)
    resolved = resolve_pipeline(steps, orchestrator, sink)
    context.output_root = orchestrator.output_root
    _RESOLVED[context] = resolved
    _put(context, plan_steps(resolved, orchestrator, context.well_id))
    return resolved.steps, dict(resolved.states)


def declare_zarr_stores_for_context(context: ProcessingContext, steps: Sequence[FunctionStep], orchestrator: Orchestrator) -> None:
    """Phase 2 on a context: the last plan names the OME-Zarr store it writes when the output format is zarr."""
    _put(context, declare_zarr_stores(tuple(context.plans()), orchestrator))


def plan_materialization_flags_for_context(context: ProcessingContext, steps: Sequence[FunctionStep], orchestrator: Orchestrator) -> None:
    """Phase 3 on a context: read and write backends per step."""
    _put(context, plan_materialization_flags(tuple(context.plans())))


def validate_memory_contracts_for_context(
    context: ProcessingContext,
    steps: Sequence[FunctionStep],
    orchestrator: Orchestrator | None = None,
    *,
    step_state_map: Mapping[str, StepState],
) -> None:
    """Phase 4 on a context: memory types, planned conversions, the normalized pattern, visualizers."""
    resolved = _resolved_of(context)
    if resolved is None or dict(resolved.states) != dict(step_state_map):
        patterns = {step_id: _frozen_pattern(state.pattern) if state.pattern is not None else None for step_id, state in step_state_map.items()}
        resolved = ResolvedPipeline(FrozenDict(step_state_map), FrozenDict(patterns), FrozenDict())
    plans, visualizers = validate_memory_contracts(tuple(context.plans()), resolved)
    _put(context, plans)
    context.required_visualizers = list(visualizers)


def assign_gpu_resources_for_context(context: ProcessingContext, steps: Sequence[FunctionStep] = (), orchestrator: Orchestrator | None = None) -> None:
    """Phase 5 on a context: a device per GPU step, balanced over the GPUs by the context's well index."""
    _put(context, assign_gpu_resources(tuple(context.plans()), well_index=context.well_index, sink=_sink(context)))
