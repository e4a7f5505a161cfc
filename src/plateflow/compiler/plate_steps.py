"""Plate-level steps: checked, planned once over the plate's images, and linked to their per-well consumers.

A step with ``scope="plate"`` runs once over the images of the whole plate (or
of its ``sample_wells`` / ``sample_sites``) before any well; its special
outputs (an illumination field, plate-wide percentiles) are what the per-well
steps consume. See ``docs/plate-steps.md``.

- :func:`check_plate_steps`: the plate-step diagnostics (placement, sample,
  links, unused outputs), each on its step and field.
- :func:`plan_plate_step`: a :class:`PlateStepPlan` for one plate step, holding a
  frozen :class:`StepPlan` (``well_id=None``) whose groups span the sampled wells
  in stack order, with its special-output paths under ``<out>/_plate/`` and its
  memory types and device.
- :func:`link_well_plans`: one well's plans without the plate steps, their
  consumers reading the plate outputs, the first per-well step reading the plate.
- ``pipeline_compiler.compile_with_plate_steps`` uses these: ``compile_pipeline``
  for pipelines with plate steps, every context carrying the same
  ``context.plate_plans``.

A plate step is transparent in the per-well image chain: the first per-well
step reads the plate's own images, as if the plate steps were not there, and
every plate step reads the plate's own images too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._callables import readable_name
from .._frozen import FrozenDict, freeze
from .._naming import COMPONENTS, natural_key
from ..special_io import get_special_inputs, get_special_outputs
from ..steps import FunctionStep, Pipeline, enabled_steps
from . import phases
from .diagnostics import Diagnostic, DiagnosticSink, did_you_mean
from .plan import PlannedGroup, StepPlan, special_value_path

__all__ = [
    "PLATE_DIR",
    "PlateStepPlan",
    "PlatePlanning",
    "is_plate_step",
    "check_plate_steps",
    "plan_plate_step",
    "plan_plate_steps",
    "link_well_plans",
    "plate_step_diagnostics",
    "merge_diagnostics",
    "resolved_sample",
    "special_value_path",
]

#: Folder under the output root that holds what plate steps write (never a well folder).
PLATE_DIR = "_plate"

_WELL_ID = re.compile(r"^[A-Za-z]{1,2}0*\d{1,3}$")


def is_plate_step(step: Any) -> bool:
    return isinstance(step, FunctionStep) and getattr(step, "scope", "well") == "plate"


@dataclass(frozen=True, eq=False)
class PlateStepPlan:
    """The plan of one plate step, the same for every well.

    Attributes:
        plan: the step's frozen :class:`StepPlan`: ``well_id`` is ``None``, its
            ``groups`` span the sampled wells (stack order: wells in plate order,
            then the other variable components sorted), ``special_outputs`` name
            ``<out>/_plate/<NN_step>/<name>`` (values in memory, files on disk under
            :meth:`file_path`), ``input_memory_type`` and ``device`` as for any step.
        sample_wells / sample_sites: the resolved sample (every well / site when not declared).
        consumers: special output name -> indices of the per-well steps that take it.
        digest: what the result depends on (functions, kwargs, sample, input files);
            resume reruns a plate step only when it changes.
    """

    plan: StepPlan
    sample_wells: tuple[str, ...]
    sample_sites: tuple[str, ...]
    consumers: Mapping[str, tuple[int, ...]]
    digest: str
    scope: str = "plate"

    @property
    def step_id(self) -> str:
        return self.plan.step_id

    @property
    def step_index(self) -> int:
        return self.plan.step_index

    @property
    def step_name(self) -> str:
        return self.plan.step_name

    @property
    def key(self) -> str:
        """``"01_illumination-field"``: names the step across runs (step ids are new in every process)."""
        return phases.step_directory_name(self.plan.step_index, self.plan.step_name)

    @property
    def folder(self) -> str:
        """``<out>/_plate/<NN_step>``: everything this step writes lives here."""
        return self.plan.output_dir

    def value_paths(self) -> list[tuple[str, str, Mapping[str, str]]]:
        """(special output name, VFS path, group's fixed components) of every value the step saves."""
        found: list[tuple[str, str, Mapping[str, str]]] = []
        for name, spec in self.plan.special_outputs.items():
            for fixed in self.plan.special_sources.get(name, ()):
                found.append((name, special_value_path(spec, dict(fixed)), dict(fixed)))
        return found

    @staticmethod
    def file_path(value_path: str, value: Any) -> str:
        """Where a value saved at ``value_path`` is written on disk: ``.npy`` for arrays, else ``.json``."""
        return f"{value_path}.npy" if hasattr(value, "shape") and hasattr(value, "dtype") else f"{value_path}.json"


@dataclass(frozen=True)
class PlatePlanning:
    """Every plate step's plan, in pipeline order, and the diagnostics found planning them."""

    plans: tuple[PlateStepPlan, ...]
    diagnostics: tuple[Diagnostic, ...] = ()

    def by_id(self) -> Mapping[str, PlateStepPlan]:
        return FrozenDict({p.step_id: p for p in self.plans})


# -- checks -----------------------------------------------------------------------


def _plate_list(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown + (" ..." if len(values) > limit else "")


def check_plate_steps(steps: Sequence[Any], plate: Any, sink: DiagnosticSink) -> None:
    """Report every plate-step problem of the (enabled) ``steps``; ``plate`` may be ``None``.

    Codes: plate-step-after-well-step, plate-step-group-by-well, sample-well-invalid,
    sample-well-not-on-plate, sample-site-not-on-plate, plate-sample-empty,
    plate-input-from-well-step, plate-output-unused.
    """
    producers: dict[str, tuple[int, Any]] = {}  # special output -> (index, step) of its first producer
    first_well_step: tuple[int, Any] | None = None
    for index, step in enumerate(steps):
        if not isinstance(step, FunctionStep):
            continue
        if is_plate_step(step):
            _check_one_plate_step(step, index, plate, sink, first_well_step)
            for name in _pattern_specials(step, get_special_inputs):
                producer = producers.get(name)
                if producer is not None and not is_plate_step(producer[1]):
                    sink.add(
                        "plate-input-from-well-step",
                        index,
                        step.name,
                        None,
                        f"{name!r} comes from step {producer[0] + 1} {producer[1].name!r}, a per-well step, but a plate step runs before any well",
                        f"make step {producer[0] + 1} a plate step (scope='plate'), or move this step's use of {name!r} into a per-well step",
                        path=("special_inputs", name),
                    )
        elif first_well_step is None:
            first_well_step = (index, step)
        for name in _pattern_specials(step, get_special_outputs):
            producers.setdefault(name, (index, step))
    _check_unused_outputs(steps, sink)


def _pattern_specials(step: FunctionStep, getter: Any) -> list[str]:
    from ..patterns import PatternError, normalize_pattern

    try:
        pattern = normalize_pattern(step.func)
    except (PatternError, TypeError, ValueError):
        return []  # a malformed pattern: the step check reports it
    names: list[str] = []
    for call in pattern.calls():
        for name in getter(call.func):
            if name not in names:
                names.append(name)
    return names


def _materialized(step: FunctionStep) -> set[str]:
    from ..patterns import PatternError, normalize_pattern
    from ..special_io import get_materialized_outputs

    try:
        pattern = normalize_pattern(step.func)
    except (PatternError, TypeError, ValueError):
        return set()
    return {name for call in pattern.calls() for name in get_materialized_outputs(call.func)}


def _check_unused_outputs(steps: Sequence[Any], sink: DiagnosticSink) -> None:
    for index, step in enumerate(steps):
        if not is_plate_step(step):
            continue
        kept = _materialized(step)
        later = [s for s in steps[index + 1:] if isinstance(s, FunctionStep)]
        used = {name for s in later for name in _pattern_specials(s, get_special_inputs)}
        for name in _pattern_specials(step, get_special_outputs):
            if name in used or name in kept:
                continue
            takers = _registry_consumers(name)
            hint = (
                f"add a per-well step after it that takes {name!r}, e.g. {', '.join(takers)}"
                if takers
                else f"add a per-well step after it whose function has @special_inputs({name!r}), or remove this plate step"
            )
            sink.add(
                "plate-output-unused",
                index,
                step.name,
                None,
                f"{name!r} is computed over the whole plate but no later step uses it",
                hint,
                path=("special_outputs", name),
            )


def _registry_consumers(name: str) -> list[str]:
    """Registry names of the bundled functions that take special input ``name``."""
    from ..library import registry  # compiler > library: a downward import

    found = []
    for function_name in registry.names():
        try:
            func = registry.get(function_name)
        except (LookupError, ImportError, RuntimeError, ValueError):
            continue  # a function whose library is missing here cannot be suggested
        if name in get_special_inputs(func):
            found.append(function_name)
    return found[:3]


def _check_one_plate_step(step: FunctionStep, index: int, plate: Any, sink: DiagnosticSink, first_well_step: tuple[int, Any] | None) -> None:
    if first_well_step is not None:
        well_index, well_step = first_well_step
        sink.add(
            "plate-step-after-well-step",
            index,
            step.name,
            None,
            f"this plate step comes after per-well step {well_index + 1} {well_step.name!r}, but plate steps run before any well",
            f"move it before step {well_index + 1} {well_step.name!r}; to normalise measurement tables across wells, "
            "use normalize_to_controls on the plate's table after the run",
            path=("scope",),
        )
    if step.group_by == "well":
        sink.add(
            "plate-step-group-by-well",
            index,
            step.name,
            None,
            "group_by='well' on a plate step: the well always varies inside its stack",
            "remove group_by (or group by channel); for one value per well, use a per-well step",
            path=("group_by",),
        )
    wells = step.sample_wells
    if wells is not None:
        invalid = [w for w in wells if not _WELL_ID.match(w)]
        if invalid:
            sink.add(
                "sample-well-invalid",
                index,
                step.name,
                None,
                f"sample_wells holds {', '.join(map(repr, invalid))}, not well ids",
                "write well ids as a row letter and a column number, e.g. 'A01' or 'b3'",
                path=("sample_wells",),
            )
        if plate is not None:
            absent = [w for w in wells if _WELL_ID.match(w) and w not in plate.wells]
            if absent:
                suggestion = did_you_mean(absent[0], plate.wells)
                sink.add(
                    "sample-well-not-on-plate",
                    index,
                    step.name,
                    None,
                    f"sample_wells {', '.join(map(repr, absent))} {'is' if len(absent) == 1 else 'are'} not on the plate; "
                    f"its wells are {_plate_list(list(plate.wells))}",
                    suggestion or "use wells of the plate, or sample_wells=None for every well",
                    path=("sample_wells",),
                )
    sites = step.sample_sites
    if sites is not None and plate is not None:
        plate_sites = list(plate.components.get("site", ()))
        absent = [s for s in sites if s not in plate_sites]
        if absent:
            sink.add(
                "sample-site-not-on-plate",
                index,
                step.name,
                None,
                f"sample_sites {', '.join(map(repr, absent))} {'is' if len(absent) == 1 else 'are'} not on the plate; "
                f"its sites are {_plate_list(plate_sites)}",
                did_you_mean(absent[0], plate_sites) or "use sites of the plate, or sample_sites=None for every site",
                path=("sample_sites",),
            )
    if plate is not None and not _sample_files(step, plate):
        chosen = f"wells {_plate_list(list(_sample_of(step, plate)[0]))}" + (f", sites {', '.join(sites)}" if sites else "")
        sink.add(
            "plate-sample-empty",
            index,
            step.name,
            None,
            f"the sample ({chosen}) holds no image of the plate",
            "choose wells and sites that have images, or set sample_wells=None and sample_sites=None",
            path=("sample_wells",),
        )


def plate_step_diagnostics(pipeline: Pipeline | Sequence[FunctionStep], plate: Any = None) -> tuple[Diagnostic, ...]:
    """The plate-step diagnostics of a pipeline's enabled steps (``plate`` a Plate, a folder, or ``None``)."""
    sink = DiagnosticSink()
    if plate is not None:
        from ..plate import as_plate  # compiler > plate: a downward import

        plate = as_plate(plate)
    check_plate_steps(enabled_steps(pipeline), plate, sink)
    return sink.diagnostics


# -- planning ---------------------------------------------------------------------


def _sample_of(step: FunctionStep, plate: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The sampled wells (plate order) and sites (sorted) that exist on the plate."""
    plate_wells = tuple(plate.wells)
    plate_sites = tuple(plate.components.get("site", ()))
    wells = plate_wells if step.sample_wells is None else tuple(w for w in plate_wells if w in set(step.sample_wells))
    sites = plate_sites if step.sample_sites is None else tuple(s for s in plate_sites if s in set(step.sample_sites))
    return wells, sites


def resolved_sample(step: FunctionStep, plate: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The wells and sites a plate step reads on ``plate`` (both empty without a plate)."""
    return ((), ()) if plate is None else _sample_of(step, plate)


def _sample_files(step: FunctionStep, plate: Any) -> list[Any]:
    wells, sites = _sample_of(step, plate)
    wanted = set(sites)
    return [image for well in wells for image in plate.files_for_well(well) if image.site in wanted]


def plate_groups(files: Sequence[Any], variable: tuple[str, ...], group_by: str | None, well_order: Sequence[str]) -> tuple[PlannedGroup, ...]:
    """The stacks of a plate step: one per combination of the fixed components, across wells.

    Inside a stack the images come wells first (in ``well_order``), then the
    other variable components in their natural order.
    """
    varying = tuple(c for c in variable if c != "well")
    fixed_names = tuple(c for c in COMPONENTS if c != "well" and c not in varying)
    position = {well: i for i, well in enumerate(well_order)}
    buckets: dict[tuple[str, ...], list[Any]] = {}
    for image in files:
        buckets.setdefault(tuple(image.component(c) for c in fixed_names), []).append(image)
    groups = []
    for key in sorted(buckets, key=lambda k: tuple(map(natural_key, k))):
        members = sorted(buckets[key], key=lambda f: (position.get(f.well, len(position)), *[natural_key(f.component(c)) for c in varying]))
        fixed = FrozenDict(dict(zip(fixed_names, key)))
        groups.append(PlannedGroup("", fixed, fixed.get(group_by) if group_by is not None else None, tuple(members)))
    return tuple(groups)


def _digest(step: FunctionStep, pattern: Any, wells: Sequence[str], sites: Sequence[str], files: Sequence[Any]) -> str:
    calls = []
    if pattern is not None:
        for call in pattern.calls():
            func = call.func
            name = getattr(func, "registry_name", None) or f"{getattr(func, '__module__', '')}.{readable_name(func)}"
            calls.append({"function": name, "place": str(call.place), "kwargs": {k: repr(v) for k, v in sorted(dict(call.kwargs).items())}})
    payload = {
        "calls": calls,
        "variable_components": list(step.variable_components),
        "group_by": step.group_by,
        "wells": list(wells),
        "sites": list(sites),
        "files": [image.path for image in files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def plan_plate_step(
    step: FunctionStep,
    state: Any,
    pattern: Any,
    plate: Any,
    *,
    output_root: str,
    consumers: Mapping[str, tuple[int, ...]],
    sink: DiagnosticSink,
    plate_image: tuple[tuple[int, ...], str] | None = None,
    write_outputs: bool = True,
    earlier: Sequence[PlateStepPlan] = (),
) -> PlateStepPlan:
    """The plan of one plate step against ``plate``; ``state`` is its ``StepState`` from the step checks."""
    wells, sites = _sample_of(step, plate)
    files = _sample_files(step, plate)
    groups = plate_groups(files, tuple(step.variable_components), step.group_by, wells) if state.components_ok else ()
    out_root = output_root.rstrip("/") or "."
    folder = f"{out_root}/{PLATE_DIR}/{phases.step_directory_name(state.index, step.name)}"
    outputs = freeze({
        # values live in memory (preloaded into every worker); the runner also writes them to
        # disk under the same path (.npy / .json) so resume can verify and reload them
        name: {"path": f"{folder}/{name}", "backend": "memory", "files": "disk" if write_outputs else "", "scope": "plate"}
        for name in state.produces
    })
    sources = _producing_groups(groups, pattern, state.produces)
    input_type, output_type = state.input_memory_type, state.output_memory_type
    inputs: dict[str, Any] = {}
    input_sources: dict[str, Any] = {}
    for name in state.consumes:
        producer = next((p for p in reversed(earlier) if name in p.plan.special_outputs), None)
        if producer is not None:  # an earlier plate step's value (a per-well producer is a diagnostic)
            spec = producer.plan.special_outputs[name]
            inputs[name] = {"path": spec["path"], "backend": spec["backend"], "scope": "plate"}
            input_sources[name] = producer.plan.special_sources.get(name, ())
    plan = StepPlan(
        step_name=step.name,
        step_type=type(step).__name__,
        well_id=None,
        input_dir=str(plate.root),
        output_dir=folder,
        read_backend="disk",
        write_backend="disk" if step.force_disk_output and write_outputs else "memory",
        input_memory_type=input_type,
        output_memory_type=output_type,
        func=pattern,
        special_inputs=freeze(inputs),
        special_outputs=outputs,
        force_disk_output=step.force_disk_output,
        visualize=step.visualize,
        step_index=state.index,
        step_id=step.step_id,
        variable_components=tuple(step.variable_components),
        group_by=step.group_by,
        chain_breaker=state.chain_breaker,
        reads_plate=True,
        groups=groups,
        special_sources=FrozenDict({**sources, **input_sources}),
        input_conversion=("numpy", input_type) if input_type and input_type != "numpy" else None,
        output_conversion=None,
        plate_image=plate_image,
        config=state.config,
    )
    # It runs in the runner's own process: the first device, as the first well would get it.
    (plan,) = phases.assign_gpu_resources((plan,), well_index=0, sink=sink)
    return PlateStepPlan(plan, wells, sites, freeze(dict(consumers)), _digest(step, pattern, wells, sites, files))


def _producing_groups(groups: Sequence[PlannedGroup], pattern: Any, names: Sequence[str]) -> dict[str, tuple[tuple[tuple[str, str], ...], ...]]:
    if pattern is None:
        return {name: () for name in names}
    found: dict[str, list[tuple[tuple[str, str], ...]]] = {name: [] for name in names}
    for group in groups:
        if pattern.is_dict and group.group_key not in pattern.chains:
            continue
        made = {out for call in pattern.chain_for(group.group_key) for out in get_special_outputs(call.func)}
        for name in names:
            if name in made:
                found[name].append(tuple(group.fixed.items()))
    return {name: tuple(values) for name, values in found.items()}


def plan_plate_steps(resolved: phases.ResolvedPipeline, plate: Any, *, output_root: str, sink: DiagnosticSink) -> PlatePlanning:
    """A plan for every plate step of a resolved pipeline, in pipeline order."""
    states = list(resolved.states.values())
    plans: list[PlateStepPlan] = []
    for position, state in enumerate(states):
        if not is_plate_step(state.step):
            continue
        consumers: dict[str, tuple[int, ...]] = {}
        for name in state.produces:
            consumers[name] = tuple(
                later.index for later in states[position + 1:]
                if not is_plate_step(later.step) and (name, state.step.step_id) in resolved.links.get(later.step.step_id, ())
            )
        plans.append(plan_plate_step(
            state.step,
            state,
            resolved.patterns.get(state.step.step_id),
            plate,
            output_root=output_root,
            consumers=consumers,
            sink=sink,
            plate_image=resolved.plate_image,
            write_outputs=state.config.write_outputs,
            earlier=plans,
        ))
    return PlatePlanning(tuple(plans), sink.diagnostics)


# -- linking the per-well plans ------------------------------------------------------


def link_well_plans(plans: Sequence[StepPlan], plate_plans: Mapping[str, PlateStepPlan], *, input_root: str) -> tuple[StepPlan, ...]:
    """One well's plans without the plate steps; consumers read the plate steps' outputs.

    The first per-well step (and any after a chain breaker) reads the plate's
    own images: a plate step is transparent in the image chain.
    """
    kept: list[StepPlan] = []
    previous: StepPlan | None = None
    for plan in plans:
        if plan.step_id in plate_plans:
            continue
        changes: dict[str, Any] = {}
        reads_plate = previous is None or previous.chain_breaker
        if reads_plate and not plan.reads_plate:
            stored_input = plan.input_memory_type
            changes.update(
                reads_plate=True,
                input_dir=input_root,
                read_backend="disk",
                input_conversion=("numpy", stored_input) if stored_input and stored_input != "numpy" else None,
            )
            first_plate_plan = next(iter(plate_plans.values()), None)
            if first_plate_plan is not None:
                changes["plate_image"] = first_plate_plan.plan.plate_image
        inputs = dict(plan.special_inputs)
        sources = dict(plan.special_sources)
        for name in list(inputs):
            producer = _producer_of(name, inputs[name], plate_plans)
            if producer is None:
                continue
            spec = producer.plan.special_outputs[name]
            inputs[name] = {"path": spec["path"], "backend": spec["backend"], "scope": "plate"}
            sources[name] = producer.plan.special_sources.get(name, ())
        if inputs != dict(plan.special_inputs):
            changes.update(special_inputs=freeze(inputs), special_sources=FrozenDict(sources))
        new = plan.evolve(**changes) if changes else plan
        kept.append(new)
        previous = new
    return tuple(kept)


def _producer_of(name: str, spec: Mapping[str, Any], plate_plans: Mapping[str, PlateStepPlan]) -> PlateStepPlan | None:
    # The per-well compile linked the consumer to the plate step's own per-well path
    # (``<out>/special/<well>/NN_name``); the plate step producing ``name`` is the one to read.
    for plate_plan in plate_plans.values():
        if name in plate_plan.plan.special_outputs:
            return plate_plan
    return None


def merge_diagnostics(compiled: Sequence[Diagnostic], plate: Sequence[Diagnostic], plate_step_indices: Iterable[int]) -> tuple[Diagnostic, ...]:
    """The compile's diagnostics and the plate-step ones, sorted by step.

    A plate step's unused output is an error of its own (``plate-output-unused``),
    so the general ``special-output-unused`` warning for it is left out.
    """
    plate_indices = set(plate_step_indices)
    unused = {(d.step_index, d.field) for d in plate if d.code == "plate-output-unused"}
    kept = [
        d for d in compiled
        if not (d.code == "special-output-unused" and (d.step_index in plate_indices or (d.step_index, d.field) in unused))
    ]
    merged = kept + [d for d in plate if d not in kept]
    order = {id(d): i for i, d in enumerate(merged)}
    return tuple(sorted(merged, key=lambda d: (d.step_index is None, d.step_index if d.step_index is not None else 0, order[id(d)])))
