"""The output folder: never the plate by any path, one run at a time, and only plateflow's own files deleted.

Bind mounts need root and a kernel that allows them here: those tests try
``mount --bind`` and skip, saying why, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plateflow.execution import run
from plateflow.execution.lock import LOCK_NAME, OutputLock, OutputLockedError
from plateflow.execution.manifest import ManifestError
from plateflow.execution.runner import OutputFolderError
from plateflow.plate import generate_sample_plate

from .conftest import WELLS, assert_same_as_clean_run, images, pipeline


def _manifest(out: Path) -> dict:
    return json.loads((out / "plateflow-manifest.json").read_text())


def _write_manifest(out: Path, data: dict) -> None:
    (out / "plateflow-manifest.json").write_text(json.dumps(data))


@pytest.fixture
def bind_mount(tmp_path):
    """``bind_mount(source, target)``: ``mount --bind``, undone after the test; skips where not allowed."""
    mounted: list[Path] = []

    def mount(source: Path, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        result = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"mount --bind is not allowed here (needs root and a permissive kernel): {result.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)


# -- the plate is never the output, by any path ------------------------------------------------


def test_output_folder_that_is_a_bind_mount_of_the_plate_is_refused(make_plate, tmp_path, bind_mount):
    plate = make_plate()
    out = bind_mount(plate, tmp_path / "looks-like-another-folder")
    before = sorted(p.name for p in plate.iterdir())
    with pytest.raises(OutputFolderError, match="inside the plate .* a mount or a link of it"):
        run(pipeline(), plate, out, workers=1, progress=False)
    assert sorted(p.name for p in plate.iterdir()) == before  # no manifest, no lock file, nothing


def test_output_folder_inside_a_bind_mount_of_the_plate_is_refused(make_plate, tmp_path, bind_mount):
    plate = make_plate()
    mounted = bind_mount(plate, tmp_path / "mnt")
    with pytest.raises(OutputFolderError, match="inside the plate"):
        run(pipeline(), plate, mounted / "out", workers=1, progress=False)
    assert not (plate / "out").exists()


def test_plate_mounted_inside_the_output_folder_is_never_written(make_plate, tmp_path, bind_mount):
    """``out/TimePoint_1`` is a bind mount of the plate's own image folder: every write of a
    well's file there is refused by the identity of its parent folder, and the wells fail."""
    plate = make_plate()
    out = tmp_path / "out"
    bind_mount(plate / "TimePoint_1", out / "TimePoint_1")
    report = run(pipeline(), plate, out, workers=1, progress=False)
    assert sorted(report.failed) == list(WELLS), report.summary()
    for failure in report.failed.values():
        assert "refusing to write" in failure.error and "read-only root" in failure.error, failure.error
    # (plate_guard checks byte for byte that the plate did not change)


def test_plate_inside_the_output_folder_by_a_link_is_refused(make_plate, tmp_path):
    plate = make_plate()
    link = tmp_path / "link-to-parent"
    link.symlink_to(plate.parent)
    with pytest.raises(OutputFolderError, match="is inside the output folder"):
        run(pipeline(), plate, link, workers=1, progress=False)


# -- resume and reruns delete only what the manifest recorded ---------------------------------


def test_resume_leaves_another_plates_files_under_the_output_folder_alone(make_plate, reference, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, workers=1, progress=False).ok
    # Another plate's outputs kept under the output folder, with names like this plate's wells'.
    other = out / "other plate"
    shutil.copytree(plate / "TimePoint_1", other / "TimePoint_1")
    kept = {p: p.read_bytes() for p in other.rglob("*.tif")}
    manifest = _manifest(out)
    manifest["wells"]["A02"]["status"] = "failed"
    _write_manifest(out, manifest)
    resumed = run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert resumed.skipped == ["A01", "B01"] and resumed.succeeded == ["A02"]
    assert kept and {p: p.read_bytes() for p in other.rglob("*.tif")} == kept
    shutil.rmtree(other)
    assert_same_as_clean_run(out, reference)


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_manifest_paths_outside_the_output_folder_are_never_deleted(make_plate, tmp_path, where):
    plate = make_plate()
    out = tmp_path / "deep" / "out"
    assert run(pipeline(), plate, out, workers=1, progress=False).ok
    victim = tmp_path / "precious.txt"
    victim.write_text("not plateflow's")
    path = "../../precious.txt" if where == "relative" else str(victim)
    manifest = _manifest(out)
    manifest["wells"]["A01"]["status"] = "failed"
    manifest["wells"]["A01"]["outputs"].append(path)
    manifest["wells"]["A01"]["tables"]["site_stats"] = path
    manifest["wells"]["A01"]["files"][path] = {"size": victim.stat().st_size, "sha256": "0" * 64}
    _write_manifest(out, manifest)
    resumed = run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert resumed.succeeded == ["A01"], resumed.summary()
    assert victim.read_text() == "not plateflow's"
    assert any(path in note and "outside the output folder" in note for note in resumed.notes), resumed.notes
    assert path in resumed.summary()


def test_rerun_keeps_an_output_edited_since_and_says_so(make_plate, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, workers=1, progress=False).ok
    table = _manifest(out)["wells"]["B01"]["tables"]["site_stats"]
    edited = out / table
    edited.write_text("slice,mean,max\n0,1,1\n")  # someone's edit: not what plateflow wrote
    again = run(pipeline(), plate, out, wells=["B01"], workers=1, progress=False)
    assert again.ok
    assert any(table in note and "changed since plateflow wrote it" in note for note in again.notes), again.notes


# -- the plate's identity ----------------------------------------------------------------------


def test_resume_refuses_another_plate_by_name(make_plate, tmp_path):
    first, second = make_plate("plate_one"), make_plate("plate_two")
    out = tmp_path / "out"
    assert run(pipeline(), first, out, wells=["A01"], workers=1, progress=False).ok
    with pytest.raises(OutputFolderError, match="records a run of the plate 'plate_one'.*not of 'plate_two'"):
        run(pipeline(), second, out, workers=1, resume=True, progress=False)
    assert _manifest(out)["plate_identity"]["name"] == "plate_one"
    assert set(images(out)) == set(images(out, ("A01",)))  # nothing of plate_two was written


def test_resume_refuses_a_plate_of_the_same_name_with_other_files(make_plate, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, wells=["A01"], workers=1, progress=False).ok
    other = tmp_path / "elsewhere" / "plate"
    generate_sample_plate(other, wells=("A01", "C03"), sites=1, channels=2, z_planes=2, size=(64, 64))
    with pytest.raises(OutputFolderError, match="it has other files"):
        run(pipeline(), other, out, workers=1, resume=True, progress=False)


def test_manifest_records_the_plate_identity_and_every_file(make_plate, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, workers=1, progress=False).ok
    manifest = _manifest(out)
    identity = manifest["plate_identity"]
    assert identity["name"] == "plate" and len(identity["fingerprint"]) == 64 and set(identity["wells"]) == set(WELLS)
    import hashlib

    for well in WELLS:
        files = manifest["wells"][well]["files"]
        assert set(manifest["wells"][well]["outputs"]) <= set(files)
        for relpath, record in files.items():
            data = (out / relpath).read_bytes()
            assert record == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert set(manifest["table_files"]) == {"site_stats.csv"}


@pytest.mark.parametrize("damage", ["zeroed", "truncated"])
def test_resume_redoes_a_done_well_whose_tiff_was_damaged(make_plate, reference, tmp_path, damage):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, workers=1, progress=False).ok
    relpath = sorted(images(out, ("A02",)))[0]
    target = out / relpath
    size = target.stat().st_size
    target.write_bytes(bytes(size) if damage == "zeroed" else target.read_bytes()[: size // 2])
    resumed = run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert resumed.skipped == ["A01", "B01"] and resumed.succeeded == ["A02"], resumed.summary()
    assert any("well A02 is redone" in note and relpath in note for note in resumed.notes), resumed.notes
    assert_same_as_clean_run(out, reference)


def test_resume_redoes_a_zarr_well_whose_metadata_is_garbage(make_plate, tmp_path):
    import zarr

    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, workers=1, output_format="zarr", progress=False).ok
    store = next(out.glob("*.zarr"))
    expected = zarr.open_array(str(store / "A" / "2" / "0" / "0"), mode="r")[...]
    (store / "A" / "2" / "0" / "0" / "zarr.json").write_text("{garbage")
    resumed = run(pipeline(), plate, out, workers=1, output_format="zarr", resume=True, progress=False)
    assert resumed.succeeded == ["A02"] and resumed.skipped == ["A01", "B01"], resumed.summary()
    assert any("well A02 is redone" in note and "zarr.json" in note for note in resumed.notes), resumed.notes
    assert (zarr.open_array(str(store / "A" / "2" / "0" / "0"), mode="r")[...] == expected).all()


# -- one run at a time ---------------------------------------------------------------------


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(make_plate, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl, json, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, json.dumps({'pid': os.getpid(), 'command': 'plateflow run other.yaml'}).encode()); "
         "print('locked', flush=True); time.sleep(60)", str(out / LOCK_NAME)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=rf"another plateflow run is writing to .*pid {holder.pid}.*plateflow run other.yaml"):
            run(pipeline(), plate, out, wells=["A01"], workers=1, progress=False)
        assert not (out / "plateflow-manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock went with it, and the next run takes the folder over.
    report = run(pipeline(), plate, out, wells=["A01"], workers=1, progress=False)
    assert report.ok
    assert any(f"took over the lock of an earlier run that is gone (pid {holder.pid})" in n for n in report.notes), report.notes


def test_the_lock_is_held_for_the_whole_run_and_released_after(make_plate, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    seen = []

    def on_well(result):
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
            OutputLock(out).acquire()
        seen.append(result.well)

    assert run(pipeline(), plate, out, workers=1, progress=False, on_well=on_well).ok
    assert seen == list(WELLS)
    with OutputLock(out) as lock:  # free again
        assert lock.stale is None


# -- the manifest itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, value, message",
    [
        ("outputs", "A01.tif", r"wells\.A01\.outputs is str \"A01.tif\", expected a list of paths"),
        ("status", "finished", r"wells\.A01\.status is \"finished\", expected one of pending, running, done, failed"),
        ("files", [], r"wells\.A01\.files is list \[\], expected an object"),
    ],
)
def test_manifest_entry_of_the_wrong_type_is_named(make_plate, tmp_path, entry, value, message):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, wells=["A01"], workers=1, progress=False).ok
    manifest = _manifest(out)
    manifest["wells"]["A01"][entry] = value
    _write_manifest(out, manifest)
    with pytest.raises(ManifestError, match=message) as caught:
        run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    assert str(out / "plateflow-manifest.json") in str(caught.value) and "hint: remove it" in str(caught.value)


def test_truncated_manifest_is_named_on_resume_and_replaced_by_a_plain_run(make_plate, reference, tmp_path):
    plate = make_plate()
    out = tmp_path / "out"
    assert run(pipeline(), plate, out, workers=1, progress=False).ok
    path = out / "plateflow-manifest.json"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ManifestError, match=r"the manifest .*plateflow-manifest.json is damaged .*not valid JSON.*hint: remove it"):
        run(pipeline(), plate, out, workers=1, resume=True, progress=False)
    again = run(pipeline(), plate, out, workers=1, progress=False)
    assert again.ok and any("was damaged" in note for note in again.notes)
    assert_same_as_clean_run(out, reference)
    assert _manifest(out)["manifest_version"] == 2
