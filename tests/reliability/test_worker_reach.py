"""User code that worker processes cannot import the usual way still runs, or stops with one message.

A script without ``if __name__ == "__main__":``, a script piped to ``python -``
and functions defined in ``python -c`` code all run in worker processes
(started by ``fork``, which does not import the script again). A function
that cannot be pickled at all runs in this process, with a warning; on a Dask
cluster it stops the run before the first well. A Dask worker without
plateflow stops the run before the first well, naming the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.execution.runner import WorkersUnreachableError
from plateflow.memory import numpy

from .conftest import WELLS

SCRIPT = textwrap.dedent(
    """\
    import sys
    from plateflow import FunctionStep, run
    from plateflow.memory import numpy

    @numpy
    def double(stack):
        return stack * 2

    report = run([FunctionStep(double)], sys.argv[1], sys.argv[2], workers=2, progress=False)
    print(report.summary())
    sys.exit(0 if report.ok else 1)
    """
)


def _check_doubled(plate: Path, out: Path) -> None:
    for source in plate.rglob("*.tif"):
        relpath = source.relative_to(plate)
        np.testing.assert_array_equal(tifffile.imread(out / relpath), tifffile.imread(source) * 2, err_msg=str(relpath))


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["script without a main guard", "piped to python -", "python -c"])
def test_user_code_reaches_worker_processes(make_plate, tmp_path, how):
    plate, out = make_plate(), tmp_path / "out"
    script = tmp_path / "count.py"
    script.write_text(SCRIPT)
    if how == "script without a main guard":
        command, stdin = [sys.executable, str(script), str(plate), str(out)], None
    elif how == "piped to python -":
        command, stdin = [sys.executable, "-", str(plate), str(out)], SCRIPT
    else:
        command, stdin = [sys.executable, "-c", SCRIPT, str(plate), str(out)], None
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(WELLS)} well(s) done, 0 failed" in result.stdout
    assert "died" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    _check_doubled(plate, out)


def test_a_function_that_cannot_be_pickled_runs_here_with_a_warning(make_plate, tmp_path):
    plate, out = make_plate(), tmp_path / "out"
    local_double = numpy(lambda stack: stack * 2)
    with pytest.warns(RuntimeWarning, match=r"cannot be sent to another process .*running the wells in this process instead"):
        report = run([FunctionStep(local_double, name="Double")], plate, out, workers=2, progress=False)
    assert report.ok and report.succeeded == list(WELLS)
    _check_doubled(plate, out)


def test_a_function_that_cannot_be_pickled_stops_a_dask_run_before_the_first_well(make_plate, tmp_path):
    plate, out = make_plate(), tmp_path / "out"
    local_double = numpy(lambda stack: stack * 2)
    with pytest.raises(WorkersUnreachableError, match=r"cannot be sent to another process .*top level of a module.*a Dask cluster needs them too"):
        run([FunctionStep(local_double, name="Double")], plate, out, scheduler="tcp://127.0.0.1:1", progress=False)
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_dask_worker_without_plateflow_stops_the_run_with_one_message(make_plate, tmp_path):
    distributed = pytest.importorskip("distributed")
    from plateflow.execution.executors import DaskUnavailableError
    from tests.reliability import functions as f

    plate, out = make_plate(), tmp_path / "out"
    hide = tmp_path / "no-plateflow"
    hide.mkdir()
    # A worker environment where plateflow cannot be imported.
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['plateflow'] = None\n")
    cluster = distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nworkers", "1", "--nthreads", "1", "--no-nanny"],
        env={**os.environ, "PYTHONPATH": str(hide)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with distributed.Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            with pytest.raises(DaskUnavailableError, match=r"1 of the 1 Dask workers of .* cannot import plateflow .*install plateflow"):
                run([FunctionStep(f.half)], plate, out, scheduler=client, progress=False)
        manifest = (out / "plateflow-manifest.json").read_text()
        assert '"status": "done"' not in manifest
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        cluster.close()
