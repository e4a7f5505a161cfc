"""The zarr backend: OME-Zarr plate layout, plane writes, concurrent writers, ome_zarr read-back."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from plateflow.plate import open_plate
from plateflow.vfs import FileManager, ZarrPlateLayout, create_plate_store, split_store_path

WELLS = ("A01", "A02", "B01", "C12")


def _layout(**overrides):
    values = dict(
        wells=WELLS, sites=("1", "2"), channels=("1", "2"), z_indices=("1", "2", "3"), timepoints=("1",),
        image_shape=(16, 24), dtype="uint16", channel_names={"1": "DAPI", "2": "FITC"}, pixel_size=0.65,
        microscope="ImageXpress", name="test plate",
    )
    values.update(overrides)
    return ZarrPlateLayout(**values)


def _plane(well: str, site: str, channel: str, z: str, shape=(16, 24)) -> np.ndarray:
    seed = [ord(c) for c in well] + [int(site), int(channel), int(z)]
    return np.random.default_rng(seed).integers(0, 60000, size=shape, dtype=np.uint16)


def test_layout_dict_round_trip_and_validation():
    layout = _layout()
    data = layout.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON
    assert data["wells"] == list(WELLS) and data["image_shape"] == [16, 24] and data["channel_names"] == {"1": "DAPI", "2": "FITC"}
    assert ZarrPlateLayout.from_dict(data) == layout
    assert hash(layout) == hash(ZarrPlateLayout.from_dict(data))
    with pytest.raises(ValueError, match="compressor='lz4' is not valid; choose one of: zstd, blosc, none"):
        _layout(compressor="lz4")
    with pytest.raises(ValueError, match="image_shape"):
        _layout(image_shape=(16,))
    with pytest.raises(ValueError, match="unknown layout key.*colour"):
        ZarrPlateLayout.from_dict({**data, "colour": 1})
    with pytest.raises(ValueError, match="wells"):
        _layout(wells=("A01", "row 3"))


def test_layout_from_plate(sample_plate_dir):
    layout = ZarrPlateLayout.from_plate(open_plate(sample_plate_dir))
    assert layout.wells == ("A01", "B02")
    assert layout.z_indices == ("1", "2", "3")
    assert layout.image_shape == (128, 128)
    assert layout.dtype == "uint16"
    assert dict(layout.channel_names) == {"1": "DAPI", "2": "FITC"}
    assert layout.pixel_size == pytest.approx(0.65)
    assert layout.microscope == "ImageXpress"


def test_split_store_path():
    store, inner = split_store_path("/out/run 1/plate.zarr/TimePoint_1/A01_s1_w1.tif")
    assert str(store) == "/out/run 1/plate.zarr" and inner == "TimePoint_1/A01_s1_w1.tif"
    with pytest.raises(ValueError, match="zarr paths look like <store>.zarr/<relative image path>"):
        split_store_path("/out/plate/A01.tif")


def test_store_metadata_is_ngff_plate(tmp_path):
    store = create_plate_store(tmp_path / "plate.zarr", _layout())
    root = json.loads((store / "zarr.json").read_text())
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    plate = ome["plate"]
    assert [r["name"] for r in plate["rows"]] == ["A", "B", "C"]
    assert [c["name"] for c in plate["columns"]] == ["1", "2", "12"]
    assert {w["path"] for w in plate["wells"]} == {"A/1", "A/2", "B/1", "C/12"}
    assert plate["field_count"] == 2
    well = json.loads((store / "C" / "12" / "zarr.json").read_text())["attributes"]["ome"]["well"]
    assert [i["path"] for i in well["images"]] == ["0", "1"]
    array = json.loads((store / "C" / "12" / "1" / "0" / "zarr.json").read_text())
    assert array["shape"] == [1, 2, 3, 16, 24]
    assert array["dimension_names"] == ["t", "c", "z", "y", "x"]
    assert array["data_type"] == "uint16"
    # same layout again: no-op; a different one: refused unless overwrite
    assert create_plate_store(store, _layout()) == store
    with pytest.raises(FileExistsError, match="different layout"):
        create_plate_store(store, _layout(dtype="float32"))
    create_plate_store(store, _layout(dtype="float32"), overwrite=True)
    assert FileManager().backend("zarr").layout(store).dtype == "float32"


def test_rows_are_in_plate_order_past_z(tmp_path):
    # A 1536-well plate has rows A..Z then AA..AF; rowIndex places each well on the plate.
    store = create_plate_store(tmp_path / "big.zarr", _layout(wells=("AA01", "B01", "A01", "AF48", "Z02")))
    plate = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["plate"]
    assert [r["name"] for r in plate["rows"]] == ["A", "B", "Z", "AA", "AF"]
    index = {w["path"]: w["rowIndex"] for w in plate["wells"]}
    assert index["Z/2"] == 2 and index["AA/1"] == 3 and index["AF/48"] == 4


def test_exists_sees_a_written_plane_of_zeros(tmp_path):
    store = create_plate_store(tmp_path / "out.zarr", _layout())
    fm = FileManager()
    position = {"well": "A01", "site": "1", "channel": "1", "z_index": "1"}
    assert not fm.exists(store, "zarr", components=position)
    fm.save(np.zeros((16, 24), np.uint16), store, "zarr", components=position)  # an empty mask, a blank plane
    assert fm.exists(store, "zarr", components=position)
    np.testing.assert_array_equal(fm.load(store, "zarr", components=position), 0)
    assert not fm.exists(store, "zarr", components={**position, "z_index": "2"})


def test_plane_round_trip_by_components(tmp_path):
    store = create_plate_store(tmp_path / "out.zarr", _layout())
    fm = FileManager()
    a = _plane("B01", "2", "2", "3")
    fm.save(a, store, "zarr", components={"well": "B01", "site": "2", "channel": "2", "z_index": "3", "timepoint": "1"})
    b = _plane("A01", "1", "1", "1")
    fm.save(b, store, "zarr", components={"well": "A01", "site": "1", "channel": "1", "z_index": "1", "timepoint": "1"})
    np.testing.assert_array_equal(fm.load(store, "zarr", components={"well": "B01", "site": "2", "channel": "2", "z_index": "3"}), a)
    np.testing.assert_array_equal(fm.load(store, "zarr", components={"well": "A01", "site": "1", "channel": "1", "z_index": "1"}), b)
    assert fm.load(store, "zarr", components={"well": "A01", "site": "1", "channel": "1", "z_index": "1"}).dtype == np.uint16
    assert not fm.exists(tmp_path / "other.zarr", "zarr")
    assert fm.list(store, "zarr", pattern="0") == ["A/1/0", "A/2/0", "B/1/0", "C/12/0"]


def test_storage_does_not_parse_image_names(tmp_path):
    # The plan hands over every image's components; the store knows no vendor file-name layout.
    store = create_plate_store(tmp_path / "out.zarr", _layout())
    with pytest.raises(ValueError, match=r"B01_s2_w2\.tif'?: give components="):
        FileManager().save(_plane("B01", "2", "2", "3"), store / "TimePoint_1/ZStep_3/B01_s2_w2.tif", "zarr")


def test_stack_write_and_read(tmp_path):
    store = create_plate_store(tmp_path / "out.zarr", _layout())
    fm = FileManager()
    stack = np.stack([_plane("A02", "1", "2", z) for z in ("1", "2", "3")])
    fm.save(stack, store, "zarr", components={"well": "A02", "site": "1", "channel": "2"})
    back = fm.load(store, "zarr", components={"well": "A02", "site": "1", "channel": "2"})
    np.testing.assert_array_equal(back, stack)
    np.testing.assert_array_equal(fm.load(store, "zarr", components={"well": "A02", "site": "1", "channel": "2", "z_index": "2"}), stack[1])


def test_zarr_write_errors(tmp_path):
    store = create_plate_store(tmp_path / "out.zarr", _layout())
    fm = FileManager()
    comps = {"well": "A01", "site": "1", "channel": "1", "z_index": "1"}
    with pytest.raises(ValueError, match=r"expected a plane of shape \(16, 24\), got \(8, 8\)"):
        fm.save(np.zeros((8, 8), np.uint16), store, "zarr", components=comps)
    with pytest.raises(ValueError, match="data is float64 but the store holds uint16"):
        fm.save(np.zeros((16, 24)), store, "zarr", components=comps)
    with pytest.raises(ValueError, match="well 'H01' is not in the store's layout"):
        fm.save(np.zeros((16, 24), np.uint16), store, "zarr", components={**comps, "well": "H01"})
    with pytest.raises(ValueError, match="z_index='9' is not in the store's layout; valid values: 1, 2, 3"):
        fm.save(np.zeros((16, 24), np.uint16), store, "zarr", components={**comps, "z_index": "9"})
    with pytest.raises(ValueError, match="measurements.csv'?: give components="):
        fm.save(np.zeros((16, 24), np.uint16), store / "measurements.csv", "zarr")
    with pytest.raises(FileNotFoundError, match="create_plate_store"):
        fm.save(np.zeros((16, 24), np.uint16), tmp_path / "missing.zarr", "zarr", components=comps)
    fm.save(np.zeros((16, 24), np.uint8), store, "zarr", components=comps)  # safe cast is fine


def _write_wells(store: str, wells: list[str]) -> int:
    fm = FileManager()
    n = 0
    for well in wells:
        for site in ("1", "2"):
            for channel in ("1", "2"):
                for z in ("1", "2", "3"):
                    fm.save(_plane(well, site, channel, z), store, "zarr",
                            components={"well": well, "site": site, "channel": channel, "z_index": z})
                    n += 1
    return n


def test_concurrent_writers_to_different_wells(tmp_path):
    store = create_plate_store(tmp_path / "shared.zarr", _layout())
    ctx = multiprocessing.get_context("spawn")  # zarr runs an event-loop thread; do not fork it
    jobs = [[WELLS[0]], [WELLS[1]], [WELLS[2], WELLS[3]]]
    with ctx.Pool(3) as pool:
        written = pool.starmap(_write_wells, [(str(store), wells) for wells in jobs])
    assert written == [12, 12, 24]
    fm = FileManager()
    for well in WELLS:
        for site in ("1", "2"):
            for channel in ("1", "2"):
                for z in ("1", "2", "3"):
                    got = fm.load(store, "zarr", components={"well": well, "site": site, "channel": channel, "z_index": z})
                    np.testing.assert_array_equal(got, _plane(well, site, channel, z))


def test_ome_zarr_reads_the_store(tmp_path):
    ome_io = pytest.importorskip("ome_zarr.io")
    ome_reader = pytest.importorskip("ome_zarr.reader")
    store = create_plate_store(tmp_path / "plate.zarr", _layout())
    _write_wells(str(store), ["A01", "C12"])

    nodes = list(ome_reader.Reader(ome_io.parse_url(str(store)))())
    assert any(isinstance(spec, ome_reader.Plate) for spec in nodes[0].specs)

    image = list(ome_reader.Reader(ome_io.parse_url(str(store / "C" / "12" / "1")))())[0]
    assert any(isinstance(spec, ome_reader.Multiscales) for spec in image.specs)
    data = np.asarray(image.data[0])
    assert data.shape == (1, 2, 3, 16, 24)
    for ci, channel in enumerate(("1", "2")):
        for zi, z in enumerate(("1", "2", "3")):
            np.testing.assert_array_equal(data[0, ci, zi], _plane("C12", "2", channel, z))
    assert image.metadata["channel_names"] == ["DAPI", "FITC"]
    assert [a["name"] for a in image.metadata["axes"]] == ["t", "c", "z", "y", "x"]
    # an unwritten well reads as the fill value
    empty = list(ome_reader.Reader(ome_io.parse_url(str(store / "A" / "2" / "0")))())[0]
    assert not np.asarray(empty.data[0]).any()


def test_zarr_delete(tmp_path):
    store = create_plate_store(tmp_path / "out.zarr", _layout())
    fm = FileManager()
    fm.delete(store / "A" / "1", "zarr")
    assert not (store / "A" / "1").exists()
    fm.delete(store, "zarr")
    assert not store.exists()
    with pytest.raises(FileNotFoundError):
        fm.delete(store, "zarr")
