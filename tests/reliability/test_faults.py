"""Faults while a run is going: the run killed, a worker killed or out of memory, the Dask scheduler lost.

Each test ends the same way: every well that finished is intact (its outputs
equal a clean run's), the wells that did not are reported with the reason,
and ``resume=True`` completes the plate with outputs identical to a clean
run. The fault injectors live in ``functions.py``; a fault happens once (see
its module docstring), so the resumed run with the same pipeline runs clean.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.library import registry

from . import functions as f
from .conftest import WELLS, assert_same_as_clean_run, assert_wells_match, images, leftovers, pipeline, wait_for

REPO = Path(__file__).resolve().parents[2]


def _manifest(out: Path) -> dict:
    try:
        return json.loads((out / "plateflow-manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # not written yet (it is replaced atomically, so never half-written)


def _statuses(out: Path) -> dict[str, str]:
    return {well: entry["status"] for well, entry in _manifest(out).get("wells", {}).items()}


# -- the whole run killed ---------------------------------------------------------------

_CLI = (
    "import sys; from plateflow.library import registry; from tests.reliability import functions; "
    "registry.register(functions.pause, name='numpy.test_pause'); "
    "from plateflow.cli import main; sys.exit(main(sys.argv[1:]))"
)

_PIPELINE_FILE = """\
plateflow: 1
name: killed
steps:
- name: Project
  function: numpy.max_projection
  variable_components: [z_index]
- name: Pause
  function: [numpy.test_pause, {seconds: 0.3}]
  variable_components: [site]
- name: Count
  function: [numpy.measure_nuclei, {sigma: 1.0}]
  variable_components: [site]
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", _CLI, *args]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_of_the_whole_run_then_resume(make_plate, tmp_path):
    """The CLI run (parent and workers, one process group) is SIGKILLed once a well is done."""
    plate = make_plate()
    pipeline_file = tmp_path / "killed.yaml"
    pipeline_file.write_text(_PIPELINE_FILE)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        _cli("run", str(pipeline_file), str(plate), "-o", str(out), "--workers", "2", "--quiet"),
        cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "done" in _statuses(out).values() or process.poll() is not None, what="a finished well")
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    statuses = _statuses(out)
    done = tuple(w for w, s in statuses.items() if s == "done")
    assert done and len(done) < len(WELLS), statuses

    clean = tmp_path / "clean"
    steps = [
        FunctionStep(registry.get("numpy.max_projection"), name="Project", variable_components=("z_index",)),
        FunctionStep((registry.get("numpy.measure_nuclei"), {"sigma": 1.0}), name="Count", variable_components=("site",)),
    ]
    assert run(steps, plate, clean, workers=1, progress=False).ok
    got, expected = images(out, done), images(clean, done)
    assert sorted(got) == sorted(expected)
    for relpath, data in expected.items():
        np.testing.assert_array_equal(got[relpath], data)

    resumed = subprocess.run(
        _cli("run", str(pipeline_file), str(plate), "-o", str(out), "--workers", "2", "--quiet", "--resume"),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(done)} skipped" in resumed.stdout
    got, expected = images(out), images(clean)
    assert sorted(got) == sorted(expected)
    for relpath, data in expected.items():
        np.testing.assert_array_equal(got[relpath], data)
    for table in ("object_counts.csv", "object_measurements.csv"):
        assert (out / table).read_bytes() == (clean / table).read_bytes()
    assert not leftovers(out)


# -- one worker killed or dying -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_sigkill_of_one_worker_mid_well(make_plate, reference, tmp_path):
    plate = make_plate()
    started = tmp_path / "started"
    steps = pipeline(FunctionStep((f.pause, {"seconds": 0.4, "started": str(started)}), name="Pause", variable_components=("site",)))
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_first_worker() -> None:
        wait_for(lambda: started.is_dir() and any(started.iterdir()), what="a worker in the Pause step")
        pid = int(next(started.iterdir()).name)
        workers = {child.pid for child in psutil.Process().children(recursive=True)}
        assert pid in workers, (pid, workers)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    report = run(steps, plate, out, workers=2, progress=False)
    killer.join(timeout=10)
    assert killed
    assert len(report.failed) == 1 and len(report.succeeded) == 2, report.summary()
    (well, failure), = report.failed.items()
    assert f"pid {killed[0]}" in failure.error and "killed by SIGKILL" in failure.error
    assert _statuses(out)[well] == "failed"
    assert_wells_match(out, reference, tuple(report.succeeded))
    resumed = run(steps, plate, out, workers=2, resume=True, progress=False)
    assert resumed.succeeded == [well] and sorted(resumed.skipped) == sorted(report.succeeded)
    assert_same_as_clean_run(out, reference)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("injector", "says"),
    [
        (f.raise_memory_error, "MemoryError: simulated: could not allocate 64.0 GiB"),
        (f.exit_worker, "died: it exited with status 3"),
        (f.kill_self, "died: it was killed by SIGKILL (the system may have run out of memory)"),
    ],
    ids=["MemoryError", "os._exit", "self-SIGKILL"],
)
def test_worker_out_of_memory_or_dying_fails_only_its_well(make_plate, reference, tmp_path, injector, says):
    plate = make_plate()
    marker = tmp_path / "fault"
    marker.touch()
    steps = pipeline(FunctionStep((injector, {"marker": str(marker)}), name="Fault", variable_components=("site",)))
    out = tmp_path / "out"
    report = run(steps, plate, out, workers=2, progress=False)
    assert not marker.exists()
    assert len(report.failed) == 1 and len(report.succeeded) == 2, report.summary()
    (well, failure), = report.failed.items()
    assert says in failure.error
    if injector is f.raise_memory_error:
        assert failure.step_name == "Fault" and failure.function == "raise_memory_error"
    assert_wells_match(out, reference, tuple(report.succeeded))
    assert not leftovers(out)
    resumed = run(steps, plate, out, workers=2, resume=True, progress=False)
    assert resumed.succeeded == [well], resumed.summary()
    assert_same_as_clean_run(out, reference)


def test_memory_error_in_process_with_one_worker(make_plate, reference, tmp_path):
    plate = make_plate()
    marker = tmp_path / "fault"
    marker.touch()
    steps = pipeline(FunctionStep((f.raise_memory_error, {"marker": str(marker)}), name="Fault", variable_components=("site",)))
    report = run(steps, plate, tmp_path / "out", workers=1, progress=False)
    assert list(report.failed) == ["A01"] and report.succeeded == ["A02", "B01"]
    assert "MemoryError" in report.failed["A01"].error and "well A01" in report.failed["A01"].error
    resumed = run(steps, plate, tmp_path / "out", workers=1, resume=True, progress=False)
    assert resumed.succeeded == ["A01"]
    assert_same_as_clean_run(tmp_path / "out", reference)


# -- every Dask worker lost -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_every_dask_worker_gone_mid_run_fails_the_wells_out_with_a_resume_hint(make_plate, reference, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from plateflow.execution import executors

    monkeypatch.setattr(executors, "DASK_LOST_AFTER_S", 2.0)  # how long a cluster may have no worker before its wells fail
    plate = make_plate()
    steps = pipeline(FunctionStep((f.pause, {"seconds": 1.0}), name="Pause", variable_components=("site",)))
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nworkers", "1", "--nthreads", "1", "--no-nanny"],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def kill_worker() -> None:
        wait_for(lambda: "running" in _statuses(out).values(), what="a well running on the worker", timeout=60)
        worker.kill()  # SIGKILL: the worker and the well it runs are gone at once, no nanny starts it again

    killer = threading.Thread(target=kill_worker, daemon=True)
    try:
        with distributed.Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            killer.start()
            started = time.monotonic()
            report = run(steps, plate, out, scheduler=client, progress=False)
            elapsed = time.monotonic() - started
    finally:
        killer.join(timeout=60)
        worker.kill()
        worker.wait(timeout=30)
        cluster.close()
    assert report.failed and elapsed < 60, report.summary()
    for well, failure in report.failed.items():
        assert f"every Dask worker of {cluster.scheduler_address} is gone" in failure.error, failure.error
        assert "start workers and resume" in failure.error
    assert {w: s for w, s in _statuses(out).items() if w in report.failed} == {w: "failed" for w in report.failed}
    if report.succeeded:  # wells the worker finished before it went (none, when it had one in hand)
        assert_wells_match(out, reference, tuple(report.succeeded))
    resumed = run(steps, plate, out, workers=1, resume=True, progress=False)
    assert sorted(resumed.succeeded) == sorted(report.failed) and resumed.skipped == report.succeeded
    assert_same_as_clean_run(out, reference)


# -- the Dask scheduler lost -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_dask_scheduler_lost_mid_run(make_plate, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    plate = make_plate()
    steps = pipeline(FunctionStep((f.pause, {"seconds": 0.3}), name="Pause", variable_components=("site",)))
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    closed = threading.Event()

    def close_scheduler() -> None:
        wait_for(lambda: "done" in _statuses(out).values(), what="a finished well")
        cluster.close()
        closed.set()

    closer = threading.Thread(target=close_scheduler, daemon=True)
    closer.start()
    started = time.monotonic()
    try:
        report = run(steps, plate, out, scheduler=cluster.scheduler_address, progress=False)
    finally:
        closer.join(timeout=30)
        cluster.close()
    assert closed.is_set()
    assert time.monotonic() - started < 60
    assert report.succeeded and report.failed, report.summary()
    for failure in report.failed.values():
        assert f"lost the connection to the Dask scheduler at {cluster.scheduler_address}" in failure.error, failure.error
        assert "the well did not finish" in failure.error
    assert {w: s for w, s in _statuses(out).items() if w in report.failed} == {w: "failed" for w in report.failed}
    assert_wells_match(out, reference, tuple(report.succeeded))
    resumed = run(steps, plate, out, workers=1, resume=True, progress=False)
    assert sorted(resumed.succeeded) == sorted(report.failed) and resumed.skipped == report.succeeded
    assert_same_as_clean_run(out, reference)
