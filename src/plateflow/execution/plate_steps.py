"""Run plate-level steps once, before any well, and hand their values to the wells.

A plate step's plan (:class:`plateflow.compiler.plate_steps.PlateStepPlan`)
names its input images across the sampled wells in stack order and the VFS
paths of its special outputs. :func:`run_plate_step` loads the images through
the file manager, runs the function pattern (the per-well step runner does the
loading, converting and calling, so the same checks and conversions apply),
keeps each special value in the file manager's memory backend under the plan's
path (where per-well consumers read it) and writes it to disk beside it
(``<path>.npy``, ``.json`` for other values) so a resumed run can reload it.

The process that ran the plate steps has their values in memory; a worker
process reads each value once from its file (``step_runner.fetch_plate_values``)
and keeps it for the later wells it runs. A resumed run reloads them with
:func:`load_plate_values` and :func:`preload_plate_values`; :func:`plate_values`
gives ``{vfs path: value}`` of a set of results.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .step_runner import StepError, fetch_plate_values, plate_value_file, run_plan

if TYPE_CHECKING:
    from ..compiler.plate_steps import PlateStepPlan
    from ..vfs import FileManager

__all__ = [
    "PlateStepError",
    "PlateStepResult",
    "run_plate_step",
    "run_plate_steps",
    "plate_values",
    "preload_plate_values",
    "load_plate_values",
    "ensure_plate_steps",
    "plate_step_record",
    "fetch_plate_values",
]


class PlateStepError(StepError):
    """A plate step failed; the message names the step, function, group and file. No well has run."""

    def __init__(self, reason: str, *, step_index: int, step_name: str, function: str = "", group: str = "", file: str = "") -> None:
        super().__init__(reason, step_index=step_index, step_name=step_name, well=None, function=function, group=group, file=file)


@dataclass(frozen=True)
class PlateStepResult:
    """What one plate step made.

    Attributes:
        values: VFS path -> special value, as per-well consumers load it (memory backend).
        files: the files written on disk (one per value; none when outputs are not written).
        sample_wells / sample_sites: the sample the estimate was made from.
        digest: the plan's digest (functions, kwargs, sample, input files).
        groups: stacks run; ``images``: images read.
    """

    step_id: str
    step_index: int
    step_name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    sample_wells: tuple[str, ...] = ()
    sample_sites: tuple[str, ...] = ()
    digest: str = ""
    groups: int = 0
    images: int = 0
    seconds: float = 0.0
    #: ``True`` when the values were reloaded from an earlier run's files instead of computed
    reused: bool = False


def _context_for(plate_plan: "PlateStepPlan", filemanager: "FileManager", output_root: str) -> Any:
    from ..compiler.context import ProcessingContext

    context = ProcessingContext(plate_plan.plan.config, None, filemanager)
    context.output_root = output_root
    context.step_plans = {plate_plan.step_id: plate_plan.plan}
    context.step_order = [plate_plan.step_id]
    return context.freeze()


def run_plate_step(plate_plan: "PlateStepPlan", filemanager: "FileManager", *, output_root: str = "", write_files: bool = True) -> PlateStepResult:
    """Run one plate step over its sample; raises :class:`PlateStepError` when it fails.

    Its special values are left in ``filemanager``'s memory backend under the
    plan's paths (so per-well steps run with this file manager read them), and
    written to disk when ``write_files`` and the plan writes outputs.
    """
    plan = plate_plan.plan
    started = time.perf_counter()
    if not plan.groups:
        raise PlateStepError("its sample holds no image of the plate", step_index=plan.step_index, step_name=plan.step_name)
    try:
        result = run_plan(plan, _context_for(plate_plan, filemanager, output_root))
    except StepError as error:
        raise PlateStepError(
            error.reason, step_index=plan.step_index, step_name=plan.step_name, function=error.function, group=error.group, file=error.file
        ) from error
    # The images a plate step passes on are not needed: per-well steps read the plate's own.
    for backend, path in result.outputs:
        if backend == "memory":
            filemanager.delete(path, "memory")
    values: dict[str, Any] = {}
    files: list[str] = []
    write = write_files and any(spec.get("files") == "disk" for spec in plan.special_outputs.values())
    for _name, path, _fixed in plate_plan.value_paths():
        if not filemanager.exists(path, "memory"):
            continue  # a dict pattern entry that does not make this output
        value = filemanager.load(path, "memory", memory_type=None)
        values[path] = value
        if write:
            target = plate_plan.file_path(path, value)
            filemanager.save(value, target, "disk")
            files.append(target)
    files.extend(path for backend, path in result.outputs if backend == "disk")
    return PlateStepResult(
        plan.step_id,
        plan.step_index,
        plan.step_name,
        values,
        tuple(files),
        plate_plan.sample_wells,
        plate_plan.sample_sites,
        plate_plan.digest,
        result.groups,
        sum(len(group.files) for group in plan.groups),
        time.perf_counter() - started,
    )


def run_plate_steps(
    plate_plans: Iterable["PlateStepPlan"], filemanager: "FileManager", *, output_root: str = "", write_files: bool = True
) -> dict[str, PlateStepResult]:
    """Run every plate step in pipeline order (later ones may read earlier ones' values): ``{step_id: result}``."""
    results: dict[str, PlateStepResult] = {}
    for plate_plan in sorted(plate_plans, key=lambda p: p.step_index):
        results[plate_plan.step_id] = run_plate_step(plate_plan, filemanager, output_root=output_root, write_files=write_files)
    return results


def plate_values(results: Mapping[str, PlateStepResult] | Iterable[PlateStepResult]) -> dict[str, Any]:
    """``{vfs path: value}`` of every plate step's special outputs: what a worker preloads."""
    items = results.values() if isinstance(results, Mapping) else results
    merged: dict[str, Any] = {}
    for result in items:
        merged.update(result.values)
    return merged


def preload_plate_values(filemanager: "FileManager", values: Mapping[str, Any]) -> None:
    """Put plate values into ``filemanager``'s memory backend, where per-well consumers read them."""
    for path, value in values.items():
        filemanager.save(value, path, "memory")


def load_plate_values(plate_plan: "PlateStepPlan", filemanager: "FileManager") -> dict[str, Any]:
    """The values a finished plate step wrote to disk, keyed by their VFS paths (for resume).

    Raises ``FileNotFoundError`` naming the missing file when one is absent.
    """
    values: dict[str, Any] = {}
    missing: list[str] = []
    for _name, path, _fixed in plate_plan.value_paths():
        target = plate_value_file(path, filemanager)
        if target is None:
            missing.append(f"{path}.npy")
        else:
            values[path] = filemanager.load(target, "disk", memory_type=None)
    if missing:
        raise FileNotFoundError(
            f"plate step {plate_plan.step_index + 1} {plate_plan.step_name!r}: its outputs {', '.join(missing)} are missing; run it again"
        )
    return values


def plate_step_record(result: PlateStepResult) -> dict[str, Any]:
    """What a manifest keeps of a finished plate step (plain JSON values), under ``PlateStepPlan.key``."""
    return {
        "status": "done",
        "step_id": result.step_id,
        "step_index": result.step_index,
        "step_name": result.step_name,
        "digest": result.digest,
        "files": list(result.files),
        "sample_wells": list(result.sample_wells),
        "sample_sites": list(result.sample_sites),
    }


def ensure_plate_steps(
    plate_plans: Iterable["PlateStepPlan"],
    filemanager: "FileManager",
    *,
    output_root: str = "",
    previous: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, PlateStepResult], tuple[str, ...]]:
    """Run the plate steps a resumed run cannot reuse: (``{step_id: result}``, ids of the steps that ran).

    ``previous`` is the last run's records (:func:`plate_step_record`) by
    ``PlateStepPlan.key`` (position and name: step ids change between processes).
    A step is reused when its record says done, its digest equals the plan's,
    and every recorded file is still there; its values are then reloaded from
    them. Once a step runs again, every later plate step runs again too (it may
    read the new values). The wells consuming a step that ran must be redone.
    """
    results: dict[str, PlateStepResult] = {}
    ran: list[str] = []
    recorded = previous or {}
    for plate_plan in sorted(plate_plans, key=lambda p: p.step_index):
        record = recorded.get(plate_plan.key)
        reusable = (
            not ran
            and record is not None
            and record.get("status") == "done"
            and record.get("digest") == plate_plan.digest
            and all(filemanager.exists(str(path), "disk") for path in record.get("files", ()))
        )
        if reusable:
            assert record is not None  # for the type checker: reusable implies a record
            try:
                values = load_plate_values(plate_plan, filemanager)
            except FileNotFoundError:
                reusable = False
            else:
                preload_plate_values(filemanager, values)
                results[plate_plan.step_id] = PlateStepResult(
                    plate_plan.step_id, plate_plan.step_index, plate_plan.step_name, values,
                    tuple(str(p) for p in record.get("files", ())), plate_plan.sample_wells, plate_plan.sample_sites,
                    plate_plan.digest, 0, 0, 0.0, True,
                )
                continue
        results[plate_plan.step_id] = run_plate_step(plate_plan, filemanager, output_root=output_root)
        ran.append(plate_plan.step_id)
    return results, tuple(ran)

