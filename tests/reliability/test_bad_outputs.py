"""Output folders that refuse writes: a full disk, a read-only folder, a folder under a file.

What is simulated, and why: a real full disk or read-only mount cannot be made
in a test without privileges (and these tests run as root, for whom a 0o555
folder does not stop writes). So the refusals are injected in this process
(``workers=1``) at the points where the OS would refuse: ``tifffile.imwrite``
writes half of its temporary file and then fails with ``ENOSPC``, and the disk
backend's ``tempfile.mkstemp`` fails with ``EACCES`` or ``ENOSPC`` for the
folders concerned (``deny_writes_under``). Where the tests do not run as
root, the read-only case uses a real ``chmod 0o555`` instead.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow.execution import run
from plateflow.vfs.backends import disk

from .conftest import WELLS, assert_same_as_clean_run, assert_wells_match, deny_writes_under, images, leftovers, pipeline

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def assert_wells_match_images_only(out: Path, reference: Path, wells: tuple[str, ...]) -> None:
    """The images of ``wells`` equal the clean run's (the merged table was never written)."""
    got, expected = images(out, wells), images(reference, wells)
    assert sorted(got) == sorted(expected)
    for relpath, data in expected.items():
        np.testing.assert_array_equal(got[relpath], data, err_msg=relpath)


def _fill_disk_for(monkeypatch: pytest.MonkeyPatch, wells: tuple[str, ...]) -> list[str]:
    """``tifffile.imwrite`` of images of ``wells`` writes part of the file, then hits a full disk."""
    real = tifffile.imwrite
    attempts: list[str] = []

    def imwrite(file, data, *args, **kwargs):
        name = os.path.basename(str(file)).lstrip(".")
        if name.split("_", 1)[0] in wells:
            attempts.append(str(file))
            with open(file, "wb") as handle:
                handle.write(b"II*\x00" + bytes(100))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(file, data, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", imwrite)
    return attempts


def test_full_disk_fails_the_well_that_could_not_write(make_plate, reference, tmp_path, monkeypatch):
    plate = make_plate()
    out = tmp_path / "out"
    attempts = _fill_disk_for(monkeypatch, ("A02",))
    report = run(pipeline(), plate, out, workers=1, progress=False)
    assert attempts
    assert report.succeeded == ["A01", "B01"] and list(report.failed) == ["A02"], report.summary()
    failure = report.failed["A02"]
    assert failure.step_name == "Measure" and failure.file.endswith("A02_s1_w1.tif")
    assert "No space left on device" in failure.error and failure.file in failure.error
    assert_wells_match(out, reference, ("A01", "B01"))
    assert not leftovers(out), "a failed write left its temporary file"
    monkeypatch.undo()  # space freed
    resumed = run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert resumed.skipped == ["A01", "B01"] and resumed.succeeded == ["A02"]
    assert_same_as_clean_run(out, reference)


def test_disk_full_from_the_second_well_on_stops_with_the_manifest_named(make_plate, reference, tmp_path, monkeypatch):
    """Once even the manifest cannot be written, the run stops with that error: it can no longer
    record what it did. The well that finished is intact and a resumed run completes the plate."""
    plate = make_plate()
    out = tmp_path / "out"
    real_mkstemp = tempfile.mkstemp

    full = {"on": False}

    def mkstemp(*args, **kwargs):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_mkstemp(*args, **kwargs)

    real_imwrite = tifffile.imwrite

    def imwrite(file, data, *args, **kwargs):
        if os.path.basename(str(file)).lstrip(".").startswith("A02_"):
            full["on"] = True  # the disk fills while the second well writes
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_imwrite(file, data, *args, **kwargs)

    monkeypatch.setattr(disk.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tifffile, "imwrite", imwrite)
    with pytest.raises(OSError) as caught:
        run(pipeline(), plate, out, workers=1, progress=False)
    assert caught.value.errno == errno.ENOSPC
    assert "plateflow-manifest.json" in str(caught.value) and "No space left on device" in str(caught.value)
    assert_wells_match_images_only(out, reference, ("A01",))
    assert not leftovers(out)
    monkeypatch.undo()
    resumed = run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert resumed.skipped == ["A01"] and resumed.succeeded == ["A02", "B01"], resumed.summary()
    assert_same_as_clean_run(out, reference)


def test_read_only_output_folder_is_refused_before_any_well_runs(make_plate, tmp_path, monkeypatch):
    plate = make_plate()
    out = tmp_path / "read-only out"
    out.mkdir()
    if AS_ROOT:
        deny_writes_under(monkeypatch, out, errno.EACCES)
    else:
        out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError) as caught:
            run(pipeline(), plate, out, workers=1, progress=False)
    finally:
        out.chmod(0o755)
    # Refused at the first file: the lock file (a real read-only folder) or the manifest (simulated).
    assert str(out / "plateflow-manifest.json") in str(caught.value) or str(out / ".plateflow.lock") in str(caught.value)
    assert [p.name for p in out.iterdir()] in ([], [".plateflow.lock"])
    assert not any(p.stat().st_size for p in out.iterdir())  # the lock file, released, holds nobody


def test_read_only_image_folder_fails_every_well_then_resume_completes(make_plate, reference, tmp_path, monkeypatch):
    plate = make_plate()
    out = tmp_path / "out"
    locked = out / "TimePoint_1" / "ZStep_1"
    locked.mkdir(parents=True)
    if AS_ROOT:
        deny_writes_under(monkeypatch, locked, errno.EACCES)
    else:
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        report = run(pipeline(), plate, out, workers=1, progress=False)
    finally:
        locked.chmod(0o755)
    assert not report.succeeded and list(report.failed) == list(WELLS)
    for well, failure in report.failed.items():
        assert failure.file.startswith(f"TimePoint_1/ZStep_1/{well}_")
        assert "Permission denied" in failure.error and str(locked) in failure.error
    monkeypatch.undo()
    resumed = run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert resumed.ok and resumed.succeeded == list(WELLS)
    assert_same_as_clean_run(out, reference)


def test_output_folder_under_a_file(make_plate, tmp_path):
    plate = make_plate()
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    with pytest.raises(OSError) as caught:
        run(pipeline(), plate, blocker / "out", progress=False)
    assert "cannot create the output folder" in str(caught.value) and str(blocker / "out") in str(caught.value)
    assert blocker.read_text() == "not a folder"
