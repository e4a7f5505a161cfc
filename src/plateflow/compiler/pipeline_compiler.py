"""``PipelineCompiler`` and ``compile_pipeline`` (``check`` and ``analyze`` live in ``analysis``).

A pipeline is compiled against a plate into one frozen ``ProcessingContext``
per well. The per-step checks do not depend on the well, so they run once; the
per-well work is building plans, which is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import ConfigOverrides, GlobalConfig
from ..steps import FunctionStep, Pipeline, enabled_steps
from . import phases, plate_steps
from .context import ProcessingContext
from .diagnostics import CompileError, Diagnostic, DiagnosticSink, did_you_mean
from .orchestrator import Orchestrator

__all__ = ["PipelineCompiler", "compile_pipeline", "compile_with_plate_steps", "open_plate_like"]

PlateLike = Any  # a Plate, or a path to a plate folder


def open_plate_like(plate: PlateLike) -> Any:
    """``None``, a ``Plate`` as is, or the plate at a folder path (indexed once)."""
    if plate is None:
        return None
    from ..plate import as_plate

    return as_plate(plate)


class PipelineCompiler:
    """Runs the five phases for each well and collects every diagnostic.

    Args:
        pipeline: a ``Pipeline`` or a list of steps.
        plate: a ``Plate`` (or a path to open), or ``None`` to check without one.
        config: the run's ``GlobalConfig``.
        plate_config: overrides for this plate (``ConfigOverrides`` or a dict).
        output_root: where outputs go; defaults to a folder beside the plate.
        filemanager: the VFS the contexts will use at run time.
    """

    # The phases, under the names of the OpenHCS design.
    initialize_step_plans_for_context = staticmethod(phases.initialize_step_plans_for_context)
    declare_zarr_stores_for_context = staticmethod(phases.declare_zarr_stores_for_context)
    plan_materialization_flags_for_context = staticmethod(phases.plan_materialization_flags_for_context)
    validate_memory_contracts_for_context = staticmethod(phases.validate_memory_contracts_for_context)
    assign_gpu_resources_for_context = staticmethod(phases.assign_gpu_resources_for_context)

    def __init__(
        self,
        pipeline: Pipeline | Sequence[FunctionStep],
        plate: PlateLike = None,
        *,
        config: GlobalConfig | None = None,
        plate_config: Mapping[str, Any] | None = None,
        output_root: str | os.PathLike[str] | None = None,
        filemanager: Any = None,
        sink: DiagnosticSink | None = None,
    ) -> None:
        self.steps = enabled_steps(pipeline)  # disabled steps are kept in the pipeline, not compiled
        self.plate = open_plate_like(plate)
        self.orchestrator = Orchestrator(
            plate=self.plate,
            global_config=config if config is not None else GlobalConfig(),
            plate_config=ConfigOverrides(plate_config or {}),
            output_root=str(output_root) if output_root is not None else "",
        )
        self.filemanager = filemanager
        self.sink = sink if sink is not None else DiagnosticSink()

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self.sink.diagnostics

    def resolve(self) -> phases.ResolvedPipeline:
        """The well-independent checks of the pipeline (diagnostics go to ``self.sink``)."""
        return phases.resolve_pipeline(self.steps, self.orchestrator, self.sink)

    def compile_context(self, well_id: str | None, well_index: int = 0, *, resolved: phases.ResolvedPipeline | None = None) -> ProcessingContext:
        """Run the five phases for one well; diagnostics go to ``self.sink``. Not frozen.

        ``resolved`` is the compile's :meth:`resolve` result, shared by its wells
        (made here when not given).
        """
        orchestrator = self.orchestrator
        if resolved is None:
            resolved = self.resolve()
        plans = phases.plan_steps(resolved, orchestrator, well_id)
        plans = phases.declare_zarr_stores(plans, orchestrator)
        plans = phases.plan_materialization_flags(plans)
        plans, visualizers = phases.validate_memory_contracts(plans, resolved)
        plans = phases.assign_gpu_resources(plans, well_index=well_index, sink=self.sink)
        context = ProcessingContext(orchestrator.global_config, well_id, self.filemanager)
        context.diagnostics = self.sink
        context.well_index = well_index
        context.plate = orchestrator.plate
        context.output_root = orchestrator.output_root
        context.step_plans = {plan.step_id: plan for plan in plans}
        context.step_order = [plan.step_id for plan in plans]
        context.required_visualizers = list(visualizers)
        return context

    def _select_wells(self, wells: Iterable[str] | None) -> list[str]:
        available = list(self.plate.wells)
        if wells is None:
            return available
        requested = [wells] if isinstance(wells, str) else list(wells)
        if not requested:
            self.sink.add("unknown-well", None, "", "wells", "no wells were given", "pass wells=None to run every well of the plate")
        chosen: list[str] = []
        for well in requested:
            well = str(well)
            if well in available:
                if well not in chosen:
                    chosen.append(well)
            else:
                hint = did_you_mean(well, available) or f"wells on this plate: {', '.join(available[:12])}{' ...' if len(available) > 12 else ''}"
                self.sink.add("unknown-well", None, "", "wells", f"well {well!r} is not on the plate {str(self.plate.root)!r}", hint)
        return chosen

    def compile(self, wells: Iterable[str] | None = None) -> dict[str, ProcessingContext]:
        """One frozen context per well, or ``CompileError`` carrying every diagnostic."""
        if self.plate is None:
            raise ValueError("compile needs a plate; use check() to check a pipeline without one")
        chosen = self._select_wells(wells)
        resolved = self.resolve()  # once per compile: the per-step checks do not depend on the well
        contexts: dict[str, ProcessingContext] = {}
        for index, well in enumerate(chosen):
            contexts[well] = self.compile_context(well, index, resolved=resolved)
            if index == 0 and self.sink.has_errors:
                break  # the per-step errors are the same for every well
        if self.sink.has_errors or (wells is not None and not chosen):
            raise CompileError(self.sink.diagnostics)
        for context in contexts.values():
            context.freeze()
        return contexts

    def check_context(self) -> ProcessingContext:
        """The (unfrozen) context of the plate's first well, or of no well without a plate; diagnostics in ``self.sink``."""
        well = self.plate.wells[0] if self.plate is not None and self.plate.wells else None
        return self.compile_context(well)

    def check(self) -> tuple[Diagnostic, ...]:
        """Every diagnostic for the pipeline (against the plate's first well if there is a plate)."""
        self.check_context()
        return self.sink.diagnostics


def compile_pipeline(
    pipeline: Pipeline | Sequence[FunctionStep],
    plate: PlateLike,
    wells: Iterable[str] | None = None,
    config: GlobalConfig | None = None,
    *,
    plate_config: Mapping[str, Any] | None = None,
    output_root: str | os.PathLike[str] | None = None,
    filemanager: Any = None,
) -> dict[str, ProcessingContext]:
    """Compile ``pipeline`` against ``plate``: ``{well_id: frozen ProcessingContext}``.

    Raises ``CompileError`` carrying every diagnostic when there is any error.
    """
    if any(getattr(step, "scope", "well") == "plate" for step in enabled_steps(pipeline)):
        contexts, _planning = compile_with_plate_steps(
            pipeline, plate, wells, config, plate_config=plate_config, output_root=output_root, filemanager=filemanager
        )
        return contexts
    compiler = PipelineCompiler(pipeline, plate, config=config, plate_config=plate_config, output_root=output_root, filemanager=filemanager)
    return compiler.compile(wells)


def compile_with_plate_steps(
    pipeline: Pipeline | Sequence[FunctionStep],
    plate: Any,
    wells: Iterable[str] | None = None,
    config: GlobalConfig | None = None,
    *,
    plate_config: Mapping[str, Any] | None = None,
    output_root: str | os.PathLike[str] | None = None,
    filemanager: Any = None,
) -> tuple[dict[str, ProcessingContext], "plate_steps.PlatePlanning"]:
    """Compile a pipeline that may hold plate steps: (``{well: frozen context}``, the plate plans).

    Each context holds only its per-well plans, and ``context.plate_plans``
    (``{step_id: PlateStepPlan}``, one object shared by every context). Raises
    ``CompileError`` with every diagnostic, the plate-step ones included.
    ``wells=`` selects the wells to compile; the plate steps still read their
    whole sample (the whole-plate estimate is applied to the chosen wells).
    """
    if plate is None:
        raise ValueError("compile_with_plate_steps needs a plate; use check() to check a pipeline without one")
    compiler_sink = DiagnosticSink()
    compiler = PipelineCompiler(
        pipeline, plate, config=config, plate_config=plate_config, output_root=output_root, filemanager=filemanager, sink=compiler_sink
    )
    steps = compiler.steps
    sink = DiagnosticSink()
    resolved = compiler.resolve()
    plate_steps.check_plate_steps(steps, compiler.plate, sink)
    planning = plate_steps.plan_plate_steps(resolved, compiler.plate, output_root=compiler.orchestrator.output_root, sink=sink)
    plate_plans = planning.by_id()
    chosen = compiler._select_wells(wells)
    contexts: dict[str, ProcessingContext] = {}
    for index, well in enumerate(chosen):
        context = compiler.compile_context(well, index, resolved=resolved)
        linked = plate_steps.link_well_plans(context.plans(), plate_plans, input_root=compiler.orchestrator.input_root)
        context.step_plans = {plan.step_id: plan for plan in linked}
        context.step_order = [plan.step_id for plan in linked]
        context.required_visualizers = [v for v in context.required_visualizers if v.step_id not in plate_plans]
        context.plate_plans = plate_plans
        contexts[well] = context
        if index == 0 and (compiler_sink.has_errors or sink.has_errors):
            break
    diagnostics = plate_steps.merge_diagnostics(compiler_sink.diagnostics, sink.diagnostics, [p.step_index for p in planning.plans])
    if any(d.is_error for d in diagnostics) or (wells is not None and not chosen):
        raise CompileError(diagnostics)
    for context in contexts.values():
        context.freeze()
    return contexts, plate_steps.PlatePlanning(planning.plans, diagnostics)
