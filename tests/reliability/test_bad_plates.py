"""Bad input plates: each case gives an error that names the file and well, and loses nothing else.

For every case the damaged well is reported (step, function, file), the other
wells' outputs are complete and equal to a clean run's, and the input plate
is byte-identical afterwards (``plate_guard``, autouse).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.plate import RaggedPlateError, open_plate

from . import functions as f
from .conftest import WELLS, assert_same_as_clean_run, assert_wells_match, images, leftovers, pipeline

DAMAGED = "TimePoint_1/ZStep_2/B01_s2_w1.tif"
GOOD = ("A01", "A02")


def _run_damaged(plate: Path, out: Path, workers: int = 1):
    report = run(pipeline(), plate, out, workers=workers, progress=False)
    assert report.succeeded == list(GOOD), report.summary()
    assert list(report.failed) == ["B01"], report.summary()
    return report.failed["B01"]


def _garbage(root: Path) -> None:
    (root / DAMAGED).write_bytes(b"II*\x00" + os.urandom(300))


def _truncate(root: Path) -> None:
    data = (root / DAMAGED).read_bytes()
    (root / DAMAGED).write_bytes(data[: len(data) // 2])


def _empty(root: Path) -> None:
    (root / DAMAGED).write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_garbage, "cannot read TIFF"),
        (_truncate, "truncated"),
        (_empty, "the file is empty (0 bytes)"),
    ],
    ids=["corrupt", "truncated", "zero-byte"],
)
def test_unreadable_image_fails_only_its_well_naming_the_file(make_plate, reference, tmp_path, damage, says):
    plate = make_plate(damage=damage)
    failure = _run_damaged(plate, tmp_path / "out")
    assert failure.file == DAMAGED
    assert failure.step_index == 0 and failure.step_name == "Half"
    assert says in failure.error
    assert "well B01" in failure.error and DAMAGED in failure.error
    assert_wells_match(tmp_path / "out", reference, GOOD)
    assert not leftovers(tmp_path / "out")


def test_unreadable_first_image_of_the_plate_fails_only_its_well(make_plate, reference, tmp_path):
    """The plate's header (shape, dtype, pixel size) comes from a readable image, not necessarily the first."""
    first = "TimePoint_1/ZStep_1/A01_s1_w1.tif"
    plate = make_plate(damage=lambda root: (root / first).write_bytes(b""))
    for output_format in ("tiff", "zarr"):
        report = run(pipeline(), plate, tmp_path / output_format, workers=1, output_format=output_format, progress=False)
        assert report.succeeded == ["A02", "B01"] and list(report.failed) == ["A01"], report.summary()
        assert report.failed["A01"].file == first
    assert_wells_match(tmp_path / "tiff", reference, ("A02", "B01"))


def test_image_of_another_shape_names_the_file(make_plate, reference, tmp_path):
    plate = make_plate(damage=lambda root: tifffile.imwrite(root / DAMAGED, np.ones((32, 48), np.uint16)))
    failure = _run_damaged(plate, tmp_path / "out")
    assert failure.file == DAMAGED
    assert "(32, 48)" in failure.error and "(64, 64)" in failure.error
    assert_wells_match(tmp_path / "out", reference, GOOD)


def test_image_of_another_dtype_names_the_file(make_plate, reference, tmp_path):
    plate = make_plate(damage=lambda root: tifffile.imwrite(root / DAMAGED, np.ones((64, 64), np.float32)))
    failure = _run_damaged(plate, tmp_path / "out")
    assert failure.file == DAMAGED
    assert "float32" in failure.error and "uint16" in failure.error
    assert_wells_match(tmp_path / "out", reference, GOOD)


@pytest.mark.parametrize(
    "missing",
    [
        ["TimePoint_1/ZStep_2/B01_s1_w2.tif"],  # one Z plane of one channel
        [f"TimePoint_1/ZStep_{z}/B01_s{s}_w2.tif" for z in (1, 2) for s in (1, 2)],  # a whole channel
    ],
    ids=["missing-z-plane", "missing-channel"],
)
def test_ragged_plate_is_refused_naming_the_missing_files(make_plate, tmp_path, missing):
    plate = make_plate(damage=lambda root: [(root / m).unlink() for m in missing])
    with pytest.raises(RaggedPlateError) as caught:
        run(pipeline(), plate, tmp_path / "out", progress=False)
    assert sorted(caught.value.missing) == sorted(missing)
    for name in missing:
        assert name in str(caught.value)
    assert "allow_ragged=True" in str(caught.value)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_ragged_plate_opened_on_purpose_runs_what_is_there(make_plate, reference, tmp_path):
    missing = "TimePoint_1/ZStep_2/B01_s1_w2.tif"
    plate = make_plate(damage=lambda root: (root / missing).unlink())
    opened = open_plate(plate, allow_ragged=True)
    assert opened.missing_files == (missing,)
    report = run(pipeline(), opened, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    assert_wells_match(tmp_path / "out", reference, GOOD)
    # B01 site 1 channel 2 is projected from the one Z plane left.
    projected = tifffile.imread(tmp_path / "out" / "TimePoint_1/ZStep_1/B01_s1_w2.tif")
    only = tifffile.imread(plate / "TimePoint_1/ZStep_1/B01_s1_w2.tif").astype(np.float32) * np.float32(0.5)
    np.testing.assert_array_equal(projected, only)


def test_stray_files_are_ignored(make_plate, reference, tmp_path):
    def litter(root: Path) -> None:
        (root / "notes.txt").write_text("acquired on a Tuesday")
        (root / ".DS_Store").write_bytes(b"\x00\x01")
        (root / "TimePoint_1" / "Thumbs.db").write_bytes(b"thumbs")
        (root / "TimePoint_1" / "ZStep_1" / "A01_s1_w1_thumb.jpg").write_bytes(b"\xff\xd8\xff")
        (root / "TimePoint_1" / "ZStep_1" / "A01_s1_w1.tif.bak").write_bytes(b"old")
        (root / "TimePoint_1" / "ZStep_1" / "empty folder").mkdir()
        (root / "analysis").mkdir()
        (root / "analysis" / "results.csv").write_text("well,count\nA01,3\n")

    plate = make_plate(damage=litter)
    assert {"notes.txt", "analysis/results.csv", "TimePoint_1/ZStep_1/A01_s1_w1_thumb.jpg"} <= set(open_plate(plate).ignored_files)
    report = run(pipeline(), plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    assert_same_as_clean_run(tmp_path / "out", reference)


def test_unicode_and_spaces_in_plate_and_output_paths(pristine_plate, plate_guard, reference, tmp_path):
    plate = tmp_path / "plaque ü 測試 #1" / "my plate é"
    shutil.copytree(pristine_plate, plate)
    plate_guard.watch(plate)
    out = tmp_path / "résultats 2024" / "run (1) ü"
    report = run(pipeline(), plate, out / "tiff", workers=2, progress=False)
    assert report.ok, report.summary()
    assert_same_as_clean_run(out / "tiff", reference)
    zarr_report = run(pipeline(), plate, out / "zarr", workers=2, output_format="zarr", progress=False)
    assert zarr_report.ok, zarr_report.summary()
    import zarr

    store = zarr.open_group(str(out / "zarr" / "my plate é.zarr"), mode="r")
    expected = images(reference)
    for field, site in enumerate(("1", "2")):
        array = np.asarray(store[f"B/1/{field}/0"])
        np.testing.assert_array_equal(array[0, 1, 0], expected[f"TimePoint_1/ZStep_1/B01_s{site}_w2.tif"])


def test_symlinked_plate_folders(make_plate, reference, tmp_path):
    real = make_plate(name="real plate")
    link = tmp_path / "link to plate"
    link.symlink_to(real, target_is_directory=True)
    report = run(pipeline(), link, tmp_path / "out", workers=2, progress=False)
    assert report.ok, report.summary()
    assert_same_as_clean_run(tmp_path / "out", reference)
    # An output folder reached through the link is still inside the plate.
    with pytest.raises(ValueError, match="inside the plate"):
        run(pipeline(), real, link / "out", progress=False)
    with pytest.raises(ValueError, match="inside the plate"):
        run(pipeline(), link, real / "out", progress=False)


def test_plate_with_a_symlinked_timepoint_folder(make_plate, reference, tmp_path):
    def split(root: Path) -> None:
        elsewhere = root.parent / "elsewhere"
        shutil.move(root / "TimePoint_1", elsewhere)
        (root / "TimePoint_1").symlink_to(elsewhere, target_is_directory=True)

    plate = make_plate(damage=split)
    report = run(pipeline(), plate, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    assert_same_as_clean_run(tmp_path / "out", reference)
    assert not any((plate.parent / "elsewhere").rglob("*.part"))


@pytest.mark.parametrize("workers", [1, 2])
def test_plate_that_vanishes_mid_run(make_plate, plate_guard, reference, tmp_path, workers):
    """The plate folder is renamed away while the first well runs: every well that still
    had files to read fails naming the missing file; nothing hangs; putting the plate
    back and resuming completes the run as if nothing happened."""
    plate = make_plate()
    marker = tmp_path / "vanish"
    marker.touch()
    steps = pipeline()
    steps.insert(0, FunctionStep((f.vanish_plate, {"plate": str(plate), "marker": str(marker)}), name="Vanish", variable_components=("z_index",)))
    out = tmp_path / "out"
    report = run(steps, plate, out, workers=workers, progress=False)
    assert not marker.exists()
    assert report.failed, report.summary()
    for well, failure in report.failed.items():
        assert failure.file, failure  # the file it could not read
        assert "no such file" in failure.error and failure.file in failure.error
    assert set(report.succeeded) | set(report.failed) == set(WELLS)
    assert not leftovers(out)
    os.rename(f"{plate}.gone", plate)
    resumed = run(steps, plate, out, workers=workers, resume=True, progress=False)
    assert resumed.ok, resumed.summary()
    assert sorted(resumed.succeeded + resumed.skipped) == list(WELLS)
    assert_same_as_clean_run(out, reference)
