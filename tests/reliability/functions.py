"""Step functions for the reliability tests (module level, so worker processes can import them).

Fault injectors take a ``marker`` file path: the fault happens only while the
marker exists, and the first call that removes it is the one that faults
(``os.unlink`` succeeds for exactly one process). So exactly one well is hit,
and a resumed run with the same pipeline (same keyword values) runs clean.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from plateflow import special_outputs
from plateflow.memory import numpy


def _claim(marker: str) -> bool:
    """True for the one caller that removes ``marker``."""
    if not marker:
        return False
    try:
        os.unlink(marker)
    except FileNotFoundError:
        return False
    return True


@numpy
def half(stack):
    return stack.astype(np.float32) * np.float32(0.5)


@special_outputs("site_stats", materialize=True)
@numpy
def site_stats(stack):
    rows = [{"slice": i, "mean": float(plane.mean()), "max": float(plane.max())} for i, plane in enumerate(stack)]
    return stack, rows


@numpy
def raise_memory_error(stack, marker: str = ""):
    if _claim(marker):
        raise MemoryError("simulated: could not allocate 64.0 GiB for an array")
    return stack


@numpy
def exit_worker(stack, marker: str = ""):
    """Ends the process running it without cleanup, as a crash in native code would."""
    if _claim(marker):
        os._exit(3)
    return stack


@numpy
def kill_self(stack, marker: str = ""):
    """SIGKILLs the process running it, as the kernel's out-of-memory killer does."""
    if _claim(marker):
        os.kill(os.getpid(), signal.SIGKILL)
    return stack


@numpy
def pause(stack, seconds: float = 0.0, started: str = ""):
    """Sleeps, after writing ``<started>/<pid>`` so a test can find (and kill) the process running it."""
    if started:
        Path(started).mkdir(parents=True, exist_ok=True)
        (Path(started) / str(os.getpid())).touch()
    time.sleep(seconds)
    return stack


@numpy
def vanish_plate(stack, plate: str = "", marker: str = ""):
    """Renames the input plate folder away the first time it runs (the plate vanishes mid-run)."""
    if _claim(marker):
        os.rename(plate, plate + ".gone")
    return stack


@numpy
def stop_self(stack, marker: str = ""):
    """SIGSTOPs the process running it (a worker frozen by a debugger or by job control),
    after writing its pid to ``<marker>.pid``."""
    if _claim(marker):
        Path(marker + ".pid").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGSTOP)
    return stack
