"""``analyze(pipeline, plate=None) -> Analysis``: what the compiler found, for people and editors.

One public result of a compile: every diagnostic, and the data flow between the
steps as the compiled plans hold it (memory types, the conversion planned in
front of each step, where each special input comes from and who consumes each
special output). Nothing here recomputes the flow: it reads the plans the five
phases made for one well (the plate's first well, or no well without a plate).
``check`` returns the diagnostics of this result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._frozen import FrozenDict
from ..special_io import get_special_inputs, get_special_outputs
from ..steps import FunctionStep, Pipeline, enabled_steps
from .diagnostics import Diagnostic, DiagnosticSink, format_field
from .pipeline_compiler import PipelineCompiler, open_plate_like
from .plan import StepPlan

__all__ = ["SpecialLink", "CallFlow", "StepFlow", "Analysis", "analyze", "check"]

FieldPath = tuple[Any, ...]


@dataclass(frozen=True)
class SpecialLink:
    """Where one special input comes from.

    Attributes:
        name: the special input's name.
        producer_step_index: the step that produces it; ``None`` when no earlier step does (a diagnostic says so).
        producer_path: the producing function's place in that step's pattern (``()`` for a single function).
        same_step: produced by an earlier function of the same chain.
    """

    name: str
    producer_step_index: int | None
    producer_path: FieldPath = ()
    same_step: bool = False


@dataclass(frozen=True)
class CallFlow:
    """One function of a step's pattern: its place, memory types and special I/O."""

    path: FieldPath
    place: str
    function_name: str
    input_memory_type: str
    output_memory_type: str
    special_inputs: Mapping[str, SpecialLink] = field(default_factory=FrozenDict)
    special_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepFlow:
    """One enabled step as compiled: memory types, the conversion in front of it, its special I/O links.

    ``conversion`` is ``(type the planes arrive in, the step's input type)`` when
    they differ: the previous step's output type when it hands its planes over in
    memory, ``"numpy"`` when they come from disk (the plate, or a saved step).
    """

    step_index: int
    step_name: str
    input_memory_type: str
    output_memory_type: str
    conversion: tuple[str, str] | None
    calls: tuple[CallFlow, ...]
    special_inputs: Mapping[str, SpecialLink]
    special_outputs: Mapping[str, tuple[int, ...]]
    variable_components: tuple[str, ...]
    group_by: str | None
    device: str
    reads_plate: bool
    #: "well" or "plate" (docs/plate-steps.md); a plate step's resolved sample (empty without a plate)
    scope: str = "well"
    sample_wells: tuple[str, ...] = ()
    sample_sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """Diagnostics and the data flow of a pipeline (one :class:`StepFlow` per enabled step)."""

    diagnostics: tuple[Diagnostic, ...]
    steps: tuple[StepFlow, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors

    def step(self, index: int) -> StepFlow:
        """The flow of step ``index`` (0-based among the enabled steps)."""
        if not 0 <= index < len(self.steps):
            raise IndexError(f"step index {index} is out of range; the analysis has {len(self.steps)} step(s) (0-{len(self.steps) - 1})")
        return self.steps[index]


def analyze(pipeline: Pipeline | Sequence[FunctionStep], plate: Any = None, *, config: Any = None) -> Analysis:
    """Check ``pipeline`` (against ``plate`` if given) and describe its data flow. Never raises."""
    sink = DiagnosticSink()
    try:
        opened = open_plate_like(plate)
    except Exception as error:  # a bad plate is a finding, not a crash, in the editor
        sink.add("plate-error", None, "", "", f"cannot open the plate {str(plate)!r}: {error}", "check the plate folder", path=("plate",))
        opened = None
    steps: list[Any] = []
    plans: dict[int, StepPlan] = {}
    try:
        steps = list(enabled_steps(pipeline))
        compiler = PipelineCompiler(steps, opened, config=config, sink=sink)
        context = compiler.check_context()
        plans = {plan.step_index: plan for plan in context.plans()}
    except Exception as error:  # analyze() must never raise; report what broke instead
        sink.add("internal-error", None, "", "", f"{type(error).__name__}: {error}", "this is a plateflow bug; please report it with the pipeline")
    try:
        flows = _flows(steps, plans)
    except Exception as error:  # the same promise for the flow: diagnostics survive a bug here
        sink.add("internal-error", None, "", "", f"{type(error).__name__}: {error}", "this is a plateflow bug; please report it with the pipeline")
        flows = ()
    diagnostics = sink.diagnostics
    try:
        diagnostics, flows = _with_plate_steps(steps, opened, diagnostics, flows)
    except Exception as error:  # the same promise for plate steps
        extra = DiagnosticSink()
        extra.add("internal-error", None, "", "", f"{type(error).__name__}: {error}", "this is a plateflow bug; please report it with the pipeline")
        diagnostics = (*diagnostics, *extra.diagnostics)
    return Analysis(diagnostics, flows)


def _with_plate_steps(steps: Sequence[Any], plate: Any, diagnostics: tuple[Diagnostic, ...], flows: tuple[StepFlow, ...]) -> tuple[tuple[Diagnostic, ...], tuple[StepFlow, ...]]:
    """Add the plate-step diagnostics, and each plate step's scope and sample (and the first per-well step reading the plate)."""
    from dataclasses import replace

    from .plate_steps import check_plate_steps, is_plate_step, merge_diagnostics, resolved_sample

    plate_indices = [i for i, step in enumerate(steps) if is_plate_step(step)]
    if not plate_indices:
        return diagnostics, flows
    sink = DiagnosticSink()
    check_plate_steps(steps, plate, sink)
    merged = merge_diagnostics(diagnostics, sink.diagnostics, plate_indices)
    new_flows = []
    first_well_step = True
    for flow in flows:
        step = steps[flow.step_index] if flow.step_index < len(steps) else None
        if step is not None and is_plate_step(step):
            wells, sites = resolved_sample(step, plate)
            new_flows.append(replace(flow, scope="plate", reads_plate=True, sample_wells=wells, sample_sites=sites))
            continue
        if first_well_step and not flow.reads_plate:
            flow = replace(flow, reads_plate=True, conversion=("numpy", flow.input_memory_type) if flow.input_memory_type not in ("", "numpy") else None)
        first_well_step = False
        new_flows.append(flow)
    return merged, tuple(new_flows)


def check(pipeline: Pipeline | Sequence[FunctionStep], plate: Any = None, *, config: Any = None) -> list[Diagnostic]:
    """Every diagnostic for ``pipeline`` (and ``plate`` if given): ``analyze(...).diagnostics``. Never raises.

    This is what the pipeline editor calls on every edit.
    """
    return list(analyze(pipeline, plate, config=config).diagnostics)


# -- building the flow from the plans ------------------------------------------------------


def _memory(func: Any, attribute: str) -> str:
    value = getattr(func, attribute, None)
    return value if isinstance(value, str) else ""


def _function_name(func: Any) -> str:
    from ..library import registry
    from ..patterns import function_name

    return registry.name_of(func) or function_name(func)


def _producer_path(plan: StepPlan, name: str) -> FieldPath:
    if plan.func is not None:
        for call in plan.func.calls():
            if name in get_special_outputs(call.func):
                return tuple(call.path)
    return ()


def _producers(plans: Mapping[int, StepPlan]) -> dict[str, tuple[int, FieldPath]]:
    """Special output VFS path -> (producing step, producing function's place)."""
    found: dict[str, tuple[int, FieldPath]] = {}
    for index, plan in plans.items():
        for name, spec in plan.special_outputs.items():
            found.setdefault(str(spec["path"]), (index, _producer_path(plan, name)))
    return found


def _flows(steps: Sequence[Any], plans: Mapping[int, StepPlan]) -> tuple[StepFlow, ...]:
    producers = _producers(plans)
    consumers: dict[tuple[int, str], list[int]] = {}
    for index, plan in plans.items():
        for name, spec in plan.special_inputs.items():
            producer = producers.get(str(spec["path"]))
            if producer is not None:
                consumers.setdefault((producer[0], name), []).append(index)
    flows = []
    for index, step in enumerate(steps):
        planned = plans.get(index)
        if planned is None or planned.step_id != getattr(step, "step_id", None):
            flows.append(_unplanned(index, step))
            continue
        flows.append(_step_flow(planned, producers, consumers))
    return tuple(flows)


def _unplanned(index: int, step: Any) -> StepFlow:
    """A step the compiler made no plan for (not a step, or a repeat): its place, nothing known."""
    return StepFlow(
        step_index=index,
        step_name=str(getattr(step, "name", type(step).__name__)),
        input_memory_type="",
        output_memory_type="",
        conversion=None,
        calls=(),
        special_inputs=FrozenDict(),
        special_outputs=FrozenDict(),
        variable_components=tuple(getattr(step, "variable_components", ()) or ()),
        group_by=getattr(step, "group_by", None),
        device="",
        reads_plate=index == 0,
    )


def _step_flow(plan: StepPlan, producers: Mapping[str, tuple[int, FieldPath]], consumers: Mapping[tuple[int, str], list[int]]) -> StepFlow:
    step_links: dict[str, SpecialLink] = {}
    for name, spec in plan.special_inputs.items():
        producer = producers.get(str(spec["path"]))
        if producer is not None:
            step_links[name] = SpecialLink(name, producer[0], producer[1], False)
    calls: list[CallFlow] = []
    if plan.func is not None:
        for chain in plan.func.chains.values():
            made_here: dict[str, FieldPath] = {}
            for call in chain:
                links: dict[str, SpecialLink] = {}
                for name in get_special_inputs(call.func):
                    if name in made_here:
                        links[name] = SpecialLink(name, plan.step_index, made_here[name], True)
                    else:
                        links[name] = step_links.get(name) or SpecialLink(name, None, (), False)
                        step_links.setdefault(name, links[name])
                outputs = tuple(get_special_outputs(call.func))
                for name in outputs:
                    made_here.setdefault(name, tuple(call.path))
                calls.append(
                    CallFlow(
                        path=tuple(call.path),
                        place=format_field(tuple(call.path)),
                        function_name=_function_name(call.func),
                        input_memory_type=_memory(call.func, "input_memory_type"),
                        output_memory_type=_memory(call.func, "output_memory_type"),
                        special_inputs=FrozenDict(links),
                        special_outputs=outputs,
                    )
                )
    outputs_to = {name: tuple(consumers.get((plan.step_index, name), ())) for name in plan.special_outputs}
    return StepFlow(
        step_index=plan.step_index,
        step_name=plan.step_name,
        input_memory_type=plan.input_memory_type or "",
        output_memory_type=plan.output_memory_type or "",
        conversion=plan.input_conversion,
        calls=tuple(calls),
        special_inputs=FrozenDict(step_links),
        special_outputs=FrozenDict(outputs_to),
        variable_components=tuple(plan.variable_components),
        group_by=plan.group_by,
        device=plan.device,
        reads_plate=plan.reads_plate,
    )
