"""FileManager with the memory and disk backends: round trips, listing, atomic writes, corrupt files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from plateflow.vfs import BACKEND_TYPES, CorruptFileError, FileManager, MemoryBackend, StorageBackend, register_backend
from plateflow.vfs.backends import disk as disk_module

DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "bool"]


@pytest.fixture
def fm():
    return FileManager()


def test_backends_follow_protocol(fm):
    assert set(fm.backends) >= {"memory", "disk", "zarr"}
    for backend in fm.backends.values():
        assert isinstance(backend, StorageBackend)


def test_unknown_backend(fm):
    with pytest.raises(ValueError, match="backend='s3' is not valid; choose one of: memory, disk, zarr"):
        fm.save(np.zeros(2), "/x.npy", "s3")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ext", [".tif", ".tiff", ".npy"])
def test_disk_array_round_trip_keeps_dtype(fm, tmp_path, dtype, ext):
    rng = np.random.default_rng(0)
    data = (rng.random((3, 5, 7)) * 200).astype(dtype)
    path = tmp_path / "sub dir" / f"image{ext}"
    fm.save(data, path, "disk")
    back = fm.load(path, "disk")
    assert back.dtype == data.dtype
    assert back.shape == data.shape
    np.testing.assert_array_equal(back, data)


def test_disk_tiff_options(fm, tmp_path):
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    fm.save(data, tmp_path / "c.tif", "disk", compression="zlib")
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        assert tif.pages.first.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    with pytest.raises(TypeError, match="unknown option.*colour.*valid options: compression"):
        fm.save(data, tmp_path / "d.tif", "disk", colour="red")


def test_disk_tables_and_json(fm, tmp_path):
    rows = [{"well": "A01", "site": 1, "area": 12.5}, {"well": "A02", "site": 2, "area": 3.0, "note": "x y"}]
    fm.save(rows, tmp_path / "rows.csv", "disk")
    assert fm.load(tmp_path / "rows.csv", "disk") == [
        {"well": "A01", "site": 1, "area": 12.5, "note": None},  # a cell the row left out reads back empty
        {"well": "A02", "site": 2, "area": 3.0, "note": "x y"},
    ]
    columns = {"label": np.arange(3), "mean": np.array([1.5, 2.5, 3.5], dtype=np.float32)}
    fm.save(columns, tmp_path / "cols.csv", "disk")
    assert fm.load(tmp_path / "cols.csv", "disk") == [
        {"label": 0, "mean": 1.5}, {"label": 1, "mean": 2.5}, {"label": 2, "mean": 3.5}
    ]
    with pytest.raises(ValueError, match="columns have different lengths"):
        fm.save({"a": [1, 2], "b": [1]}, tmp_path / "bad.csv", "disk")
    positions = {"tiles": [[0, 0], [0, 512]], "shift": np.float64(1.25), "n": np.int64(2)}
    fm.save(positions, tmp_path / "pos.json", "disk")
    assert fm.load(tmp_path / "pos.json", "disk") == {"tiles": [[0, 0], [0, 512]], "shift": 1.25, "n": 2}


def test_disk_unknown_extension(fm, tmp_path):
    with pytest.raises(ValueError, match=r"extension '\.png' is not one of \.tif, \.tiff, \.npy, \.csv, \.json"):
        fm.save(np.zeros((2, 2)), tmp_path / "x.png", "disk")


def test_disk_list_exists_delete(fm, tmp_path):
    for rel in ["TimePoint_1/A01_s10_w1.tif", "TimePoint_1/A01_s2_w1.tif", "TimePoint_1/ZStep_1/A01_s1_w1.tif", "m.csv"]:
        data = [{"a": 1}] if rel.endswith(".csv") else np.zeros((2, 2), np.uint8)
        fm.save(data, tmp_path / rel, "disk")
    assert fm.list(tmp_path, "disk") == [
        "TimePoint_1/A01_s2_w1.tif", "TimePoint_1/A01_s10_w1.tif", "TimePoint_1/ZStep_1/A01_s1_w1.tif", "m.csv"
    ]
    assert fm.list(tmp_path, "disk", pattern="*.tif", recursive=False) == []
    assert fm.list(tmp_path / "TimePoint_1", "disk", recursive=False) == ["A01_s2_w1.tif", "A01_s10_w1.tif"]
    assert fm.exists(tmp_path / "m.csv", "disk")
    fm.delete(tmp_path / "TimePoint_1", "disk")
    assert fm.list(tmp_path, "disk") == ["m.csv"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        fm.delete(tmp_path / "TimePoint_1", "disk")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        fm.list(tmp_path / "nope", "disk")


def test_disk_written_files_have_normal_permissions(fm, tmp_path):
    fm.save(np.zeros(3), tmp_path / "a.npy", "disk")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.npy").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_leaves_nothing_on_failure(fm, tmp_path, monkeypatch):
    target = tmp_path / "out" / "A01_s1_w1.tif"
    fm.save(np.full((4, 4), 7, np.uint16), target, "disk")
    before = target.read_bytes()

    def explode(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00partial")  # a half-written file, then the writer dies
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", explode)
    with pytest.raises(OSError, match="disk full"):
        fm.save(np.zeros((4, 4), np.uint16), target, "disk")
    with pytest.raises(OSError, match="disk full"):
        fm.save(np.zeros((4, 4), np.uint16), tmp_path / "out" / "new.tif", "disk")
    assert sorted(os.listdir(tmp_path / "out")) == ["A01_s1_w1.tif"]  # no temp files, no new.tif
    assert target.read_bytes() == before  # the old file is intact


def test_atomic_write_uses_replace(fm, tmp_path, monkeypatch):
    moves = []
    real = os.replace
    monkeypatch.setattr(disk_module.os, "replace", lambda a, b: moves.append((a, b)) or real(a, b))
    fm.save({"a": 1}, tmp_path / "x.json", "disk")
    assert len(moves) == 1
    tmp, final = moves[0]
    assert os.path.dirname(tmp) == str(tmp_path) and final == tmp_path / "x.json"


@pytest.mark.parametrize("content", [b"", b"II*\x00\x08\x00\x00\x00", b"not a tiff at all"])
def test_corrupt_tiff_error_names_file(fm, tmp_path, content):
    bad = tmp_path / "plate dir" / "A01_s1_w1.tif"
    bad.parent.mkdir()
    bad.write_bytes(content)
    with pytest.raises(CorruptFileError, match=r"plate dir/A01_s1_w1\.tif"):
        fm.load(bad, "disk")


def test_truncated_tiff_error_names_file(fm, tmp_path):
    good = tmp_path / "full.tif"
    tifffile.imwrite(good, np.arange(100 * 100, dtype=np.uint16).reshape(100, 100))
    truncated = tmp_path / "cut.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.tif.*truncated"):
        fm.load(truncated, "disk")


def test_zero_byte_npy_and_json(fm, tmp_path):
    (tmp_path / "a.npy").write_bytes(b"")
    (tmp_path / "b.json").write_text("{oops")
    with pytest.raises(CorruptFileError, match=r"a\.npy.*empty \(0 bytes\)"):
        fm.load(tmp_path / "a.npy", "disk")
    with pytest.raises(CorruptFileError, match=r"b\.json.*not valid JSON"):
        fm.load(tmp_path / "b.json", "disk")


def test_binary_csv_and_json_error_names_file(fm, tmp_path):
    (tmp_path / "t.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "t.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(CorruptFileError, match=r"t\.csv: not a UTF-8 CSV table"):
        fm.load(tmp_path / "t.csv", "disk")
    with pytest.raises(CorruptFileError, match=r"t\.json: not valid JSON"):
        fm.load(tmp_path / "t.json", "disk")


def test_memory_backend_any_object_and_listing(fm):
    image = np.ones((2, 3), np.float32)
    table = [{"label": 1, "area": 4}]
    fm.save(image, "/work/A01/step1/A01_s1_w1.tif", "memory")
    fm.save(table, "/work/A01/step1/measurements.csv", "memory")
    fm.save({"tiles": [(0, 0)]}, "/work/A01/positions", "memory")
    assert fm.load("/work/A01/step1/A01_s1_w1.tif", "memory") is image  # stored as given: no copy
    assert fm.load("/work/A01/step1/measurements.csv", "memory") == table
    assert fm.list("/work/A01", "memory") == ["positions", "step1/A01_s1_w1.tif", "step1/measurements.csv"]
    assert fm.list("/work/A01", "memory", recursive=False) == ["positions"]
    assert fm.list("/work", "memory", pattern="*.tif") == ["A01/step1/A01_s1_w1.tif"]
    assert fm.exists("/work/A01/step1", "memory") and not fm.exists("/work/A02", "memory")
    fm.delete("/work/A01/step1", "memory")
    assert fm.list("/work", "memory") == ["A01/positions"]
    with pytest.raises(FileNotFoundError, match="nothing saved in memory at /work/A01/step1/A01_s1_w1.tif"):
        fm.load("/work/A01/step1/A01_s1_w1.tif", "memory")


def test_memory_is_per_filemanager():
    a, b = FileManager(), FileManager()
    a.save(1, "/x", "memory")
    assert not b.exists("/x", "memory")


def test_load_memory_type_validated(fm, tmp_path):
    fm.save(np.zeros(2), tmp_path / "a.npy", "disk")
    with pytest.raises(ValueError, match="valid memory types are: numpy"):
        fm.load(tmp_path / "a.npy", "disk", memory_type="matlab")
    assert isinstance(fm.load(tmp_path / "a.npy", "disk", memory_type=None), np.ndarray)


def test_foreign_arrays_are_converted_to_numpy(fm, tmp_path):
    torch = pytest.importorskip("torch")
    data = torch.arange(12, dtype=torch.int16).reshape(3, 4)
    fm.save(data, tmp_path / "t.tif", "disk")
    back = fm.load(tmp_path / "t.tif", "disk")
    assert isinstance(back, np.ndarray) and back.dtype == np.int16
    np.testing.assert_array_equal(back, data.numpy())
    as_torch = fm.load(tmp_path / "t.tif", "disk", memory_type="torch")
    assert isinstance(as_torch, torch.Tensor)
    fm.save(data, "/mem/t", "memory")
    assert isinstance(fm.load("/mem/t", "memory"), np.ndarray)


def test_register_backend(monkeypatch):
    monkeypatch.setitem(BACKEND_TYPES, "scratch", MemoryBackend)
    fm = FileManager()
    fm.save("hello", "/a", "scratch")
    assert fm.load("/a", "scratch") == "hello"
    with pytest.raises(ValueError, match="non-empty string"):
        register_backend("", MemoryBackend)


def test_a_tiff_that_vanishes_while_it_is_opened_is_no_such_file(tmp_path, monkeypatch):
    import tifffile

    from plateflow.vfs import FileManager

    path = tmp_path / "A01_s1_w1.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16))
    original = tifffile.TiffFile

    def vanish_then_open(source, *args, **kwargs):
        os.remove(source)  # gone between the size check and the open
        return original(source, *args, **kwargs)

    monkeypatch.setattr(tifffile, "TiffFile", vanish_then_open)
    with pytest.raises(FileNotFoundError, match=f"no such file: {path}"):
        FileManager().load(path, "disk")
