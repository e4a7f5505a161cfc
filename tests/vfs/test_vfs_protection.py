"""The input plate is read-only: writes and deletes under a protected root are refused."""

from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest

from plateflow.plate import open_plate
from plateflow.vfs import FileManager, ProtectedPathError, ZarrPlateLayout, create_plate_store
from tests.conftest import hash_tree


@pytest.fixture
def plate_copy(sample_plate_dir, tmp_path):
    copy = tmp_path / "input plate"
    shutil.copytree(sample_plate_dir, copy)
    return copy


def _attempts(fm, root):
    image = np.zeros((4, 4), np.uint16)
    return [
        lambda: fm.save(image, root / "TimePoint_1" / "ZStep_1" / "A01_s1_w1.tif", "disk"),
        lambda: fm.save(image, root / "new.tif", "disk"),
        lambda: fm.save([{"a": 1}], root / "deep" / "er" / "t.csv", "disk"),
        lambda: fm.delete(root / "TimePoint_1", "disk"),
        lambda: fm.delete(root / "ground_truth.csv", "disk"),
        lambda: fm.delete(root.parent, "disk"),  # a folder holding the plate
        lambda: fm.save(image, root / "out.zarr" / "A01_s1_w1.tif", "zarr"),
        lambda: fm.delete(root / "out.zarr", "zarr"),
    ]


def test_protected_root_refuses_writes_and_deletes(plate_copy):
    before = hash_tree(plate_copy)
    fm = FileManager(read_only_roots=[plate_copy])
    for attempt in _attempts(fm, plate_copy):
        with pytest.raises(ProtectedPathError, match="input plate") as info:
            attempt()
        assert str(plate_copy) in str(info.value)
    assert hash_tree(plate_copy) == before
    # reading still works
    assert fm.load(plate_copy / "TimePoint_1" / "ZStep_2" / "A01_s1_w1.tif", "disk").shape == (128, 128)


def test_protect_via_symlink_both_ways(plate_copy, tmp_path):
    link = tmp_path / "link to plate"
    link.symlink_to(plate_copy, target_is_directory=True)
    before = hash_tree(plate_copy)

    fm = FileManager()
    fm.protect(link)  # protect through the link, write through the real path
    with pytest.raises(ProtectedPathError):
        fm.save(np.zeros(2), plate_copy / "x.npy", "disk")

    fm2 = FileManager(read_only_roots=[plate_copy])  # protect the real path, write through the link
    with pytest.raises(ProtectedPathError):
        fm2.save(np.zeros(2), link / "TimePoint_1" / "x.npy", "disk")
    assert hash_tree(plate_copy) == before


def test_read_only_copy_chmod(plate_copy, tmp_path):
    """A chmod read-only plate: protection refuses first, and nothing is written (even as root)."""
    for path in [plate_copy, *plate_copy.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        before = hash_tree(plate_copy)
        names_before = sorted(p.relative_to(plate_copy).as_posix() for p in plate_copy.rglob("*"))
        plate = open_plate(plate_copy)
        fm = FileManager()
        fm.protect(plate.root)
        for attempt in _attempts(fm, plate_copy):
            with pytest.raises(ProtectedPathError):
                attempt()
        # reading every image through the VFS leaves the plate as it was
        for f in plate.files:
            fm.load(plate.path_of(f), "disk")
        assert hash_tree(plate_copy) == before
        assert sorted(p.relative_to(plate_copy).as_posix() for p in plate_copy.rglob("*")) == names_before
    finally:
        for path in [plate_copy, *plate_copy.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_outputs_beside_the_plate_are_allowed(plate_copy, tmp_path):
    fm = FileManager(read_only_roots=[plate_copy])
    out = tmp_path / "input plate out"  # shares a name prefix with the plate, but is not inside it
    fm.save(np.zeros((2, 2), np.uint8), out / "A01_s1_w1.tif", "disk")
    fm.save(np.zeros((2, 2), np.uint8), "/virtual/" + str(plate_copy) + "/x", "memory")  # memory paths are virtual
    assert fm.exists(out / "A01_s1_w1.tif", "disk")
    layout = ZarrPlateLayout(wells=["A01"], sites=["1"], channels=["1"], z_indices=["1"], timepoints=["1"], image_shape=(2, 2), dtype="uint8")
    create_plate_store(out / "plate.zarr", layout)
    fm.save(np.ones((2, 2), np.uint8), out / "plate.zarr", "zarr", components={"well": "A01"})
    assert fm.is_protected(plate_copy / "a" / "b") and not fm.is_protected(out)
