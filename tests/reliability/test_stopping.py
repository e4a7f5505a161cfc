"""Stopping a run: SIGTERM and SIGINT stop the workers within seconds and leave a resumable
manifest; ``--well-timeout`` fails a stuck or stopped (SIGSTOP) worker's well and goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from plateflow import FunctionStep
from plateflow.execution import run

from . import functions as f
from .conftest import WELLS, assert_same_as_clean_run, pipeline, wait_for

REPO = Path(__file__).resolve().parents[2]

_CLI = (
    "import sys; from plateflow.library import registry; from tests.reliability import functions; "
    "registry.register(functions.pause, name='numpy.test_pause'); registry.register(functions.half, name='numpy.test_half'); "
    "registry.register(functions.site_stats, name='numpy.test_site_stats'); "
    "from plateflow.cli import main; sys.exit(main(sys.argv[1:]))"
)

_PIPELINE_FILE = """\
plateflow: 1
name: slow
steps:
- name: Half
  function: numpy.test_half
  variable_components: [z_index]
- name: Project
  function: numpy.max_projection
  variable_components: [z_index]
- name: Pause
  function: [numpy.test_pause, {{seconds: {seconds}, started: "{started}"}}]
  variable_components: [site]
- name: Measure
  function: numpy.test_site_stats
  variable_components: [site]
"""


def _statuses(out: Path) -> dict[str, str]:
    try:
        return {w: e["status"] for w, e in json.loads((out / "plateflow-manifest.json").read_text())["wells"].items()}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _slow_pipeline(seconds: float, started: Path) -> list[FunctionStep]:
    return pipeline(FunctionStep((f.pause, {"seconds": seconds, "started": str(started)}), name="Pause", variable_components=("site",)))


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_workers_and_leaves_a_resumable_manifest(make_plate, reference, tmp_path, signum):
    plate = make_plate()
    started = tmp_path / "started"
    pipeline_file = tmp_path / "slow.yaml"
    pipeline_file.write_text(_PIPELINE_FILE.format(seconds=30, started=started))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-c", _CLI, "run", str(pipeline_file), str(plate), "-o", str(out), "--workers", "2", "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for(lambda: started.is_dir() and len(list(started.iterdir())) >= 2, what="two wells pausing in their workers")
        workers = [psutil.Process(int(p.name)) for p in started.iterdir()]
        sent = time.monotonic()
        process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert took < 10, f"the run took {took:.1f} s to stop"
    assert process.returncode == 128 + signum, output
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in output and "--resume" in output and "Traceback" not in output, output
    wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), timeout=5, what="the workers to end")
    statuses = _statuses(out)
    assert set(statuses.values()) <= {"pending", "done"} and "pending" in statuses.values(), statuses
    # Resuming (without the pause) finishes the plate with the clean run's outputs.
    pipeline_file.write_text(_PIPELINE_FILE.format(seconds=0, started=started))
    resumed = subprocess.run(
        [sys.executable, "-c", _CLI, "run", str(pipeline_file), str(plate), "-o", str(out), "--workers", "2", "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_as_clean_run(out, reference)  # the pause step passes its images through unchanged


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_well_timeout_fails_a_stopped_worker_and_goes_on(make_plate, reference, tmp_path):
    plate = make_plate()
    marker = tmp_path / "stop-once"
    marker.touch()
    steps = pipeline(FunctionStep((f.stop_self, {"marker": str(marker)}), name="Freeze", variable_components=("site",)))
    began = time.monotonic()
    report = run(steps, plate, tmp_path / "out", workers=2, progress=False, well_timeout=10)
    assert time.monotonic() - began < 60
    assert len(report.failed) == 1 and len(report.succeeded) == 2, report.summary()
    (failure,) = report.failed.values()
    assert "did not finish within the well timeout of 10 s (a stuck or stopped worker); its worker was stopped" in failure.error
    stopped = int(Path(str(marker) + ".pid").read_text())
    assert not psutil.pid_exists(stopped) or psutil.Process(stopped).status() == psutil.STATUS_ZOMBIE  # killed, not left frozen
    resumed = run(steps, plate, tmp_path / "out", workers=2, progress=False, resume=True)  # the marker is gone: no freeze
    assert resumed.succeeded == list(report.failed) and sorted(resumed.skipped + resumed.succeeded) == sorted(WELLS)
    assert_same_as_clean_run(tmp_path / "out", reference)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_well_timeout_with_one_worker_runs_in_a_process_that_can_be_stopped(make_plate, tmp_path):
    plate = make_plate()
    steps = _slow_pipeline(30.0, tmp_path / "started")
    began = time.monotonic()
    report = run(steps, plate, tmp_path / "out", wells=["A01"], workers=1, progress=False, well_timeout=2)
    assert time.monotonic() - began < 20
    assert list(report.failed) == ["A01"] and "well timeout of 2 s" in report.failed["A01"].error


def test_well_timeout_is_validated():
    with pytest.raises(ValueError, match=r"well_timeout=-1 is not valid; use a number of seconds > 0"):
        run(pipeline(), "nowhere", "out", well_timeout=-1)
