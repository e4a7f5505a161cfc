"""Bad input through the command line: one line naming the file (and field), exit status 1, no traceback.

Also a really full disk: a 256 kB tmpfs mounted as the output folder (root
only; skipped, saying why, where ``mount`` is not allowed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plateflow.cli import main
from plateflow.execution import run
from plateflow.io import save_pipeline


@pytest.fixture
def demo_file(tmp_path) -> Path:
    from plateflow.execution.demo import demo_pipeline

    return save_pipeline(demo_pipeline(), tmp_path / "demo.yaml")


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, text
    return lines[0]


def test_pipeline_path_that_is_a_folder(tmp_path, make_plate, capsys):
    folder = tmp_path / "pipeline.yaml"
    folder.mkdir()
    assert main(["run", str(folder), str(make_plate()), "-o", str(tmp_path / "out")]) == 1
    assert _one_error_line(capsys) == f"error: {folder} is a folder, not a pipeline file (a .yaml file)"
    assert main(["check", str(folder)]) == 1
    assert "is a folder" in _one_error_line(capsys)


@pytest.mark.timeout(20)
def test_pipeline_path_that_is_a_fifo_does_not_hang(tmp_path, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert main(["check", str(fifo)]) == 1
    assert _one_error_line(capsys) == f"error: {fifo} is a FIFO (named pipe), not a pipeline file (a .yaml file)"


@pytest.mark.timeout(20)
def test_pipeline_path_that_is_dev_zero_does_not_hang(capsys):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero on this system")
    assert main(["check", "/dev/zero"]) == 1
    assert _one_error_line(capsys) == "error: /dev/zero is a device, not a pipeline file (a .yaml file)"


@pytest.mark.timeout(20)
def test_pipeline_file_of_200_mb_is_refused_unread(tmp_path, capsys):
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as handle:
        handle.truncate(200 * 1000 * 1000)  # sparse: no disk used, but 200 MB to read
    assert main(["export-script", str(huge), "-o", str(tmp_path / "x.py")]) == 1
    assert _one_error_line(capsys) == f"error: {huge} is 200 MB, too big for a pipeline file (at most 10 MB); is it the right file?"
    assert not (tmp_path / "x.py").exists()


def test_damaged_manifest_on_resume_is_one_line_with_a_hint(demo_file, make_plate, tmp_path, capsys):
    plate, out = make_plate(), tmp_path / "out"
    assert main(["run", str(demo_file), str(plate), "-o", str(out), "--wells", "A01", "--quiet"]) == 0
    manifest = json.loads((out / "plateflow-manifest.json").read_text())
    manifest["wells"]["A01"]["tables"] = ["not", "a", "mapping"]
    (out / "plateflow-manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["run", str(demo_file), str(plate), "-o", str(out), "--resume", "--quiet"]) == 1
    line = _one_error_line(capsys)
    assert str(out / "plateflow-manifest.json") in line and "wells.A01.tables is list" in line and "hint: remove it" in line


def test_locked_output_folder_is_one_line_naming_the_holder(demo_file, make_plate, tmp_path, capsys):
    from plateflow.execution.lock import OutputLock

    plate, out = make_plate(), tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        assert main(["run", str(demo_file), str(plate), "-o", str(out), "--quiet"]) == 1
    line = _one_error_line(capsys)
    assert f"another plateflow run is writing to {out} (pid {os.getpid()}" in line


def test_output_folder_that_is_the_plate_by_a_link_is_one_line(demo_file, make_plate, tmp_path, capsys):
    plate = make_plate()
    link = tmp_path / "results"
    link.symlink_to(plate)
    assert main(["run", str(demo_file), str(plate), "-o", str(link), "--quiet"]) == 1
    assert "is inside the plate" in _one_error_line(capsys)


def test_well_timeout_on_the_command_line_is_validated(demo_file, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", str(demo_file), "plate", "-o", "out", "--well-timeout", "soon"])
    assert caught.value.code == 2
    assert "'soon' is not a number of seconds" in capsys.readouterr().err


def test_export_script_writes_a_script_that_builds_the_pipeline(demo_file, tmp_path, capsys):
    script = tmp_path / "demo.py"
    assert main(["export-script", str(demo_file), "-o", str(script)]) == 0
    assert f"wrote {script}" in capsys.readouterr().out
    import runpy

    from plateflow.io import dump_pipeline, load_pipeline

    namespace = runpy.run_path(str(script), run_name="not_main")  # defines build_pipeline() without running it
    assert dump_pipeline(namespace["build_pipeline"]()) == dump_pipeline(load_pipeline(demo_file))


# -- a really full disk ---------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    target = tmp_path / "tiny"
    target.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def test_really_full_disk_says_no_space_left_on_device(make_plate, tiny_disk):
    plate = make_plate()
    from plateflow import FunctionStep
    from plateflow.library import registry

    # float32 copies of the 64 x 64 planes: about 700 kB for the plate, more than the 256 kB disk.
    steps = [FunctionStep(registry.get("numpy.normalize_percentile"), name="Normalize", variable_components=("z_index",))]
    try:
        report = run(steps, plate, tiny_disk / "out", workers=1, progress=False)
    except OSError as error:  # the disk filled up so far that not even the manifest could be written
        messages = [str(error)]
        assert "plateflow-manifest.json" in messages[0]
    else:
        assert report.failed, report.summary()
        messages = [failure.error for failure in report.failed.values()]
    for message in messages:
        assert "No space left on device" in message, message
        assert f"cannot write {tiny_disk}" in message, message
