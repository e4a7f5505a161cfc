"""Run a pipeline on a whole plate: ``run(pipeline, plate, out, ...) -> RunReport``.

The pipeline is compiled first (a ``CompileError`` stops everything before
any well runs). Wells then run in worker processes (``workers=N``), in this
process (``workers=1``, the synchronous debugging mode), or on a Dask cluster
(``scheduler=`` an address or a ``distributed.Client``). Each worker receives
the plate index once, when it starts; each well ships only its compiled plans.

The parent alone writes the manifest and merges the measurement tables, so a
run killed at any moment leaves a manifest that lists exactly the finished
wells, and ``resume=True`` picks up from there.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queue_module
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import GlobalConfig
from .manifest import Manifest, clear_state, describe_pipeline, merge_tables, remove_partial_files
from .progress import Progress
from .step_runner import STATE_DIR
from .well import WellFailure, WellResult, new_filemanager, pack_context, run_well, unpack_context

__all__ = ["RunReport", "run"]


@dataclass
class RunReport:
    """The outcome of a run.

    Attributes:
        outputs: the output folder.
        manifest: the manifest file in it.
        succeeded: wells that ran and finished, in plate order.
        failed: well -> :class:`WellFailure` for each well that failed.
        skipped: wells already finished by an earlier run (``resume=True``).
        tables: table name -> merged CSV path.
        seconds: wall time of the run.
    """

    outputs: Path
    manifest: Path
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, WellFailure] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """A few lines for people: counts, failures with their step and error, tables."""
        lines = [
            f"{len(self.succeeded)} well(s) done, {len(self.failed)} failed, {len(self.skipped)} skipped "
            f"in {self.seconds:.1f} s; outputs in {self.outputs}"
        ]
        for well, failure in self.failed.items():
            lines.append(f"  {well} FAILED at {failure.format()}")
        for name, path in self.tables.items():
            lines.append(f"  table {name}: {path}")
        return "\n".join(lines)


# -- workers ----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(plate_blob: bytes, events: Any) -> None:
    """Pool initializer: unpack the plate index once for every well this process runs."""
    _WORKER["plate"] = pickle.loads(plate_blob)
    _WORKER["events"] = events


def _report_step(well: str, index: int, count: int, name: str) -> None:
    events = _WORKER.get("events")
    if events is not None:
        events.put((well, index, count, name))


def _pool_run_well(blob: bytes) -> WellResult:
    plate = _WORKER["plate"]
    # A file manager per well: its memory backend goes away with the well.
    context = unpack_context(blob, plate, new_filemanager(plate))
    return run_well(context, on_step=_report_step)


def _dask_run_well(blob: bytes, plate: Any) -> WellResult:
    context = unpack_context(blob, plate, new_filemanager(plate))
    return run_well(context)


def _pool_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        # Import the heavy modules once in the fork server, not in every worker.
        context.set_forkserver_preload(
            ["plateflow.execution.runner", "plateflow.library.registry", "plateflow.library.numpy_functions",
             "plateflow.vfs", "plateflow.memory.stacking", "numpy", "scipy.ndimage", "skimage.morphology", "skimage.filters", "tifffile"]
        )
        return context
    return multiprocessing.get_context("spawn")


# -- the run ----------------------------------------------------------------------


def _check_paths(plate_root: Path, out: Path) -> None:
    plate_root, real_out = plate_root.resolve(), out.resolve()
    if real_out == plate_root or plate_root in real_out.parents:
        raise ValueError(f"the output folder {out} is inside the plate {plate_root}; the plate is read-only, choose another folder")
    if real_out in plate_root.parents:
        raise ValueError(f"the plate {plate_root} is inside the output folder {out}; choose an output folder outside the plate")


def _well_files(root: Path, handler: Any, wells: set[str]) -> list[Path]:
    """Image files under ``root`` (outside the bookkeeping folder and zarr stores) that belong to ``wells``."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".zarr")]
        for name in files:
            path = Path(folder) / name
            image = handler.parse_path(path.relative_to(root).as_posix())
            if image is not None and image.well in wells:
                found.append(path)
    return found


def run(
    pipeline: Any,
    plate: Any,
    out: str | os.PathLike[str],
    wells: Iterable[str] | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    resume: bool = False,
    config: GlobalConfig | None = None,
    output_format: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Run ``pipeline`` on every well of ``plate`` (or ``wells``), writing results under ``out``.

    Args:
        pipeline: a ``Pipeline`` or list of steps.
        plate: a ``Plate`` or a plate folder.
        out: the output folder (created; never inside the plate).
        wells: well ids to run; all wells by default.
        workers: processes to run wells in (default ``config.num_workers``); 1 runs here, in order.
        scheduler: a Dask scheduler address or ``distributed.Client``: run the wells on that cluster.
        resume: skip wells an earlier run in ``out`` finished; redo the others.
        config: the run's ``GlobalConfig``.
        output_format: ``"tiff"`` or ``"zarr"``, overriding ``config.output_format``.
        progress: show progress bars (tqdm) or lines on stderr.

    Raises:
        CompileError: the pipeline has errors; nothing ran.
        ValueError: bad arguments, or ``resume`` with a different pipeline.
    """
    from ..compiler import compile_pipeline
    from ..plate import open_plate

    started = time.perf_counter()
    config = config if config is not None else GlobalConfig()
    if output_format is not None:
        config = replace(config, output_format=output_format)
    n_workers = config.num_workers if workers is None else workers
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"workers={workers!r} is not valid; use a whole number >= 1")
    plate_obj = plate if hasattr(plate, "microscope_handler") else open_plate(plate)
    out_root = Path(os.path.abspath(os.fspath(out)))
    _check_paths(Path(plate_obj.root), out_root)

    local = scheduler is None and n_workers == 1
    parent_fm = new_filemanager(plate_obj)
    contexts = compile_pipeline(
        pipeline, plate_obj, wells, config, output_root=str(out_root), filemanager=parent_fm if local else None
    )
    selected = list(contexts)
    pipeline_record = describe_pipeline(pipeline)
    out_root.mkdir(parents=True, exist_ok=True)

    previous = Manifest.load(out_root, parent_fm)
    skipped: list[str] = []
    if resume and previous is not None:
        if previous.data.get("pipeline") != pipeline_record:
            raise ValueError(
                f"the pipeline differs from the one that wrote {previous.path}; run it into a new output "
                "folder, or without resume to start again"
            )
        manifest = previous
        skipped = [w for w in selected if manifest.is_complete(w)]
        redo = [w for w in selected if w not in skipped]
        remove_partial_files(out_root, parent_fm)
        _delete_well_outputs(out_root, manifest, redo, plate_obj.microscope_handler, parent_fm)
    else:
        if previous is not None:
            for name in previous.data.get("tables", {}).values():
                if (out_root / name).is_file():
                    parent_fm.delete(out_root / name, "disk")
        clear_state(out_root, parent_fm)
        manifest = Manifest.new(out_root, plate=Path(plate_obj.root), wells=selected, config=config, pipeline=pipeline_record, filemanager=parent_fm)
    store = _zarr_store(contexts)
    if store is not None and not skipped and store.exists():
        parent_fm.delete(store, "disk")  # a fresh run: the store's layout comes from this run's first well
    for well in selected:
        if well not in skipped:
            manifest.set_status(well, "pending", outputs=[], tables={})
    manifest.data["output_format"] = config.output_format
    manifest.save()

    todo = [w for w in selected if w not in skipped]
    report = RunReport(outputs=out_root, manifest=manifest.path, skipped=skipped)
    bar = Progress(len(todo), enabled=progress)
    results: dict[str, WellResult] = {}

    def finished(result: WellResult) -> None:
        results[result.well] = result
        if result.ok:
            manifest.set_status(result.well, "done", outputs=list(result.outputs), tables=dict(result.tables), seconds=round(result.seconds, 3))
        else:
            assert result.failure is not None
            manifest.set_status(result.well, "failed", outputs=list(result.outputs), tables={}, error=result.failure.to_dict())
        manifest.save()
        bar.well_done(result.well, result.ok, result.seconds, result.failure.error if result.failure else "")

    def started_well(well: str) -> None:
        manifest.set_status(well, "running")
        manifest.save()

    try:
        if todo and scheduler is not None:
            _run_dask(contexts, todo, plate_obj, scheduler, started_well, finished)
        elif todo and local:
            for well in todo:
                started_well(well)
                finished(run_well(contexts[well], on_step=bar.step))
        elif todo:
            _run_pool(contexts, todo, plate_obj, n_workers, started_well, finished, bar)
    finally:
        bar.close()

    order = list(plate_obj.wells)
    report.succeeded = [w for w in order if w in results and results[w].ok]
    report.failed = {w: results[w].failure for w in order if w in results and results[w].failure is not None}  # type: ignore[misc]
    report.tables = merge_tables(out_root, order, manifest, parent_fm)
    manifest.data["tables"] = {name: path.name for name, path in report.tables.items()}
    manifest.save()
    report.seconds = time.perf_counter() - started
    return report


def _zarr_store(contexts: dict[str, Any]) -> Path | None:
    """The run's OME-Zarr store (every well's last plan names the same one), or ``None`` for TIFF output."""
    first = next(iter(contexts.values()), None)
    plans = first.plans() if first is not None else []
    if plans and plans[-1].zarr_config:
        return Path(plans[-1].zarr_config["store_path"])
    return None


def _delete_well_outputs(root: Path, manifest: Manifest, wells: Sequence[str], handler: Any, fm: Any) -> None:
    """Before redoing wells: remove what they wrote (recorded or not), so no stale file survives."""
    if not wells:
        return
    for well in wells:
        entry = manifest.wells.get(well, {})
        for relpath in list(entry.get("outputs", ())) + list(entry.get("tables", {}).values()):
            path = root / relpath
            if ".zarr/" not in relpath and path.is_file():
                fm.delete(path, "disk")
        for table in (root / STATE_DIR / "tables").glob(f"*/{well}.csv"):
            fm.delete(table, "disk")
    for path in _well_files(root, handler, set(wells)):
        fm.delete(path, "disk")


def _run_pool(contexts: dict[str, Any], todo: list[str], plate: Any, n_workers: int, started_well: Any, finished: Any, bar: Progress) -> None:
    mp = _pool_context()
    events = mp.Queue()
    stop = threading.Event()
    seen: set[str] = set()
    lock = threading.Lock()

    def listen() -> None:
        while not stop.is_set():
            try:
                well, index, count, name = events.get(timeout=0.1)
            except queue_module.Empty:
                continue
            with lock:
                if well not in seen:
                    seen.add(well)
                    started_well(well)
            bar.step(well, index, count, name)

    listener = threading.Thread(target=listen, name="plateflow-progress", daemon=True)
    listener.start()
    plate_blob = pickle.dumps(plate, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        with ProcessPoolExecutor(max_workers=min(n_workers, len(todo)), mp_context=mp, initializer=_init_worker, initargs=(plate_blob, events)) as pool:
            futures = {pool.submit(_pool_run_well, pack_context(contexts[well])): well for well in todo}
            for future in as_completed(futures):
                well = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool as error:
                    result = _lost_well(well, f"the worker process running this well stopped unexpectedly ({error})")
                except Exception as error:  # the result could not come back (e.g. unpicklable); record it
                    result = _lost_well(well, f"{type(error).__name__}: {error}")
                with lock:
                    finished(result)
    finally:
        stop.set()
        listener.join()
        events.close()
        events.join_thread()


def _lost_well(well: str, message: str) -> WellResult:
    import traceback

    return WellResult(well, failure=WellFailure(None, "", "", "", message, traceback.format_exc()))


def _run_dask(contexts: dict[str, Any], todo: list[str], plate: Any, scheduler: Any, started_well: Any, finished: Any) -> None:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise ImportError("running on a Dask cluster needs dask.distributed: pip install 'plateflow[dask]'") from None
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        # One copy of the plate index per worker, not one per well.
        plate_future = client.scatter(plate, broadcast=True)
        token = uuid.uuid4().hex[:8]
        futures = {}
        for well in todo:
            future = client.submit(_dask_run_well, pack_context(contexts[well]), plate_future, key=f"plateflow-{well}-{token}", pure=False)
            futures[future] = well
            started_well(well)
        for future in dask_completed(list(futures)):
            well = futures[future]
            try:
                result = future.result()
            except Exception as error:  # a lost worker or a failed transfer: the well failed, the run goes on
                result = _lost_well(well, f"{type(error).__name__}: {error}")
            finished(result)
    finally:
        if own:
            client.close()
