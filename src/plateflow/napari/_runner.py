"""Background runs for the plugin: the tuning run on the sample site, and the run on the whole plate.

**Tuning** (:class:`SampleRunController`). Requests go through a leading-edge
debounce (superqt's ``qdebounced``, ``delay_ms``): the first after a pause fires at
once, later ones within the delay fire once when they pause. When it fires, the request
source gives the pipeline, well and site, the pipeline is compiled on the main
thread (:meth:`SampleRunner.prepare`, a few milliseconds) and a napari
``thread_worker`` runs :meth:`SampleRunner.execute`, which yields each step's
output. Before a new run starts, the run in flight is cancelled (its cancel
token stops it before its next step, and the worker is asked to quit). Each run
has a generation number; a yielded output is applied on the main thread only
when its generation is the newest, so a stale run never reaches a layer. A
request equal to the run in flight (same step fingerprints, names and shown
steps) does not restart it.

**The plate** (:func:`run_plate`). One ``plateflow.run`` call runs the chosen
wells in a background thread; its ``on_well`` callback queues each finished
well and the generator yields a :class:`PlateRunProgress` for it, then a last
one with the merged tables. Cancelling makes ``run``'s ``cancel`` hook return
true: no more wells start, wells in worker processes are stopped, and the
manifest leaves them for ``resume``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal
from superqt.utils import qdebounced

from plateflow.compiler import CompileError
from plateflow.execution.sample import (
    DEFAULT_CACHE_BYTES,
    CancelToken,
    SamplePlan,
    SampleRunner,
    SampleStepFailure,
    SampleStepOutput,
)

__all__ = [
    "SampleRequest",
    "SampleRunController",
    "PlateRunProgress",
    "PlateRunError",
    "run_plate",
    "TUNING_DELAY_MS",
]

#: Debounce of tuning runs: an edit within this many ms of the one before waits for the edits to pause.
TUNING_DELAY_MS = 30


@dataclass(frozen=True)
class SampleRequest:
    """What to run: the pipeline, the sample site, and the builder's id of each compiled step.

    ``display`` holds the display settings the outputs are shown with: a request
    that differs only there still restarts the run, so every output is shown anew.
    """

    pipeline: Any
    well: str
    site: str
    step_ids: tuple[str, ...]
    display: tuple[Any, ...] = ()


@dataclass
class _ActiveRun:
    generation: int
    request: SampleRequest
    plan: SamplePlan
    token: CancelToken
    worker: Any
    key: tuple[Any, ...]
    started: float = field(default_factory=time.perf_counter)
    done: bool = False


class SampleRunController(QObject):
    """Runs the sample site in the background, one run at a time, newest wins.

    Args:
        source: called when the debounce timer fires; returns a :class:`SampleRequest`,
            or a message (``str``) saying why nothing can run now.
        delay_ms: the debounce.
        cache_bytes: the bound of the step-output cache.
        prepare: called in the worker thread on each output (e.g. stacking its planes into
            layer data), so the main thread only hands the result to napari; read it back
            on the main thread with :meth:`prepared`.

    Signals:
        run_started(object): the request of a new run.
        output_ready(object, object): (request, ``SampleStepOutput``) of the newest run.
        step_failed(object, object): (request, ``SampleStepFailure``) of the newest run.
        run_finished(object, bool): (request, whether it ran to its end).
        not_run(str): why a request did not start (no plate, compile errors, ...).
        up_to_date(object): the request equals the last finished run: its layers already show it.
    """

    run_started = Signal(object)
    output_ready = Signal(object, object)
    step_failed = Signal(object, object)
    run_finished = Signal(object, bool)
    not_run = Signal(str)
    up_to_date = Signal(object)

    def __init__(
        self,
        source: Callable[[], "SampleRequest | str"],
        parent: QObject | None = None,
        *,
        delay_ms: int = TUNING_DELAY_MS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        prepare: Callable[[SampleStepOutput], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.source = source
        self.prepare = prepare
        self._prepared: dict[int, Any] = {}
        self.cache_bytes = cache_bytes
        self.runner: SampleRunner | None = None
        self.generation = 0
        self.closed = False
        self._active: _ActiveRun | None = None
        self._pending = False
        # Leading edge: the first edit after a pause starts its run at once (no wait for the delay); edits that
        # follow within ``delay_ms`` (a slider drag, typing) are merged into one run when they pause.
        self._debounced_start = qdebounced(self._on_due, timeout=delay_ms, leading=True, parent=self)

    # -- state ------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._active is not None and not self._active.done

    @property
    def pending(self) -> bool:
        return not self.closed and self._pending

    @property
    def worker(self) -> Any:
        """The worker of the newest run (``None`` before the first)."""
        return self._active.worker if self._active is not None else None

    def set_plate(self, plate: Any) -> None:
        """Tune on another plate: a new runner (and cache); the run in flight is cancelled.

        The last run is forgotten too: its layers went with the old plate, so a request
        equal to it (the same plate opened again) must run again.
        """
        self.cancel()
        self._active = None
        if self.runner is not None:
            self.runner.close()
        self.runner = SampleRunner(plate, cache_bytes=self.cache_bytes) if plate is not None else None

    # -- requests ---------------------------------------------------------------------
    def schedule(self) -> None:
        """Start a run now, or, for a request that follows another within the delay, once requests pause."""
        if not self.closed:
            self._pending = True
            self._debounced_start()

    def _on_due(self) -> None:
        if self._pending:
            self.start_now()

    def start_now(self) -> bool:
        """Ask the source for a request and start it now; ``False`` when nothing started."""
        self._pending = False
        self._debounced_start.cancel()
        if self.closed:
            return False
        request = self.source()
        if isinstance(request, str):
            self.cancel()
            self.not_run.emit(request)
            return False
        return self.start(request)

    def start(self, request: SampleRequest) -> bool:
        if self.closed:
            return False
        if self.runner is None:
            self.not_run.emit("no plate to tune on")
            return False
        try:
            plan = self.runner.prepare(request.pipeline, request.well, request.site)
        except CompileError as error:
            self.cancel()
            self.not_run.emit(f"the pipeline has errors for well {request.well}, site {request.site}: {error}")
            return False
        except (ValueError, KeyError) as error:
            self.cancel()
            self.not_run.emit(str(error))
            return False
        key = (request.well, request.site, plan.key, tuple(s.visualize for s in request.pipeline), tuple(s.name for s in request.pipeline), request.step_ids, request.display)
        active = self._active
        if active is not None and active.key == key and not active.token.cancelled:
            if active.done:
                self.up_to_date.emit(request)  # say so: the status must not keep an older message
            return False  # the run in flight, or the last finished one, computes exactly this
        self.cancel()
        from napari.qt.threading import thread_worker

        self.generation += 1
        generation = self.generation
        token = CancelToken()
        # ignore_errors: an error is reported by _on_errored (for the newest run only), not re-raised in the event loop.
        worker = thread_worker(self._execute, start_thread=False, ignore_errors=True)(plan, token)
        self._active = _ActiveRun(generation, request, plan, token, worker, key)
        worker.yielded.connect(partial(self._on_yielded, generation))
        worker.finished.connect(partial(self._on_finished, generation))
        worker.errored.connect(partial(self._on_errored, generation))
        self.run_started.emit(request)
        worker.start()
        return True

    def cancel(self) -> None:
        """Stop the run in flight before its next step; it never reaches a layer afterwards."""
        active = self._active
        if active is None or active.done:
            return
        active.token.cancel()
        active.worker.quit()
        active.done = True
        self.generation += 1  # outputs still on their way belong to an old generation now

    def shutdown(self) -> None:
        """The viewer or the widget is going away: stop everything; touch no Qt object."""
        self.closed = True
        active = self._active
        if active is not None:
            active.token.cancel()
            active.worker.quit()
            active.done = True

    # -- worker signals (main thread) -----------------------------------------------------
    def _current(self, generation: int) -> _ActiveRun | None:
        if self.closed or generation != self.generation or self._active is None or self._active.generation != generation:
            return None
        return self._active

    def _execute(self, plan: SamplePlan, token: CancelToken) -> Iterator[tuple[Any, Any]]:
        """The runner's outputs, each with what ``prepare`` made of it (in this worker thread)."""
        runner = self.runner
        assert runner is not None  # start() checked it
        prepare = self.prepare
        for item in runner.execute(plan, token):
            extra = prepare(item) if prepare is not None and isinstance(item, SampleStepOutput) else None
            yield item, extra

    def prepared(self, output: SampleStepOutput) -> Any:
        """What ``prepare`` made of ``output`` in the worker (``None`` when nothing); once per output."""
        return self._prepared.pop(id(output), None)

    def _on_yielded(self, generation: int, pair: tuple[Any, Any]) -> None:
        item, extra = pair
        active = self._current(generation)
        if active is None:
            return
        if isinstance(item, SampleStepFailure):
            self.step_failed.emit(active.request, item)
        else:
            if extra is not None:
                self._prepared[id(item)] = extra
            try:
                self.output_ready.emit(active.request, item)
            finally:
                self._prepared.pop(id(item), None)

    def _on_errored(self, generation: int, error: Exception) -> None:
        active = self._current(generation)
        if active is None:
            return
        failure = SampleStepFailure(
            step_index=-1,
            step_id="",
            step_name="",
            step_count=len(active.plan.fingerprints),
            well=active.request.well,
            site=active.request.site,
            function="",
            message=f"{type(error).__name__}: {error}",
            traceback="".join(_format_exception(error)),
        )
        self.step_failed.emit(active.request, failure)

    def _on_finished(self, generation: int) -> None:
        active = self._current(generation)
        if active is None:
            return
        active.done = True
        self.run_finished.emit(active.request, not active.token.cancelled)


def _format_exception(error: BaseException) -> list[str]:
    import traceback

    return traceback.format_exception(type(error), error, error.__traceback__)


# -- the whole plate ------------------------------------------------------------------


class PlateRunError(Exception):
    """A ``RuntimeError`` that ``plateflow.run`` raised, handed on as another type (see :func:`run_plate`); the original is its cause."""


@dataclass(frozen=True)
class PlateRunProgress:
    """Where a run on the plate stands after a well finished.

    Attributes:
        done: wells finished so far (succeeded or failed); ``total``: wells to run.
        succeeded / failed: wells so far (``failed``: well -> ``WellFailure``).
        tables: table name -> merged CSV path (every well done so far).
        outputs: the output folder; ``seconds``: since the run started.
        finished: the run ended; ``cancelled``: it stopped early when asked.
    """

    done: int
    total: int
    succeeded: tuple[str, ...]
    failed: dict[str, Any]
    tables: dict[str, Path]
    outputs: Path
    seconds: float
    finished: bool = False
    cancelled: bool = False

    def summary(self) -> str:
        state = "cancelled" if self.cancelled else ("done" if self.finished else "running")
        text = f"{state}: {len(self.succeeded)} of {self.total} well(s) done, {len(self.failed)} failed in {self.seconds:.1f} s"
        return text


def run_plate(
    pipeline: Any,
    plate: Any,
    out: str | os.PathLike[str],
    wells: Sequence[str],
    *,
    workers: int = 1,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[PlateRunProgress]:
    """Run ``wells`` with one ``plateflow.run`` call; yield progress as each well finishes.

    Raises what ``run`` raises (``CompileError``: nothing ran; ``ValueError``/``OSError``:
    a bad output folder) once the run has ended; a ``RuntimeError`` as a :class:`PlateRunError`.
    """
    from plateflow.execution import run

    started = time.perf_counter()
    finished_wells: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}
    abandoned = threading.Event()  # the generator was closed early (napari's ``worker.quit()``)

    def cancelled() -> bool:
        return abandoned.is_set() or (cancel is not None and bool(cancel()))

    def run_in_background() -> None:
        try:
            outcome["report"] = run(
                pipeline, plate, out, wells=list(wells), workers=workers, progress=False, cancel=cancelled, on_well=finished_wells.put
            )
        except BaseException as error:  # handed to the generator, which re-raises it in the worker thread
            outcome["error"] = error
        finally:
            finished_wells.put(None)

    thread = threading.Thread(target=run_in_background, name="plateflow-plate-run", daemon=True)
    thread.start()
    succeeded: list[str] = []
    failed: dict[str, Any] = {}
    try:
        while (result := finished_wells.get()) is not None:
            if result.ok:
                succeeded.append(result.well)
            else:
                failed[result.well] = result.failure
            yield PlateRunProgress(len(succeeded) + len(failed), len(wells), tuple(succeeded), dict(failed), {}, Path(out), time.perf_counter() - started)
    finally:
        # Closed early: nobody is listening, so stop the run (as Cancel does) rather than let it
        # write on in the background; either way the run has ended when the generator has.
        abandoned.set()
        thread.join()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, RuntimeError):
            # superqt's generator worker takes a RuntimeError for "the worker was deleted": it only warns,
            # and never emits errored or finished, so the panel would wait for this run forever.
            raise PlateRunError(f"{type(error).__name__}: {error}") from error
        raise error
    report = outcome["report"]
    yield PlateRunProgress(
        done=len(report.succeeded) + len(report.failed),
        total=len(wells),
        succeeded=tuple(report.succeeded),
        failed=dict(report.failed),
        tables=dict(report.tables),
        outputs=report.outputs,
        seconds=time.perf_counter() - started,
        finished=True,
        cancelled=bool(report.cancelled),
    )
