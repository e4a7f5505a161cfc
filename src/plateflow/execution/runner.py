"""Run a pipeline on a whole plate: ``run(pipeline, plate, out, ...) -> RunReport``.

The pipeline is compiled first (a ``CompileError`` stops everything before
any well runs). Wells then run in worker processes (``workers=N``), in this
process (``workers=1``, the synchronous debugging mode), or on a Dask cluster
(``scheduler=`` an address or a ``distributed.Client``). Each worker receives
the plate folder's path once, when it starts; each well ships only its
compiled plans. There is one scheduling loop (``_run_wells``) over the
:class:`~plateflow.execution.executors.Executor` interface.

The parent alone writes the manifest and merges the measurement tables, so a
run killed at any moment leaves a manifest that lists exactly the finished
wells, and ``resume=True`` picks up from there. Before anything is written,
the output folder is checked against the plate by folder identity (a mount or
link of the plate is the plate) and locked (:class:`OutputLock`) against a
second run. SIGINT and SIGTERM stop the workers, save the manifest and raise
:class:`RunInterrupted`.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import GlobalConfig
from .executors import (
    DASK_LOST_AFTER_S,
    DaskExecutor,
    Executor,
    InProcessExecutor,
    ProcessPoolExecutor,
    WellDone,
    WellReturned,
    _worker_main,  # noqa: F401  (kept importable here: tests wrap the worker's main function)
    lost_well,
    plate_reference,
)
from .lock import OutputLock, OutputLockedError
from .manifest import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    Manifest,
    ManifestError,
    clear_state,
    delete_recorded,
    describe_pipeline,
    merge_tables,
    plate_identity,
    record_files,
    record_tables,
    remove_partial_files,
)
from .progress import Progress
from .well import WellFailure, WellResult, new_filemanager, pack_context, plate_layout

__all__ = [
    "RunReport",
    "run",
    "RunInterrupted",
    "OutputFolderError",
    "OutputLockedError",
    "WorkersUnreachableError",
    "ManifestError",
    "DASK_LOST_AFTER_S",
]


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
        notes: things people should know that are not failures: files left alone
            (changed since plateflow wrote them, outside the folder), wells redone
            because their outputs changed, a stale lock taken over.
        interrupted: the signal that stopped the run (``"SIGTERM"``), or ``""``.
        plate_steps: plate step key (``"01_illumination-field"``) -> what it used and made:
            ``sample_wells``, ``sample_sites``, ``files``, ``digest``, and ``reused`` (taken from
            the earlier run on resume). A failing plate step is ``failed["plate"]``; no well runs then.
    """

    outputs: Path
    manifest: Path
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, WellFailure] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    interrupted: str = ""
    plate_steps: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        for note in self.notes:
            lines.append(f"  note: {note}")
        for name, path in self.tables.items():
            lines.append(f"  table {name}: {path}")
        return "\n".join(lines)


# -- safety of the output folder ---------------------------------------------------------


class OutputFolderError(ValueError):
    """The output folder is unusable: it is (or holds) the input plate, or holds another plate's run."""


def check_output_folder(plate_root: Path, out: Path) -> None:
    """Refuse an output folder that is the plate, lies inside it, or holds it, by folder identity.

    Compared by ``(st_dev, st_ino)``, not by name, so a bind mount, a symlink
    or any other path to the plate is refused before anything is written.
    """
    from ..vfs.backends.disk import folder_identities, identity, protected_ancestor

    plate_id = folder_identities(plate_root)
    real_out = Path(os.path.realpath(out))
    found = protected_ancestor(out, plate_id)
    if found is not None or real_out == plate_root.resolve() or plate_root.resolve() in real_out.parents:
        raise OutputFolderError(f"the output folder {out} is inside the plate {plate_root} (the same folder, a mount "
                                "or a link of it); the plate is read-only, choose another folder")
    holds_plate_by_name = real_out in plate_root.resolve().parents
    # By identity too, once the folder exists (a link or mount above the plate has another name).
    holds_plate_by_identity = out.is_dir() and protected_ancestor(plate_root, {identity(out): out}) is not None
    if holds_plate_by_name or holds_plate_by_identity:
        raise OutputFolderError(f"the plate {plate_root} is inside the output folder {out}; choose an output folder outside the plate")


# -- the run ----------------------------------------------------------------------


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM; ``report`` says what was done.

    The manifest was saved first: ``resume=True`` (``--resume``) finishes the plate.
    """

    def __init__(self, signal_name: str, report: RunReport) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.report = report

    def __str__(self) -> str:
        done = len(self.report.succeeded) + len(self.report.skipped)
        return (f"stopped by {self.signal_name}: {done} well(s) done, {len(self.report.failed)} failed, "
                f"{len(self.report.cancelled)} not finished; the workers were stopped and the manifest "
                f"{self.report.manifest} is saved: run again with resume (--resume) to finish the plate")


class WorkersUnreachableError(RuntimeError):
    """User code cannot be sent to worker processes or a cluster; the message says what to change."""


def _well_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"well_timeout={value!r} is not valid; use a number of seconds > 0, or None for no limit")
    return float(value)


def _main_module_guarded() -> bool:
    """False when ``run()`` is being called while the main script itself is imported outside
    ``if __name__ == "__main__":`` (so worker processes that import the script would run it again)."""
    import ast
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(getattr(main, "__spec__", None), "name", None):
        return True
    frame: Any = sys._getframe()
    line = None
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
            break
        frame = frame.f_back
    if line is None:
        return True
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            end = getattr(node, "end_lineno", node.lineno) or node.lineno
            if node.lineno <= line <= end:
                return True
    return False


def _start_method(blobs: Mapping[str, bytes]) -> tuple[str | None, str]:
    """The start method worker processes need (``None``: the default), or why none works.

    Worker processes started by ``spawn`` or the fork server import the main
    script again. That fails, or runs the whole script again, when there is no
    ``if __name__ == "__main__":`` guard or the script came from stdin; and a
    function defined in ``python -c`` code or a notebook does not exist there.
    ``fork`` copies this process instead, so all of these work where it exists.
    Returns ``(method, "")``, or ``(None, problem)`` when nothing can work.
    """
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    has_spec = bool(getattr(getattr(main, "__spec__", None), "name", None))
    uses_main = any(b"__main__" in blob for blob in blobs.values())
    problem = ""
    if not has_spec and path is not None and not os.path.isfile(path):
        problem = f"the main script comes from {path} (not a file), so worker processes cannot import it"
    elif not has_spec and path is not None and not _main_module_guarded():
        problem = (f"{path} calls plateflow's run() outside `if __name__ == \"__main__\":`, so each worker "
                   "process would run the whole script again")
    elif not has_spec and path is None and uses_main:
        problem = "the pipeline uses functions defined in the interactive session (a notebook or python -c), which worker processes do not have"
    if not problem:
        return None, ""
    if "fork" in multiprocessing.get_all_start_methods() and sys.platform.startswith("linux"):
        return "fork", ""
    return None, (f"{problem}. Put the run under `if __name__ == \"__main__\":` in a script file, move your "
                  "functions into a module, or run with workers=1 (--workers 1)")


def _pack_all(contexts: Mapping[str, Any], wells: Sequence[str]) -> tuple[dict[str, bytes], str]:
    """Every well's packed plans, or ``({}, why)`` when they cannot be pickled for a worker."""
    blobs = {}
    for well in wells:
        try:
            blobs[well] = pack_context(contexts[well])
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            return {}, (f"the pipeline of well {well} cannot be sent to another process ({type(error).__name__}: {error}); "
                        "functions must be defined at the top level of a module (not lambdas or nested functions)")
    return blobs, ""


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
    well_timeout: float | None = None,
) -> RunReport:
    """Run ``pipeline`` on every well of ``plate`` (or ``wells``), writing results under ``out``.

    Args:
        pipeline: a ``Pipeline`` or list of steps.
        plate: a ``Plate`` or a plate folder.
        out: the output folder (created; never the plate, inside it, or a mount or link of it).
        wells: well ids to run; all wells by default.
        workers: processes to run wells in (default ``config.num_workers``); 1 runs here, in order.
        scheduler: a Dask scheduler address or ``distributed.Client``: run the wells on that cluster.
        resume: skip wells an earlier run in ``out`` finished (and whose files still match
            their checksums); redo the others.
        config: the run's ``GlobalConfig``.
        output_format: ``"tiff"`` or ``"zarr"``, overriding ``config.output_format``.
        progress: show progress bars (tqdm) or lines on stderr.
        cancel: called often while the run goes on; once it returns ``True`` no
            more wells start, wells in worker processes or on Dask are stopped,
            and their wells are reported in ``report.cancelled`` (a later
            ``resume=True`` run does them). With ``workers=1`` the well in
            progress finishes first.
        on_well: called in this process with each well's ``WellResult`` as it finishes.
        well_timeout: seconds a well may run before its worker is stopped and the
            well failed (a stuck or stopped worker); with ``workers=1`` the wells
            then run in one worker process, which can be stopped.

    Raises:
        CompileError: the pipeline has errors; nothing ran.
        ValueError: bad arguments, ``resume`` with a different pipeline or plate,
            a damaged manifest (``ManifestError``), an output folder that is the plate.
        OutputLockedError: another run is writing to ``out``.
        WorkersUnreachableError: the pipeline cannot reach worker processes or the cluster.
        RunInterrupted: SIGINT or SIGTERM stopped the run (a ``KeyboardInterrupt``; the manifest is saved).
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
    timeout = _well_timeout(well_timeout)
    plate_obj = as_plate(plate)
    out_root = Path(os.path.abspath(os.fspath(out)))
    check_output_folder(Path(plate_obj.root), out_root)

    local = scheduler is None and n_workers == 1 and timeout is None
    parent_fm = new_filemanager(plate_obj)
    contexts = compile_pipeline(
        pipeline, plate_obj, wells, config, output_root=str(out_root), filemanager=parent_fm if local else None
    )
    selected = list(contexts)
    blobs: dict[str, bytes] = {}
    start_method: str | None = None
    if not local:
        blobs, problem = _pack_all(contexts, selected)
        if not problem:
            start_method, problem = _start_method(blobs) if scheduler is None else (None, "")
        if problem and (scheduler is not None or timeout is not None):
            raise WorkersUnreachableError(problem + ("; a Dask cluster needs them too" if scheduler is not None else ""))
        if problem:
            warnings.warn(f"{problem}; running the wells in this process instead", RuntimeWarning, stacklevel=2)
            local = True
    pipeline_record = describe_pipeline(pipeline)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(error.errno, f"cannot create the output folder {out_root}: {error.strerror or error}") from error
    check_output_folder(Path(plate_obj.root), out_root)  # again, now that it exists: a mount on it counts

    with OutputLock(out_root) as lock:
        report = RunReport(outputs=out_root, manifest=out_root / MANIFEST_NAME)
        if lock.stale is not None:
            report.notes.append(f"took over the lock of an earlier run that is gone (pid {lock.stale.get('pid')})")
        manifest = _prepare(out_root, plate_obj, contexts, selected, config, pipeline_record, resume, parent_fm, report)
        if not _run_plate_steps(contexts, manifest, report, parent_fm, resume=resume):
            report.seconds = time.perf_counter() - started
            return report
        todo = [w for w in selected if w not in report.skipped]
        _run_wells(
            contexts, blobs, todo, plate_obj, manifest, report,
            local=local, n_workers=n_workers, scheduler=scheduler, start_method=start_method,
            timeout=timeout, progress=progress, cancel=cancel, on_well=on_well, started=started,
        )
    return report


def _prepare(
    out_root: Path,
    plate: Any,
    contexts: Mapping[str, Any],
    selected: list[str],
    config: GlobalConfig,
    pipeline_record: dict[str, Any],
    resume: bool,
    fm: Any,
    report: RunReport,
) -> Manifest:
    """Check an earlier run in ``out_root`` against this one, clean up what may be deleted, and
    return the manifest to record this run in (saved, every well to run marked pending)."""
    identity = plate_identity(plate)
    try:
        previous = Manifest.load(out_root, fm)
    except ManifestError:
        if resume:
            raise
        previous = None
        report.notes.append(f"the earlier manifest {out_root / MANIFEST_NAME} was damaged: a new one replaces it, "
                            "and files of the earlier run are left in place")
    if resume and previous is not None:
        _check_resumable(previous, out_root, pipeline_record, config, identity)
        manifest = previous
        earlier_wells = dict((previous.data.get("plate_identity") or {}).get("wells") or {})
        manifest.data["plate_identity"] = identity
        manifest.data["manifest_version"] = MANIFEST_VERSION
        for well in selected:
            problems = manifest.problems(well)
            if not problems and earlier_wells.get(well) != identity["wells"].get(well):
                problems = ["its input images changed (size or modification time) since it was run"]
            if not problems:
                report.skipped.append(well)
            elif manifest.wells.get(well, {}).get("status") == "done":
                shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
                report.notes.append(f"well {well} is redone: its recorded outputs no longer match ({shown})")
        remove_partial_files(out_root, fm)
        for well in selected:
            if well not in report.skipped:
                report.notes.extend(f"not deleted: {line}" for line in delete_recorded(out_root, manifest.files_of(well), fm))
        fresh_store = False
    else:
        if previous is not None:
            for well in selected:
                report.notes.extend(f"not deleted: {line}" for line in delete_recorded(out_root, previous.files_of(well), fm))
            report.notes.extend(f"not deleted: {line}" for line in delete_recorded(out_root, dict(previous.data.get("table_files") or {}), fm))
        clear_state(out_root, fm)
        manifest = Manifest.new(out_root, plate=Path(plate.root), wells=selected, config=config, pipeline=pipeline_record,
                                filemanager=fm, identity=identity)
        fresh_store = True
    for well in selected:
        if well not in report.skipped:
            manifest.set_status(well, "pending", outputs=[], tables={}, files={})
    earlier_zarr = previous is not None and previous.data.get("output_format") == "zarr"
    manifest.data["output_format"] = config.output_format
    manifest.save()  # first: a store made next is then always one a manifest records
    _prepare_zarr_store(contexts, plate, fm, fresh=fresh_store, recorded=earlier_zarr or _zarr_config(contexts) is not None)
    return manifest


def _run_plate_steps(contexts: Mapping[str, Any], manifest: Manifest, report: RunReport, fm: Any, *, resume: bool) -> bool:
    """Run the plate steps once, here, before any well (reusing an earlier run's on resume); ``False`` if one failed.

    Their values stay in ``fm``'s memory for wells run in this process; worker
    processes read each value once from the file it is written to.
    """
    first = next(iter(contexts.values()), None)
    mapping = getattr(first, "plate_plans", None) if first is not None else None
    plate_plans = tuple(mapping.values()) if mapping else ()
    if not plate_plans:
        return True
    import traceback

    from .plate_steps import PlateStepError, ensure_plate_steps, plate_step_record

    previous = dict(manifest.data.get("plate_steps") or {}) if resume else None
    try:
        results, ran = ensure_plate_steps(plate_plans, fm, output_root=str(manifest.root), previous=previous)
    except PlateStepError as error:
        report.failed["plate"] = WellFailure(error.step_index, error.step_name, error.function, error.file, str(error), traceback.format_exc(), error.group)
        manifest.data["plate_steps"] = {}
        manifest.save()
        return False
    records = {plan.key: plate_step_record(results[plan.step_id]) for plan in plate_plans}
    manifest.data["plate_steps"] = records
    report.plate_steps = {key: {**record, "reused": results[plan.step_id].reused} for (key, record), plan in zip(records.items(), plate_plans)}
    if ran and report.skipped:
        # A plate step ran again: wells made with the earlier values are redone with the new ones.
        consumers = {index for plan in plate_plans if plan.step_id in ran for indices in plan.consumers.values() for index in indices}
        redo = list(report.skipped) if consumers else []  # every well runs the same consuming steps
        for well in redo:
            report.notes.extend(f"not deleted: {line}" for line in delete_recorded(manifest.root, manifest.files_of(well), fm))
            manifest.set_status(well, "pending", outputs=[], tables={}, files={})
            report.notes.append(f"well {well} is redone: the plate step it uses ran again")
        report.skipped = [well for well in report.skipped if well not in redo]
    manifest.save()
    return True


def _check_resumable(previous: Manifest, out_root: Path, pipeline_record: dict[str, Any], config: GlobalConfig, identity: dict[str, Any]) -> None:
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
    earlier = previous.data.get("plate_identity") or {}
    earlier_name = earlier.get("name") or Path(str(previous.data.get("plate", ""))).name
    if earlier_name and earlier_name != identity["name"]:
        raise OutputFolderError(
            f"{previous.path} records a run of the plate {earlier_name!r} ({previous.data.get('plate')}), not of "
            f"{identity['name']!r} ({identity['root']}); resume it with that plate, or run this one into another output folder"
        )
    if earlier.get("names") and earlier["names"] != identity["names"]:
        raise OutputFolderError(
            f"the plate {identity['root']} is not the one {previous.path} records: it has other files "
            f"({earlier.get('files', '?')} image and metadata files then, {identity['files']} now); "
            "run it without resume to start again, or into another output folder"
        )


def _run_wells(
    contexts: Mapping[str, Any],
    blobs: Mapping[str, bytes],
    todo: list[str],
    plate: Any,
    manifest: Manifest,
    report: RunReport,
    *,
    local: bool,
    n_workers: int,
    scheduler: Any,
    start_method: str | None,
    timeout: float | None,
    progress: bool,
    cancel: Callable[[], bool] | None,
    on_well: Callable[[WellResult], None] | None,
    started: float,
) -> None:
    """The one scheduling loop: hand wells to the executor, record what comes back."""
    out_root = manifest.root
    bar = Progress(len(todo), enabled=progress)
    results: dict[str, WellResult] = {}
    cancelled = cancel if cancel is not None else (lambda: False)
    stop: dict[str, int] = {}
    in_flight: dict[str, float] = {}
    waiting = deque(todo)

    def finished(result: WellResult, files: Mapping[str, Any]) -> None:
        results[result.well] = result
        in_flight.pop(result.well, None)
        if result.ok:
            manifest.set_status(result.well, "done", outputs=list(result.outputs), tables=dict(result.tables),
                                files=dict(files), seconds=round(result.seconds, 3))
        else:
            assert result.failure is not None
            manifest.set_status(result.well, "failed", outputs=list(result.outputs), tables={}, files=dict(files),
                                error=result.failure.to_dict())
        manifest.save()  # before the caller hears of it: a callback that raises cannot leave the well unrecorded
        bar.well_done(result.well, result.ok, result.seconds, result.failure.error if result.failure else "")
        if on_well is not None:
            on_well(result)

    def new_executor() -> Executor:
        if scheduler is not None:
            return DaskExecutor(blobs, plate_reference(plate), scheduler, limit_in_flight=timeout is not None)
        if local:
            return InProcessExecutor(contexts, on_step=bar.step)
        return ProcessPoolExecutor(blobs, plate_reference(plate), n_workers, on_step=bar.step, start_method=start_method)

    executor: Executor | None = None
    previous_handlers: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.setdefault("signal", signum)
        if isinstance(executor, InProcessExecutor):
            raise KeyboardInterrupt  # the well in progress here stops now; its atomic writes leave nothing half-written

    if todo and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, on_signal)
    try:
        executor = new_executor() if todo else None  # none when every well is done already (resume)
        try:
            while executor is not None and (waiting or in_flight) and "signal" not in stop:
                if cancelled():
                    break
                while waiting and executor.free_slots() > 0 and "signal" not in stop and not cancelled():
                    well = waiting.popleft()
                    manifest.set_status(well, "running")
                    manifest.save()
                    in_flight[well] = time.monotonic()
                    executor.submit(well)
                for event in executor.poll(0.2):
                    if isinstance(event, WellReturned):
                        in_flight.pop(event.well, None)
                        waiting.appendleft(event.well)
                    else:
                        finished(event.result, _files_of(event, out_root))
                if timeout is not None:
                    now = time.monotonic()
                    for well, since in list(in_flight.items()):
                        if now - since > timeout:
                            executor.abandon(well)
                            finished(lost_well(well, f"the well did not finish within the well timeout of {timeout:g} s "
                                                     "(a stuck or stopped worker); its worker was stopped"), {})
        except KeyboardInterrupt:
            stop.setdefault("signal", signal.SIGINT)
        finally:
            if executor is not None:
                executor.shutdown(now=bool(in_flight) or "signal" in stop or cancelled())
    finally:
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        bar.close()

    order = list(plate.wells)
    report.cancelled = [w for w in order if w in todo and w not in results]
    for well in report.cancelled:
        manifest.set_status(well, "pending", outputs=[], tables={}, files={})
    report.succeeded = [w for w in order if w in results and results[w].ok]
    report.failed = {w: results[w].failure for w in order if w in results and results[w].failure is not None}  # type: ignore[misc]
    report.tables = merge_tables(out_root, order, manifest, manifest.fm)
    record_tables(manifest, report.tables)
    manifest.save()
    report.seconds = time.perf_counter() - started
    if "signal" in stop:
        report.interrupted = signal.Signals(stop["signal"]).name
        raise RunInterrupted(report.interrupted, report)


def _files_of(event: WellDone, out_root: Path) -> Mapping[str, Any]:
    """The sizes and checksums of the well's files: from the worker that wrote them, or measured here."""
    if event.files is not None:
        return event.files
    result = event.result
    return record_files(out_root, list(result.outputs) + list(result.tables.values()), well=result.well)


def _zarr_config(contexts: Mapping[str, Any]) -> Any:
    """The run's OME-Zarr store config (every well's last plan names the same one), or ``None`` for TIFF output."""
    first = next(iter(contexts.values()), None)
    plans = first.plans() if first is not None else []
    if plans and plans[-1].zarr_config:
        return plans[-1].zarr_config
    return None


def _prepare_zarr_store(contexts: Mapping[str, Any], plate: Any, fm: Any, *, fresh: bool, recorded: bool) -> None:
    """Create the plate store's metadata here, once, before any worker starts.

    Workers then only add the arrays of the well they run, inside that well's
    own group, so no two processes write the same metadata and no lock is
    needed. A fresh run starts from an empty store; a resumed run keeps it.
    A store that no manifest in the folder records as plateflow's is left alone
    and the run refused.
    """
    from ..vfs import create_plate_metadata

    config = _zarr_config(contexts)
    if config is None:
        return
    store = Path(config["store_path"])
    layout = plate_layout(config, plate.format_name)
    if fresh and store.exists():
        if not recorded:
            raise OutputFolderError(
                f"{store} exists, and no plateflow manifest in {store.parent} records writing it; it is left alone. "
                "Remove it, or choose another output folder"
            )
        fm.delete(store, "disk")
    try:
        create_plate_metadata(store, layout)
    except FileExistsError:
        raise ValueError(
            f"the plate store {store} was made for another plate layout; run into a new output folder, "
            "or without resume to start again"
        ) from None
