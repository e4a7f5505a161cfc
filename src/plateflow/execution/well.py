"""Run every step of one well: ``run_well(context) -> WellResult``.

A failing step ends its well, never the run: the failure is returned as a
:class:`WellFailure` (step, function, file, error text and traceback). The
well's memory-backend data is freed when the well ends, whatever happened.
With zarr output the last step's planes wait in memory and are written to the
plate store here, once the well has made all of them.
"""

from __future__ import annotations

import os
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .step_runner import StepError, run_plan

if TYPE_CHECKING:
    from ..compiler.context import ProcessingContext
    from ..vfs import FileManager

__all__ = ["WellFailure", "WellResult", "run_well", "bind_context", "pack_context", "unpack_context", "new_filemanager"]

StepCallback = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class WellFailure:
    """Why a well failed.

    Attributes:
        step_index: 0-based index of the failing step (``None`` outside any step).
        step_name: its name; ``function``: the function that failed, where known.
        file: the input file that could not be read, where that was the problem.
        error: the error message; ``traceback``: the full traceback text.
        group: the pattern group being processed (``"[site=1 channel=2]"``).
    """

    step_index: int | None
    step_name: str
    function: str
    file: str
    error: str
    traceback: str
    group: str = ""

    def format(self) -> str:
        where = f"step {self.step_index + 1} {self.step_name!r}" if self.step_index is not None else "after the steps"
        return f"{where}: {self.error}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_index": self.step_index,
            "step_name": self.step_name,
            "function": self.function,
            "file": self.file,
            "group": self.group,
            "error": self.error,
            "traceback": self.traceback,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WellFailure":
        return cls(
            data.get("step_index"),
            data.get("step_name", ""),
            data.get("function", ""),
            data.get("file", ""),
            data.get("error", ""),
            data.get("traceback", ""),
            data.get("group", ""),
        )


@dataclass(frozen=True)
class WellResult:
    """What one well produced.

    Attributes:
        outputs: files written, relative to the output root (zarr planes as ``<store>.zarr/<image path>``).
        tables: table name -> this well's partial CSV, relative to the output root.
        failure: ``None`` when every step succeeded.
    """

    well: str
    outputs: tuple[str, ...] = ()
    tables: dict[str, str] = field(default_factory=dict)
    failure: WellFailure | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


# -- shipping contexts to workers -------------------------------------------------


def bind_context(context: "ProcessingContext", *, plate: Any = None, filemanager: "FileManager | None" = None) -> "ProcessingContext":
    """A copy of a frozen context that uses another file manager (``plate`` is kept for older callers)."""
    return context.rebind(plate=plate, filemanager=filemanager)


def pack_context(context: "ProcessingContext") -> bytes:
    """The context as bytes, without the plate index and the file manager.

    A well runs from its plans alone, so a worker needs no Plate: it makes its
    own file manager (see :func:`new_filemanager`) and unpacks the context.
    """
    detached = context.rebind(filemanager=None)
    object.__setattr__(detached, "plate", None)
    if getattr(detached, "plate_plans", None):
        object.__setattr__(detached, "plate_plans", None)  # the runner runs plate steps; a well needs only its links
    return pickle.dumps(detached, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_context(blob: bytes, *args: Any) -> "ProcessingContext":
    """The packed context bound to a file manager: ``unpack_context(blob, filemanager)``.

    The older form ``unpack_context(blob, plate, filemanager)`` still works; the
    plate is not needed (execution reads only the plans) and is left out.
    """
    if len(args) == 1:
        (filemanager,) = args
    elif len(args) == 2:
        _plate, filemanager = args
    else:
        raise TypeError(f"unpack_context(blob, filemanager) takes 2 arguments ({1 + len(args)} given)")
    context = pickle.loads(blob)
    return context.rebind(filemanager=filemanager)


def new_filemanager(read_only_root: "str | os.PathLike[str] | Any") -> "FileManager":
    """A file manager that refuses every write under the plate folder ``read_only_root`` (a ``Plate`` works too)."""
    from ..vfs import FileManager

    # A path is protected as it is (``Path.root`` is only its anchor, "/"); a Plate by its folder.
    root = read_only_root if isinstance(read_only_root, (str, os.PathLike)) else read_only_root.root
    return FileManager(read_only_roots=[os.fspath(root)])


def _plate_root(context: "ProcessingContext") -> str:
    """The folder the context's first plan reads the plate from (the folder to protect)."""
    plans = context.plans()
    for plan in plans:
        if plan.reads_plate:
            return plan.input_dir
    raise ValueError(f"the context of well {context.well_id!r} has no step that reads the plate; compile the pipeline against a plate")


# -- one well ---------------------------------------------------------------------


def run_well(context: "ProcessingContext", *, on_step: StepCallback | None = None) -> WellResult:
    """Run every step of the context's well in order; never raises for a failing step.

    ``on_step(well, step_index, step_count, step_name)`` is called before each step.
    A context without a file manager gets one that protects the plate.
    """
    if context.filemanager is None:
        context = bind_context(context, filemanager=new_filemanager(_plate_root(context)))
    well = str(context.well_id)
    plans = context.plans()
    root = context.output_root.rstrip("/") or "."
    started = time.perf_counter()
    written: list[str] = []
    tables: dict[str, str] = {}
    current = None
    failure = None
    buffered: list[str] = []
    previous = None
    try:
        for plan in plans:
            current = plan
            if on_step is not None:
                on_step(well, plan.step_index, len(plans), plan.step_name)
            # Only the next step reads a step's images: it frees each group's once stacked, and the
            # rest (groups a dict pattern skips) when it is done. A zarr step keeps them: its flush
            # shows labels over the images they were made from.
            release = previous is not None and previous.write_backend == "memory" and plan.write_backend != "zarr"
            reads_previous = previous is not None and plan.input_dir == previous.output_dir
            result = run_plan(plan, context, release_inputs=release and reads_previous)
            written.extend(path for backend, path in result.outputs if backend != "memory")
            written.extend(result.results)
            tables.update(result.tables)
            if plan.write_backend == "zarr":
                buffered = [path for _, path in result.outputs]
            if release:
                _free_images(context, previous)
            previous = plan
        current = None
        if plans and plans[-1].write_backend == "zarr":
            written.extend(_flush_zarr(context, plans[-1], buffered))
    except StepError as error:
        failure = WellFailure(error.step_index, error.step_name, error.function, error.file, str(error), traceback.format_exc(), error.group)
    except Exception as error:  # anything else ends this well only; record where it happened
        failure = WellFailure(
            current.step_index if current is not None else None,
            current.step_name if current is not None else "",
            "",
            "",
            f"{type(error).__name__}: {error}",
            traceback.format_exc(),
        )
    finally:
        free_well_memory(context)
    return WellResult(
        well,
        tuple(_relative(p, root) for p in written),
        {name: _relative(p, root) for name, p in tables.items()},
        failure,
        time.perf_counter() - started,
    )


def _relative(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def free_well_memory(context: "ProcessingContext") -> None:
    """Delete everything the well's steps keep in the memory backend."""
    fm = context.filemanager
    if fm is None or "memory" not in fm.backends:
        return
    for plan in context.plans():
        for spec in plan.special_outputs.values():
            if spec["backend"] == "memory" and fm.exists(spec["path"], "memory"):
                fm.delete(spec["path"], "memory")
        if plan.write_backend in ("memory", "zarr"):
            _free_images(context, plan)


def _free_images(context: "ProcessingContext", plan: Any) -> None:
    """Delete the images ``plan`` keeps in memory for the context's well (other wells' stay)."""
    fm = context.filemanager
    if fm is None:
        return
    for group in plan.groups:
        for path in plan.output_paths(group):
            if fm.exists(path, "memory"):
                fm.delete(path, "memory")


# -- zarr output ------------------------------------------------------------------


def plate_layout(zarr_config: Any, microscope: str | None = None) -> Any:
    """The plate-level ``ZarrPlateLayout`` of a compiled ``zarr_config`` (no arrays' part).

    ``microscope`` defaults to the format the plan recorded.
    """
    from ..vfs import ZarrPlateLayout

    return ZarrPlateLayout(
        wells=tuple(zarr_config["wells"]),
        sites=tuple(zarr_config["sites"]),
        channels=tuple(zarr_config["channels"]),
        timepoints=tuple(zarr_config["timepoints"]),
        channel_names=dict(zarr_config.get("channel_names") or {}),
        pixel_size=zarr_config.get("pixel_size"),
        microscope=microscope if microscope is not None else zarr_config.get("microscope"),
        name=zarr_config.get("plate_name"),
        compressor=zarr_config.get("compressor") or "zstd",
    )


def _flush_zarr(context: "ProcessingContext", plan: Any, buffered: list[str]) -> list[str]:
    """Write the well's buffered final planes into the plate store, in arrays made for this well.

    ``plateflow.run`` creates the plate metadata before any well starts; a well
    run on its own (``run_well`` called directly) creates it when it is missing.
    Either way this well only ever writes inside its own well group.
    """
    from ..vfs import ProtectedPathError, create_plate_metadata

    fm = context.filemanager
    assert fm is not None, "run_well binds a file manager before any step runs"
    config = plan.zarr_config
    well = context.well_id
    planes = []
    for path in buffered:
        image = plan.output_image(path)
        if image is not None:
            planes.append((image, fm.load(path, "memory")))
    if not planes:
        raise StepError("the last step wrote no images for this well, so there is nothing to store", step_index=plan.step_index, step_name=plan.step_name, well=well)
    shapes = {tuple(data.shape) for _, data in planes}
    if len(shapes) != 1:
        raise StepError(f"the last step wrote planes of several shapes {sorted(shapes)}; one zarr array holds one shape", step_index=plan.step_index, step_name=plan.step_name, well=well)
    store = str(config["store_path"])
    if fm.is_protected(store):
        raise ProtectedPathError(f"refusing to write the plate store {store}: it is inside a read-only root (the input plate)")
    if not Path(store, "zarr.json").is_file():
        create_plate_metadata(store, plate_layout(config))
    # The last step's inputs, so label images are shown over the images they were made from.
    sources = [
        (image.components, fm.load(f"{plan.input_dir}/{image.path}", plan.read_backend))
        for image, _ in planes
        if fm.exists(f"{plan.input_dir}/{image.path}", plan.read_backend)
    ]
    fm.backend("zarr").write_well(store, str(well), [(image.components, data) for image, data in planes], sources=sources)  # type: ignore[attr-defined]  # ZarrBackend's own method, not part of StorageBackend
    root = context.output_root.rstrip("/") or "."
    name = Path(store).name
    return [f"{root}/{name}/{image.path}" for image, _ in planes]
