"""``PipelineCompiler``, ``compile_pipeline`` and ``check``.

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
from . import phases
from .context import ProcessingContext
from .diagnostics import CompileError, Diagnostic, DiagnosticSink, did_you_mean
from .orchestrator import Orchestrator

__all__ = ["PipelineCompiler", "compile_pipeline", "check"]

PlateLike = Any  # a Plate, or a path to a plate folder


def _open(plate: PlateLike) -> Any:
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
    ) -> None:
        self.steps = enabled_steps(pipeline)  # disabled steps are kept in the pipeline, not compiled
        self.plate = _open(plate)
        self.orchestrator = Orchestrator(
            plate=self.plate,
            global_config=config if config is not None else GlobalConfig(),
            plate_config=ConfigOverrides(plate_config or {}),
            output_root=str(output_root) if output_root is not None else "",
        )
        self.filemanager = filemanager
        self.sink = DiagnosticSink()

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self.sink.diagnostics

    def compile_context(self, well_id: str | None, well_index: int = 0) -> ProcessingContext:
        """Run the five phases for one well; diagnostics go to ``self.sink``. Not frozen."""
        context = ProcessingContext(self.orchestrator.global_config, well_id, self.filemanager)
        context.diagnostics = self.sink
        context.well_index = well_index
        already = self.orchestrator.resolved_states is not None
        steps, state_map = self.initialize_step_plans_for_context(context, self.steps, self.orchestrator, steps_already_resolved=already)
        self.declare_zarr_stores_for_context(context, steps, self.orchestrator)
        self.plan_materialization_flags_for_context(context, steps, self.orchestrator)
        self.validate_memory_contracts_for_context(context, steps, self.orchestrator, step_state_map=state_map)
        self.assign_gpu_resources_for_context(context, steps, self.orchestrator)
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
        contexts: dict[str, ProcessingContext] = {}
        for index, well in enumerate(chosen):
            contexts[well] = self.compile_context(well, index)
            if index == 0 and self.sink.has_errors:
                break  # the per-step errors are the same for every well
        if self.sink.has_errors or (wells is not None and not chosen):
            raise CompileError(self.sink.diagnostics)
        for context in contexts.values():
            context.freeze()
        return contexts

    def check(self) -> tuple[Diagnostic, ...]:
        """Every diagnostic for the pipeline (against the plate's first well if there is a plate)."""
        well = self.plate.wells[0] if self.plate is not None and self.plate.wells else None
        self.compile_context(well)
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
    compiler = PipelineCompiler(pipeline, plate, config=config, plate_config=plate_config, output_root=output_root, filemanager=filemanager)
    return compiler.compile(wells)


def check(pipeline: Pipeline | Sequence[FunctionStep], plate: PlateLike = None, *, config: GlobalConfig | None = None) -> list[Diagnostic]:
    """Every diagnostic for ``pipeline`` (and ``plate`` if given). Never raises.

    This is what the pipeline editor calls on every edit.
    """
    sink = DiagnosticSink()
    try:
        opened = _open(plate)
    except Exception as error:  # a bad plate is a finding, not a crash, in the editor
        sink.add("plate-error", None, "", "plate", f"cannot open the plate {str(plate)!r}: {error}", "check the plate folder")
        opened = None
    try:
        compiler = PipelineCompiler(pipeline, opened, config=config)
        compiler.sink = sink
        compiler.check()
    except Exception as error:  # check() must never raise; report what broke instead
        sink.add("internal-error", None, "", "", f"{type(error).__name__}: {error}", "this is a plateflow bug; please report it with the pipeline")
    return list(sink.diagnostics)
