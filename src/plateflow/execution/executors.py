"""Where wells run: one :class:`Executor` interface, three implementations.

``run()`` has one scheduling loop (in :mod:`plateflow.execution.runner`); it
hands wells to an executor and hears back through :meth:`Executor.poll`:

- :class:`InProcessExecutor` runs each well here, in order (``workers=1``, debugging);
- :class:`ProcessPoolExecutor` runs them in worker processes, one well per worker at
  a time, so a worker that dies fails only the well it ran;
- :class:`DaskExecutor` runs them on a ``dask.distributed`` cluster.

Workers receive each well's packed plans and the plate folder's path, never
the Plate: what a well reads is in its plans.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any, Protocol

from .._text import install_hint
from .._version import __version__
from .manifest import record_files
from .well import WellFailure, WellResult, new_filemanager, run_well, unpack_context

__all__ = [
    "Executor",
    "WellDone",
    "WellReturned",
    "Event",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "DaskExecutor",
    "lost_well",
    "plate_reference",
    "DASK_LOST_AFTER_S",
    "DaskUnavailableError",
]

StepCallback = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class WellDone:
    """A well ended (``result.failure`` says whether it failed).

    ``files``: size and SHA-256 of each file it wrote (fsynced), measured where
    it ran; ``None`` when nobody measured them (the run loop does it then).
    """

    result: WellResult
    files: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class WellReturned:
    """A well came back unstarted (its worker died before its first step): give it to a worker again."""

    well: str


Event = WellDone | WellReturned


class Executor(Protocol):
    """Runs wells; the run loop asks :meth:`free_slots`, calls :meth:`submit`, and reads :meth:`poll`."""

    def free_slots(self) -> int:
        """How many more wells can start now."""
        ...

    def submit(self, well: str) -> None:
        """Start ``well`` (its plans are known to the executor)."""
        ...

    def poll(self, timeout: float) -> list[Event]:
        """Events since the last call, waiting up to ``timeout`` seconds for the first one."""
        ...

    def abandon(self, well: str) -> None:
        """Stop ``well`` now (it ran too long); it is never reported."""
        ...

    def shutdown(self, *, now: bool) -> None:
        """Release the workers; ``now`` stops wells in flight (cancel, a signal)."""
        ...


def lost_well(well: str, message: str) -> WellResult:
    """A failed result for a well whose worker could not report one itself."""
    trace = traceback.format_exc()
    return WellResult(well, failure=WellFailure(None, "", "", "", message, "" if trace.startswith("NoneType: None") else trace))


# -- the plate, as workers see it ----------------------------------------------------------


def plate_reference(plate: Any) -> str:
    """What workers get to rebuild a well: the plate folder's path (its plans name every file)."""
    return str(plate.root)


def _context_for(blob: bytes, plate_root: str) -> Any:
    return unpack_context(blob, new_filemanager(plate_root))


def run_and_record(context: Any, *, on_step: StepCallback | None = None) -> tuple[WellResult, dict[str, Any]]:
    """Run a well, then fsync and checksum every file it wrote (where it ran: in parallel, and
    before the parent can record the well as done)."""
    from pathlib import Path

    result = run_well(context, on_step=on_step)
    root = Path(context.output_root.rstrip("/") or ".")
    try:
        files = record_files(root, list(result.outputs) + list(result.tables.values()), well=result.well)
    except OSError as error:
        failure = WellFailure(None, "", "", "", f"the well's outputs could not be synced to disk: {error}", traceback.format_exc())
        return WellResult(result.well, result.outputs, result.tables, result.failure or failure, result.seconds), {}
    return result, files


# -- in this process -----------------------------------------------------------------------


class InProcessExecutor:
    """Wells run here, one at a time, in the order submitted (the debugging mode)."""

    def __init__(self, contexts: Mapping[str, Any], *, on_step: StepCallback | None = None) -> None:
        self._contexts = contexts
        self._on_step = on_step
        self._queue: list[str] = []

    def free_slots(self) -> int:
        return 0 if self._queue else 1

    def submit(self, well: str) -> None:
        self._queue.append(well)

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        while self._queue:
            well = self._queue.pop(0)
            events.append(WellDone(*run_and_record(self._contexts[well], on_step=self._on_step)))
        return events

    def abandon(self, well: str) -> None:
        raise RuntimeError("a well running in this process cannot be stopped")

    def shutdown(self, *, now: bool) -> None:
        self._queue.clear()


# -- worker processes ----------------------------------------------------------------------


def _watch_parent() -> None:
    """End this worker soon after the process that started it is gone (no orphans)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="plateflow-parent-watch", daemon=True).start()


def _worker_main(conn: Any, plate_ref: str) -> None:
    """A worker process: run the wells the parent sends, one at a time.

    Messages to the parent: ``("step", well, index, count, name)`` before each
    step and ``("result", WellResult)`` at the end of each well. The parent
    gives each worker one well at a time, so when a worker dies it knows
    exactly which well died with it. Ctrl-C is the parent's to handle: it
    stops the workers itself, so they ignore SIGINT.
    """
    with contextlib.suppress(ValueError):  # not the main thread (cannot happen in a worker process)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()

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
        try:
            context = _context_for(blob, plate_ref)
        except Exception as error:  # the plans cannot be rebuilt here (a function this process cannot import)
            conn.send(("result", lost_well(well, f"the well's plans could not be unpacked in the worker process: "
                                                 f"{type(error).__name__}: {error}")))
            continue
        result, files = run_and_record(context, on_step=on_step)
        try:
            conn.send(("result", result, files))
        except (pickle.PicklingError, TypeError, AttributeError) as error:  # cannot happen with plain WellResults; report rather than die
            conn.send(("result", lost_well(well, f"the well's result could not be sent back: {type(error).__name__}: {error}")))


#: Modules the fork server imports once, so that each worker starts without importing them.
PRELOAD = [
    "plateflow.execution.executors", "plateflow.library.registry", "plateflow.library.numpy_functions", "plateflow.library._assay",
    "plateflow.vfs", "plateflow.memory.stacking", "numpy", "scipy.ndimage", "skimage.morphology", "skimage.filters", "tifffile",
]


def pool_context(start_method: str | None = None) -> Any:
    """The multiprocessing context workers start from: a preloaded fork server where there is one."""
    methods = multiprocessing.get_all_start_methods()
    if start_method is not None:
        return multiprocessing.get_context(start_method)
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


@dataclass
class _Worker:
    process: Any
    conn: Any
    well: str | None = None
    started: bool = False  # the well's first step began (so a death is the well's doing)


def exit_reason(exitcode: int | None) -> str:
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


class ProcessPoolExecutor:
    """``n_workers`` processes, one well each at a time.

    A worker that dies (killed, out of memory, ``os._exit`` in a function)
    fails only the well it was running; the next well gets a new worker. A
    well whose worker died before its first step began comes back as
    :class:`WellReturned` once (not the well's fault), and fails the second time.
    """

    def __init__(
        self,
        blobs: Mapping[str, bytes],
        plate_ref: str,
        n_workers: int,
        *,
        on_step: StepCallback | None = None,
        start_method: str | None = None,
    ) -> None:
        self._blobs = blobs
        self._plate_ref = plate_ref
        self._n = n_workers
        self._on_step = on_step
        self._mp = pool_context(start_method)
        self._workers: list[_Worker] = []
        self._retried: set[str] = set()

    def _target(self) -> Callable[..., None]:
        # Looked up at each start so a test can replace the worker's main function.
        from . import executors

        return executors._worker_main

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._mp.Pipe()
        process = self._mp.Process(target=self._target(), args=(child_end, self._plate_ref), name="plateflow-worker", daemon=True)
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        self._workers.append(worker)
        return worker

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.well is not None]

    def free_slots(self) -> int:
        return self._n - len(self._busy())

    def submit(self, well: str) -> None:
        idle = [w for w in self._workers if w.well is None]
        for worker in idle:
            if not worker.process.is_alive():
                self._forget(worker)
        worker = next((w for w in self._workers if w.well is None), None) or self._spawn()
        worker.well, worker.started = well, False
        try:
            worker.conn.send((well, self._blobs[well]))
        except OSError:
            pass  # the worker is already dead; its sentinel reports it

    def _forget(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        worker.process.join(timeout=5)
        worker.conn.close()

    def _receive(self, worker: _Worker, events: list[Event]) -> bool:
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
                if self._on_step is not None:
                    self._on_step(*message[1:])
            else:
                worker.well, worker.started = None, False
                events.append(WellDone(message[1], message[2] if len(message) > 2 else None))

    def _bury(self, worker: _Worker, events: list[Event]) -> None:
        self._forget(worker)
        well = worker.well
        if well is None:
            return  # it died idle (after sending its last result): it lost no well
        if not worker.started and well not in self._retried:
            self._retried.add(well)
            events.append(WellReturned(well))
        else:
            reason = exit_reason(worker.process.exitcode)
            events.append(WellDone(lost_well(well, f"the worker process (pid {worker.process.pid}) running this well died: {reason}")))

    def poll(self, timeout: float) -> list[Event]:
        from multiprocessing.connection import wait

        busy = self._busy()
        events: list[Event] = []
        if not busy:
            return events
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=timeout))
        for worker in busy:
            if worker.conn not in ready and worker.process.sentinel not in ready:
                continue
            # Read first: a result sent just before the worker died still counts.
            open_pipe = self._receive(worker, events)
            if not open_pipe or worker.process.sentinel in ready:
                self._bury(worker, events)
        return events

    def abandon(self, well: str) -> None:
        for worker in self._workers:
            if worker.well == well:
                worker.process.kill()  # SIGKILL: also ends a stopped (SIGSTOP) worker
                worker.well = None
                self._forget(worker)
                return

    def shutdown(self, *, now: bool) -> None:
        if now:
            for worker in self._busy():
                worker.process.terminate()
                worker.well = None
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)  # exit once idle
        deadline = time.monotonic() + (2.0 if now else 5.0)
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.conn.close()
        self._workers.clear()


# -- a Dask cluster ------------------------------------------------------------------------

#: Seconds the Dask client may stay disconnected from its scheduler before the wells still out are failed.
DASK_LOST_AFTER_S = 30.0


class DaskUnavailableError(RuntimeError):
    """The cluster cannot run wells: unreachable, no plateflow on its workers."""


def _dask_run_well(blob: bytes, plate_ref: str) -> tuple[WellResult, dict[str, Any]]:
    return run_and_record(_context_for(blob, plate_ref))


class DaskExecutor:
    """Wells as tasks on a Dask cluster; a lost scheduler fails the wells still out, it never hangs the run.

    Before any well is sent, every worker is asked which plateflow it has; a
    worker without it stops the run with one message saying what to install.
    """

    def __init__(self, blobs: Mapping[str, bytes], plate_ref: str, scheduler: Any, *, limit_in_flight: bool = False) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(f"running on a Dask cluster needs dask.distributed: {install_hint('distributed', 'dask')}") from None
        self._blobs = blobs
        self._pending: dict[Any, str] = {}
        self._own = not isinstance(scheduler, Client)
        try:
            self.client = Client(scheduler, timeout=30) if self._own else scheduler
        except (OSError, TimeoutError) as error:
            raise DaskUnavailableError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        self.address = getattr(getattr(self.client, "scheduler", None), "address", None) or str(scheduler)
        try:
            self._check_workers()
            self._plate = plate_ref
        except BaseException:
            self.shutdown(now=False)
            raise
        threads = sum(self.client.nthreads().values()) if limit_in_flight else 0
        self._capacity = max(threads, 1) if limit_in_flight else len(blobs) or 1
        self._token = uuid.uuid4().hex[:8]
        self._disconnected_since: float | None = None
        self._workerless_since: float | None = None
        self._workers_checked = 0.0
        self._lost: list[bool] = []

    def _check_workers(self) -> None:
        # Stdlib functions: they reach a worker that lacks plateflow, and say so.
        found = self.client.run(importlib.util.find_spec, "plateflow.execution.executors", on_error="return")
        missing = sorted(w for w, spec in found.items() if spec is None or isinstance(spec, BaseException))
        if missing:
            raise DaskUnavailableError(
                f"{len(missing)} of the {len(found)} Dask workers of {self.address} cannot import plateflow "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): install plateflow {__version__} "
                "(with the same extras) in the workers' environment, then run again"
            )
        versions = self.client.run(importlib.metadata.version, "plateflow", on_error="return")
        other = sorted({v for v in versions.values() if isinstance(v, str) and v != __version__})
        if other:
            raise DaskUnavailableError(
                f"the Dask workers of {self.address} have plateflow {', '.join(other)}, this process has {__version__}: "
                "install the same version on the workers"
            )

    def free_slots(self) -> int:
        return self._capacity - len(self._pending)

    def submit(self, well: str) -> None:
        future = self.client.submit(_dask_run_well, self._blobs[well], self._plate, key=f"plateflow-{well}-{self._token}", pure=False)
        self._pending[future] = well

    def _scheduler_lost(self) -> bool:
        """Whether the client lost its scheduler; asked once, when the first task comes back cancelled
        (a closing scheduler cancels its tasks a moment before the connection drops)."""
        if not self._lost:
            deadline = time.monotonic() + 2.0
            while self.client.status == "running" and time.monotonic() < deadline:
                time.sleep(0.05)
            self._lost.append(self.client.status != "running")
        return self._lost[0]

    def _no_workers(self) -> bool:
        try:
            return not self.client.scheduler_info().get("workers")
        except (OSError, TimeoutError, RuntimeError):
            return True

    def poll(self, timeout: float) -> list[Event]:
        from distributed import wait

        events: list[Event] = []
        if not self._pending:
            return events
        # Nothing finished in time, or futures were cancelled (a lost scheduler): both show in their states below.
        with contextlib.suppress(TimeoutError, CancelledError):
            wait(list(self._pending), timeout=timeout, return_when="FIRST_COMPLETED")
        done = [future for future in self._pending if future.done() or future.cancelled()]
        for future in done:
            well = self._pending.pop(future)
            files: Mapping[str, Any] | None = None
            try:
                result, files = future.result()
            except Exception as error:  # a lost worker, a cancelled task or a failed transfer: this well failed, the run goes on
                where = f"the well did not finish on the Dask cluster at {self.address}"
                if future.cancelled() and self._scheduler_lost():
                    where = f"lost the connection to the Dask scheduler at {self.address}, so the well did not finish"
                elif self._no_workers():
                    where = f"every Dask worker of {self.address} is gone, so the well did not finish; start workers and resume"
                result = lost_well(well, f"{where}: {type(error).__name__}: {error}")
            events.append(WellDone(result, files))
        if done:
            return events
        if self.client.status == "running":
            self._disconnected_since = None
            self._check_for_workers(events)
            return events
        self._disconnected_since = self._disconnected_since or time.monotonic()
        if time.monotonic() - self._disconnected_since > DASK_LOST_AFTER_S:
            for future, well in list(self._pending.items()):
                events.append(WellDone(lost_well(well, f"lost the connection to the Dask scheduler at {self.address} "
                                                       f"(client status {self.client.status!r} for {DASK_LOST_AFTER_S:.0f} s); "
                                                       "the well may not have finished")))
            self._pending.clear()
        return events

    def _check_for_workers(self, events: list[Event]) -> None:
        """Fail the wells still out once the cluster has had no worker for ``DASK_LOST_AFTER_S``
        (its tasks would wait forever)."""
        now = time.monotonic()
        if now - self._workers_checked < 1.0:
            return
        self._workers_checked = now
        if not self._no_workers():
            self._workerless_since = None
            return
        self._workerless_since = self._workerless_since or now
        if now - self._workerless_since > DASK_LOST_AFTER_S:
            for well in self._pending.values():
                events.append(WellDone(lost_well(well, f"every Dask worker of {self.address} is gone (none for "
                                                       f"{DASK_LOST_AFTER_S:.0f} s), so the well did not run; start workers and resume")))
            self._pending.clear()

    def abandon(self, well: str) -> None:
        for future, name in list(self._pending.items()):
            if name == well:
                self.client.cancel([future], force=True)
                del self._pending[future]

    def shutdown(self, *, now: bool) -> None:
        if now and self._pending:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                self.client.cancel(list(self._pending))  # their wells stay unfinished; resume redoes them
        self._pending.clear()
        if self._own:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                self.client.close(timeout=10)
