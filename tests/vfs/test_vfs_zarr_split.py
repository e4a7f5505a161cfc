"""The plate store in two parts: plate metadata once (the parent), then each well's arrays (its worker)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plateflow.vfs import FileManager, ZarrPlateLayout, create_plate_metadata, create_well_arrays

WELLS = ("A01", "A02", "B01", "C12")


def _plate_layout(**overrides):
    values = dict(
        wells=WELLS, sites=("1", "2"), channels=("1", "2"), timepoints=("1",), channel_names={"1": "DAPI", "2": "FITC"},
        pixel_size=0.65, microscope="ImageXpress", name="split plate",
    )
    values.update(overrides)
    return ZarrPlateLayout(**values)


def _plane(well: str, site: str, channel: str, z: str, shape=(16, 24)) -> np.ndarray:
    seed = [ord(c) for c in well] + [int(site), int(channel), int(z)]
    return np.random.default_rng(seed).integers(0, 60000, size=shape, dtype=np.uint16)


def _metadata_hashes(store: Path, skip_well: str | None = None) -> dict[str, str]:
    """Every zarr.json in the store outside ``skip_well``'s group."""
    skip = None if skip_well is None else f"{skip_well[0]}/{int(skip_well[1:])}/"
    return {
        p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in store.rglob("zarr.json")
        if skip is None or not p.relative_to(store).as_posix().startswith(skip)
    }


def _ngff_plate(store: Path):
    """The store read and validated as an NGFF 0.5 HCS plate by ome-zarr-models (raises when invalid)."""
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    return HCS.from_zarr(zarr.open_group(str(store), mode="r"))


def test_plate_metadata_lists_no_well_until_its_arrays_exist(tmp_path):
    store = create_plate_metadata(tmp_path / "plate.zarr", _plate_layout())
    root = json.loads((store / "zarr.json").read_text())["attributes"]
    plate = root["ome"]["plate"]
    assert plate["field_count"] == 2
    assert [r["name"] for r in plate["rows"]] == ["A", "B", "C"] and [c["name"] for c in plate["columns"]] == ["1", "2", "12"]
    assert plate["wells"] == []  # a plate none of whose wells has run yet lists none
    assert root["plateflow"]["layout"]["wells"] == list(WELLS)  # the planned wells are kept in plateflow's own layout
    assert not list(store.glob("*/*/zarr.json"))  # no well group yet
    assert _ngff_plate(store).ome_attributes.plate.wells == []
    assert not list(tmp_path.glob(".*.part"))  # the staging folder was renamed into place
    # same plate layout again: no-op; another: refused
    before = _metadata_hashes(store)
    assert create_plate_metadata(store, _plate_layout()) == store
    assert _metadata_hashes(store) == before
    with pytest.raises(FileExistsError, match="different plate layout"):
        create_plate_metadata(store, _plate_layout(sites=("1",)))
    fm = FileManager()
    assert not fm.exists(store, "zarr", components={"well": "A01", "site": "1", "channel": "1", "z_index": "1", "timepoint": "1"})
    with pytest.raises(FileNotFoundError, match="well A01 has no arrays"):
        fm.save(np.zeros((16, 24), np.uint16), store, "zarr", components={"well": "A01", "site": "1", "channel": "1", "z_index": "1", "timepoint": "1"})

    create_well_arrays(store, "C12", z_indices=("1",), image_shape=(16, 24), dtype="uint16")
    hcs = _ngff_plate(store)
    assert [(w.path, w.rowIndex, w.columnIndex) for w in hcs.ome_attributes.plate.wells] == [("C/12", 2, 2)]
    well = json.loads((store / "C" / "12" / "zarr.json").read_text())["attributes"]["ome"]["well"]
    assert [i["path"] for i in well["images"]] == ["0", "1"]
    field = json.loads((store / "C" / "12" / "1" / "zarr.json").read_text())["attributes"]["ome"]
    assert field["multiscales"][0]["datasets"][0]["path"] == "0"
    assert [(c["label"], c["color"]) for c in field["omero"]["channels"]] == [("DAPI", "0000FF"), ("FITC", "00FF00")]
    create_well_arrays(store, "A02", z_indices=("1",), image_shape=(16, 24), dtype="uint16")
    assert [w.path for w in _ngff_plate(store).ome_attributes.plate.wells] == ["A/2", "C/12"]  # plate order
    fm.delete(store / "C" / "12", "zarr")
    assert [w.path for w in _ngff_plate(store).ome_attributes.plate.wells] == ["A/2"]


def test_well_arrays_touch_only_their_well(tmp_path):
    store = create_plate_metadata(tmp_path / "plate.zarr", _plate_layout())
    create_well_arrays(store, "A01", z_indices=("1",), image_shape=(16, 24), dtype="uint16")
    others = _metadata_hashes(store, skip_well="B01")
    layout = create_well_arrays(store, "B01", z_indices=("1", "2", "3"), image_shape=(16, 24), dtype="uint16")
    assert layout.z_indices == ("1", "2", "3") and layout.image_shape == (16, 24) and layout.dtype == "uint16"
    after = _metadata_hashes(store, skip_well="B01")
    # Only the plate's list of wells changed (B/1 added), besides the new row group B.
    assert {k: v for k, v in after.items() if k not in ("zarr.json", "B/zarr.json")} == {k: v for k, v in others.items() if k != "zarr.json"}
    assert [w.path for w in _ngff_plate(store).ome_attributes.plate.wells] == ["A/1", "B/1"]
    array = json.loads((store / "B" / "1" / "1" / "0" / "zarr.json").read_text())
    assert array["shape"] == [1, 2, 3, 16, 24] and array["data_type"] == "uint16"
    window = json.loads((store / "B" / "1" / "0" / "zarr.json").read_text())["attributes"]["ome"]["omero"]["channels"][0]["window"]
    assert window["max"] == 65535.0
    fm = FileManager()
    plane = _plane("B01", "2", "1", "3")
    fm.save(plane, store, "zarr", components={"well": "B01", "site": "2", "channel": "1", "z_index": "3", "timepoint": "1"})
    np.testing.assert_array_equal(fm.load(store, "zarr", components={"well": "B01", "site": "2", "channel": "1", "z_index": "3", "timepoint": "1"}), plane)
    # A well that runs again gets fresh arrays of its new shape; the same backend sees the change.
    create_well_arrays(store, "B01", z_indices=("1",), image_shape=(8, 8), dtype="float32")
    assert fm.backend("zarr").well_layout(store, "B01").image_shape == (8, 8)
    fm.backend("zarr").create_well_arrays(store, "B01", z_indices=("1",), image_shape=(16, 24), dtype="float32")
    assert not fm.exists(store, "zarr", components={"well": "B01", "site": "2", "channel": "1", "z_index": "1", "timepoint": "1"})
    fm.save(np.ones((16, 24), np.float32), store, "zarr", components={"well": "B01", "site": "2", "channel": "1", "z_index": "1", "timepoint": "1"})
    assert fm.load(store, "zarr", components={"well": "B01", "site": "2", "channel": "1", "z_index": "1", "timepoint": "1"}).dtype == np.float32
    with pytest.raises(ValueError, match="well 'H01' is not in the store's layout"):
        create_well_arrays(store, "H01", z_indices=("1",), image_shape=(8, 8), dtype="uint8")


def _make_and_write_well(store: str, well: str, z_count: int, start_together: Any = None) -> int:
    fm = FileManager()
    z_indices = tuple(str(z) for z in range(1, z_count + 1))
    if start_together is not None:
        start_together.wait()
    fm.backend("zarr").create_well_arrays(store, well, z_indices=z_indices, image_shape=(16, 24), dtype="uint16")
    n = 0
    for site in ("1", "2"):
        for channel in ("1", "2"):
            for z in z_indices:
                fm.save(_plane(well, site, channel, z), store, "zarr", components={"well": well, "site": site, "channel": channel, "z_index": z})
                n += 1
    return n


def test_wells_of_one_row_made_at_once_share_one_row_group(tmp_path):
    # Eight threads make the wells of row A at once, ten times: without the plate lock around the row group's
    # creation about one try in five raised zarr's ContainsGroupError (it did in CI, between worker processes).
    wells = tuple(f"A{column:02d}" for column in range(1, 9))
    for attempt in range(10):
        store = create_plate_metadata(tmp_path / f"plate{attempt}.zarr", _plate_layout(wells=wells, sites=("1",)))
        start_together = threading.Barrier(len(wells))

        def make(well: str) -> None:
            start_together.wait()
            create_well_arrays(store, well, z_indices=("1",), image_shape=(8, 8), dtype="uint8")

        with ThreadPoolExecutor(len(wells)) as pool:
            list(pool.map(make, wells))
        assert [w.path for w in _ngff_plate(store).ome_attributes.plate.wells] == [f"A/{c}" for c in range(1, 9)]


def test_concurrent_workers_create_and_fill_their_own_wells(tmp_path):
    store = create_plate_metadata(tmp_path / "plate.zarr", _plate_layout())
    ctx = multiprocessing.get_context("spawn")  # zarr runs an event-loop thread; do not fork it
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        jobs = [(str(store), well, z, barrier) for well, z in zip(WELLS, (1, 2, 3, 1))]
        written = pool.starmap(_make_and_write_well, jobs)
    assert written == [4, 8, 12, 4]
    # Four processes listed their wells at once: the lock kept every one of them.
    assert [w.path for w in _ngff_plate(store).ome_attributes.plate.wells] == ["A/1", "A/2", "B/1", "C/12"]
    fm = FileManager()
    for _, well, z_count, _ in jobs:
        for z in range(1, z_count + 1):
            got = fm.load(store, "zarr", components={"well": well, "site": "2", "channel": "1", "z_index": str(z)})
            np.testing.assert_array_equal(got, _plane(well, "2", "1", str(z)))


def test_ome_zarr_reads_a_plate_with_a_well_never_written(tmp_path):
    ome_io = pytest.importorskip("ome_zarr.io")
    ome_reader = pytest.importorskip("ome_zarr.reader")
    store = create_plate_metadata(tmp_path / "plate.zarr", _plate_layout())
    for well in ("A01", "A02", "B01"):
        _make_and_write_well(str(store), well, 2)
    nodes = list(ome_reader.Reader(ome_io.parse_url(str(store)))())
    plate = nodes[0]
    assert any(isinstance(spec, ome_reader.Plate) for spec in plate.specs)
    image = list(ome_reader.Reader(ome_io.parse_url(str(store / "B" / "1" / "1")))())[0]
    np.testing.assert_array_equal(np.asarray(image.data[0])[0, 1, 1], _plane("B01", "2", "2", "2"))
    assert image.metadata["channel_names"] == ["DAPI", "FITC"]
    assert [w.path for w in _ngff_plate(store).ome_attributes.plate.wells] == ["A/1", "A/2", "B/1"]  # C12 never ran
