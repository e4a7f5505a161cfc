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

import contextlib
import multiprocessing
import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import GlobalConfig
from .manifest import Manifest, clear_state, describe_pipeline, merge_tables, remove_partial_files
from .progress import Progress
from .step_runner import STATE_DIR
from .well import WellFailure, WellResult, new_filemanager, pack_context, plate_layout, run_well, unpack_context

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
        cancelled: wells not finished because the run was cancelled (``resume=True`` does them later).
        tables: table name -> merged CSV path.
        seconds: wall time of the run.
    """

    outputs: Path
    manifest: Path
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, WellFailure] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    def summary(self) -> str:
        """A few lines for people: counts, failures with their step and error, tables."""
        lines = [
            f"{len(self.succeeded)} well(s) done, {len(self.failed)} failed, {len(self.skipped)} skipped "
            f"in {self.seconds:.1f} s; outputs in {self.outputs}"
        ]
        if self.cancelled:
            lines.append(f"  cancelled before {len(self.cancelled)} well(s) finished: {', '.join(self.cancelled)} (resume=True runs them)")
        for well, failure in self.failed.items():
            lines.append(f"  {well} FAILED at {failure.format()}")
        for name, path in self.tables.items():
            lines.append(f"  table {name}: {path}")
        return "\n".join(lines)


# -- workers ----------------------------------------------------------------------

def _worker_main(conn: Any, plate_blob: bytes) -> None:
    """A worker process: unpack the plate index once, then run the wells the parent sends, one at a time.

    Messages to the parent: ``("step", well, index, count, name)`` before each
    step and ``("result", WellResult)`` at the end of each well. The parent
    gives each worker one well at a time, so when a worker dies it knows
    exactly which well died with it.
    """
    plate = pickle.loads(plate_blob)

    def on_step(well: str, index: int, count: int, name: str) -> None:
        conn.send(("step", well, index, count, name))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone: nobody wants the results
        if message is None:
            return
        well, blob = message
        # A file manager per well: its memory backend goes away with the well.
        context = unpack_context(blob, plate, new_filemanager(plate))
        result = run_well(context, on_step=on_step)
        try:
            conn.send(("result", result))
        except (pickle.PicklingError, TypeError, AttributeError) as error:  # cannot happen with plain WellResults; report rather than die
            conn.send(("result", _lost_well(well, f"the well's result could not be sent back: {type(error).__name__}: {error}")))


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
    cancel: Callable[[], bool] | None = None,
    on_well: Callable[[WellResult], None] | None = None,
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
        cancel: called often while the run goes on; once it returns ``True`` no
            more wells start, wells in worker processes or on Dask are stopped,
            and their wells are reported in ``report.cancelled`` (a later
            ``resume=True`` run does them). With ``workers=1`` the well in
            progress finishes first.
        on_well: called in this process with each well's ``WellResult`` as it finishes.

    Raises:
        CompileError: the pipeline has errors; nothing ran.
        ValueError: bad arguments, or ``resume`` with a different pipeline.
    """
    from ..compiler import compile_pipeline
    from ..plate import as_plate

    started = time.perf_counter()
    config = config if config is not None else GlobalConfig()
    if output_format is not None:
        config = replace(config, output_format=output_format)
    n_workers = config.num_workers if workers is None else workers
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"workers={workers!r} is not valid; use a whole number >= 1")
    plate_obj = as_plate(plate)
    out_root = Path(os.path.abspath(os.fspath(out)))
    _check_paths(Path(plate_obj.root), out_root)

    local = scheduler is None and n_workers == 1
    parent_fm = new_filemanager(plate_obj)
    contexts = compile_pipeline(
        pipeline, plate_obj, wells, config, output_root=str(out_root), filemanager=parent_fm if local else None
    )
    selected = list(contexts)
    pipeline_record = describe_pipeline(pipeline)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(error.errno, f"cannot create the output folder {out_root}: {error.strerror or error}") from error

    previous = Manifest.load(out_root, parent_fm)
    skipped: list[str] = []
    if resume and previous is not None:
        if previous.data.get("pipeline") != pipeline_record:
            raise ValueError(
                f"the pipeline differs from the one that wrote {previous.path}; run it into a new output "
                "folder, or without resume to start again"
            )
        earlier_format = previous.data.get("output_format")
        if earlier_format is not None and earlier_format != config.output_format:
            raise ValueError(
                f"the run in {out_root} wrote {earlier_format} output; resuming it with output_format="
                f"{config.output_format!r} would mix formats. Resume with --format {earlier_format}, or use a new output folder"
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
    _prepare_zarr_store(contexts, plate_obj, parent_fm, fresh=not skipped)
    for well in selected:
        if well not in skipped:
            manifest.set_status(well, "pending", outputs=[], tables={})
    manifest.data["output_format"] = config.output_format
    manifest.save()

    todo = [w for w in selected if w not in skipped]
    report = RunReport(outputs=out_root, manifest=manifest.path, skipped=skipped)
    bar = Progress(len(todo), enabled=progress)
    results: dict[str, WellResult] = {}
    cancelled = cancel if cancel is not None else (lambda: False)

    def finished(result: WellResult) -> None:
        results[result.well] = result
        if result.ok:
            manifest.set_status(result.well, "done", outputs=list(result.outputs), tables=dict(result.tables), seconds=round(result.seconds, 3))
        else:
            assert result.failure is not None
            manifest.set_status(result.well, "failed", outputs=list(result.outputs), tables={}, error=result.failure.to_dict())
        manifest.save()  # before the caller hears of it: a callback that raises cannot leave the well unrecorded
        bar.well_done(result.well, result.ok, result.seconds, result.failure.error if result.failure else "")
        if on_well is not None:
            on_well(result)

    def started_well(well: str) -> None:
        manifest.set_status(well, "running")
        manifest.save()

    try:
        if todo and scheduler is not None:
            _run_dask(contexts, todo, plate_obj, scheduler, started_well, finished, cancelled)
        elif todo and local:
            for well in todo:
                if cancelled():
                    break
                started_well(well)
                finished(run_well(contexts[well], on_step=bar.step))
        elif todo:
            _run_pool(contexts, todo, plate_obj, n_workers, started_well, finished, bar, cancelled)
    finally:
        bar.close()

    order = list(plate_obj.wells)
    report.cancelled = [w for w in order if w in todo and w not in results]
    for well in report.cancelled:
        manifest.set_status(well, "pending", outputs=[], tables={})
    report.succeeded = [w for w in order if w in results and results[w].ok]
    report.failed = {w: results[w].failure for w in order if w in results and results[w].failure is not None}  # type: ignore[misc]
    report.tables = merge_tables(out_root, order, manifest, parent_fm)
    manifest.data["tables"] = {name: path.name for name, path in report.tables.items()}
    manifest.save()
    report.seconds = time.perf_counter() - started
    return report


def _zarr_config(contexts: dict[str, Any]) -> Any:
    """The run's OME-Zarr store config (every well's last plan names the same one), or ``None`` for TIFF output."""
    first = next(iter(contexts.values()), None)
    plans = first.plans() if first is not None else []
    if plans and plans[-1].zarr_config:
        return plans[-1].zarr_config
    return None


def _prepare_zarr_store(contexts: dict[str, Any], plate: Any, fm: Any, *, fresh: bool) -> None:
    """Create the plate store's metadata here, once, before any worker starts.

    Workers then only add the arrays of the well they run, inside that well's
    own group, so no two processes write the same metadata and no lock is
    needed. A fresh run starts from an empty store; a resumed run keeps it.
    """
    from ..vfs import create_plate_metadata

    config = _zarr_config(contexts)
    if config is None:
        return
    store = Path(config["store_path"])
    layout = plate_layout(config, plate.format_name)
    if fresh and store.exists():
        fm.delete(store, "disk")
    try:
        create_plate_metadata(store, layout)
    except FileExistsError:
        raise ValueError(
            f"the plate store {store} was made for another plate layout; run into a new output folder, "
            "or without resume to start again"
        ) from None


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


@dataclass
class _Worker:
    process: Any
    conn: Any
    well: str | None = None
    started: bool = False  # the well's first step began (so a death is the well's doing)


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped without an exit status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the system may have run out of memory)" if -exitcode == signal.SIGKILL else ""
        return f"it was killed by {name}{hint}"
    return f"it exited with status {exitcode}"


def _run_pool(
    contexts: dict[str, Any],
    todo: list[str],
    plate: Any,
    n_workers: int,
    started_well: Any,
    finished: Any,
    bar: Progress,
    cancelled: Callable[[], bool],
) -> None:
    """Run wells in ``n_workers`` processes, one well per worker at a time.

    A worker that dies (killed, out of memory, ``os._exit`` in a function)
    fails only the well it was running; a new worker takes its place for the
    wells still waiting. A well whose worker died before its first step began
    is given to another worker once. On cancel, busy workers are terminated and
    their wells left unfinished.
    """
    from multiprocessing.connection import wait

    mp = _pool_context()
    plate_blob = pickle.dumps(plate, protocol=pickle.HIGHEST_PROTOCOL)
    waiting = list(reversed(todo))
    retried: set[str] = set()
    workers: list[_Worker] = []

    def spawn() -> _Worker:
        parent_end, child_end = mp.Pipe()
        process = mp.Process(target=_worker_main, args=(child_end, plate_blob), name="plateflow-worker", daemon=True)
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        workers.append(worker)
        return worker

    def give_work(worker: _Worker) -> None:
        worker.well, worker.started = None, False
        if not waiting or cancelled():
            _stop(worker)
            return
        well = waiting.pop()
        worker.well = well
        started_well(well)
        try:
            worker.conn.send((well, pack_context(contexts[well])))
        except OSError:
            return  # the worker is already dead; its sentinel reports it

    def receive(worker: _Worker) -> bool:
        """Handle everything the worker sent; ``False`` once its end of the pipe is closed."""
        while True:
            try:
                if not worker.conn.poll():
                    return True
                message = worker.conn.recv()
            except (EOFError, OSError):
                return False
            if message[0] == "step":
                worker.started = True
                bar.step(*message[1:])
            else:
                result = message[1]
                worker.well, worker.started = None, False
                finished(result)
                if worker.process.is_alive():
                    give_work(worker)

    def bury(worker: _Worker) -> None:
        workers.remove(worker)
        worker.process.join(timeout=5)
        worker.conn.close()
        well = worker.well
        if cancelled():
            return
        # A worker that died idle (after sending its last result) lost no well, but still needs replacing.
        if well is not None and not worker.started and well not in retried:
            retried.add(well)  # it never reached its first step: not the well's fault
            waiting.append(well)
        elif well is not None:
            reason = _exit_reason(worker.process.exitcode)
            finished(_lost_well(well, f"the worker process (pid {worker.process.pid}) running this well died: {reason}"))
        if waiting and not cancelled():
            give_work(spawn())  # a worker for the wells still waiting, whichever way this one ended

    try:
        for _ in range(min(n_workers, len(todo))):
            give_work(spawn())
        while any(w.well is not None for w in workers):
            busy = [w for w in workers if w.well is not None]
            if cancelled():
                for worker in busy:
                    worker.process.terminate()  # its well stays unfinished; resume redoes it
                    worker.well = None
                break
            # A timeout so that a cancel is seen while long wells run.
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.2))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                # Read first: a result sent just before the worker died still counts.
                open_pipe = receive(worker)
                if not open_pipe or worker.process.sentinel in ready:
                    bury(worker)
    finally:
        for worker in workers:
            _stop(worker)
        for worker in workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=5)
            worker.conn.close()


def _stop(worker: _Worker) -> None:
    """Ask a worker to exit once it is idle; a worker that is gone already needs nothing."""
    with contextlib.suppress(OSError):
        worker.conn.send(None)


def _lost_well(well: str, message: str) -> WellResult:
    import traceback

    return WellResult(well, failure=WellFailure(None, "", "", "", message, traceback.format_exc()))


#: Seconds the Dask client may stay disconnected from its scheduler before the wells still out are failed.
DASK_LOST_AFTER_S = 30.0


def _run_dask(
    contexts: dict[str, Any],
    todo: list[str],
    plate: Any,
    scheduler: Any,
    started_well: Any,
    finished: Any,
    cancelled: Callable[[], bool],
) -> None:
    """Run the wells on a Dask cluster; a lost scheduler fails the wells still out, it never hangs the run."""
    try:
        from distributed import Client, wait
    except ImportError:
        raise ImportError("running on a Dask cluster needs dask.distributed: pip install 'plateflow[dask]'") from None
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    address = getattr(getattr(client, "scheduler", None), "address", None) or str(scheduler)
    futures: dict[Any, str] = {}
    try:
        try:
            # One copy of the plate index per worker, not one per well.
            plate_future = client.scatter(plate, broadcast=True)
            token = uuid.uuid4().hex[:8]
            for well in todo:
                future = client.submit(_dask_run_well, pack_context(contexts[well]), plate_future, key=f"plateflow-{well}-{token}", pure=False)
                futures[future] = well
                started_well(well)
        except (OSError, TimeoutError, RuntimeError, ValueError) as error:
            for well in todo:
                finished(_lost_well(well, f"could not send the well to the Dask scheduler at {address}: {type(error).__name__}: {error}"))
            return
        pending = dict(futures)
        disconnected_since: float | None = None
        lost: list[bool] = []

        def scheduler_lost() -> bool:
            """Whether the client lost its scheduler; asked once, when the first task comes back cancelled
            (a closing scheduler cancels its tasks a moment before the connection drops)."""
            if not lost:
                deadline = time.monotonic() + 2.0
                while client.status == "running" and time.monotonic() < deadline:
                    time.sleep(0.05)
                lost.append(client.status != "running")
            return lost[0]

        while pending:
            if cancelled():
                client.cancel(list(pending))  # their wells stay unfinished; resume redoes them
                return
            # Nothing finished in time, or futures were cancelled (a lost scheduler): both show in their states below.
            with contextlib.suppress(TimeoutError, CancelledError):
                wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            done = [future for future in pending if future.done() or future.cancelled()]
            for future in done:
                well = pending.pop(future)
                try:
                    result = future.result()
                except Exception as error:  # a lost worker, a cancelled task or a failed transfer: this well failed, the run goes on
                    where = f"the well did not finish on the Dask cluster at {address}"
                    if future.cancelled() and scheduler_lost():
                        where = f"lost the connection to the Dask scheduler at {address}, so the well did not finish"
                    result = _lost_well(well, f"{where}: {type(error).__name__}: {error}")
                finished(result)
            if done:
                continue
            if client.status == "running":
                disconnected_since = None
                continue
            disconnected_since = disconnected_since or time.monotonic()
            if time.monotonic() - disconnected_since > DASK_LOST_AFTER_S:
                for future, well in pending.items():
                    finished(_lost_well(well, f"lost the connection to the Dask scheduler at {address} "
                                              f"(client status {client.status!r} for {DASK_LOST_AFTER_S:.0f} s); the well may not have finished"))
                return
    finally:
        if own:
            client.close(timeout=10)
