"""OME-Zarr output: the parent creates the plate metadata once, each well adds only its own arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.library import registry

from . import functions as f
from .conftest import make_plate


def _steps():
    return [
        FunctionStep(f.fail_on_seven, name="Check", variable_components=("z_index",)),
        FunctionStep(f.double, variable_components=("z_index",)),
        FunctionStep(registry.get("numpy.max_projection"), variable_components=("z_index",)),
    ]


@pytest.fixture
def plate_with_a_bad_well(tmp_path):
    root = make_plate(tmp_path / "plate", wells=("A01", "A02", "B01"), sites=1, channels=2)
    originals = {path: path.read_bytes() for path in root.rglob("A02_*.tif")}
    for path in originals:
        tifffile.imwrite(path, np.full((64, 64), 7, dtype=np.uint16))
    return root, originals


def test_store_metadata_is_made_before_the_wells_run(plate_with_a_bad_well, tmp_path):
    root, _ = plate_with_a_bad_well
    for path in root.rglob("*.tif"):
        tifffile.imwrite(path, np.full((64, 64), 7, dtype=np.uint16))
    report = run(_steps(), root, tmp_path / "out", workers=2, output_format="zarr", progress=False)
    assert not report.succeeded and sorted(report.failed) == ["A01", "A02", "B01"]
    store = tmp_path / "out" / "plate.zarr"
    meta = json.loads((store / "zarr.json").read_text())["attributes"]
    assert {w["path"] for w in meta["ome"]["plate"]["wells"]} == {"A/1", "A/2", "B/1"}
    assert meta["plateflow"]["layout"]["image_shape"] is None  # the plate part only: arrays come per well
    assert not list(store.glob("*/*/*/0"))  # no well got as far as its arrays


def test_failed_well_has_no_arrays_and_resume_fills_it(plate_with_a_bad_well, tmp_path):
    root, originals = plate_with_a_bad_well
    out = tmp_path / "out"
    report = run(_steps(), root, out, workers=2, output_format="zarr", progress=False)
    assert report.succeeded == ["A01", "B01"] and list(report.failed) == ["A02"]
    store = out / "plate.zarr"
    assert (store / "A" / "1" / "0" / "0" / "zarr.json").is_file()
    assert not (store / "A" / "2" / "0" / "0").exists()
    assert not list((out / ".plateflow").glob("*.lock")) and not list(out.glob(".*.part"))
    clean_run = run(_steps(), root, tmp_path / "clean_bad", workers=1, output_format="zarr", progress=False)
    assert list(clean_run.failed) == ["A02"]

    for path, data in originals.items():
        path.write_bytes(data)
    resumed = run(_steps(), root, out, workers=2, output_format="zarr", resume=True, progress=False)
    assert resumed.skipped == ["A01", "B01"] and resumed.succeeded == ["A02"]
    clean = run(_steps(), root, tmp_path / "clean", workers=1, output_format="zarr", progress=False)
    assert clean.ok
    import zarr

    got = zarr.open_group(str(store), mode="r")
    expected = zarr.open_group(str(tmp_path / "clean" / "plate.zarr"), mode="r")
    for well in ("A/1", "A/2", "B/1"):
        np.testing.assert_array_equal(np.asarray(got[f"{well}/0/0"]), np.asarray(expected[f"{well}/0/0"]))
    assert np.asarray(got["A/2/0/0"]).shape == (1, 2, 1, 64, 64)


def test_ome_zarr_reads_the_run_store(small_plate, tmp_path):
    ome_io = pytest.importorskip("ome_zarr.io")
    ome_reader = pytest.importorskip("ome_zarr.reader")
    report = run([FunctionStep(f.double)], small_plate, tmp_path / "out", wells=["A01"], output_format="zarr", progress=False)
    assert report.ok, report.summary()
    store = tmp_path / "out" / "plate.zarr"
    nodes = list(ome_reader.Reader(ome_io.parse_url(str(store)))())
    assert any(isinstance(spec, ome_reader.Plate) for spec in nodes[0].specs)
    image = list(ome_reader.Reader(ome_io.parse_url(str(store / "A" / "1" / "1")))())[0]
    raw = tifffile.imread(small_plate / "TimePoint_1" / "ZStep_3" / "A01_s2_w1.tif")
    np.testing.assert_array_equal(np.asarray(image.data[0])[0, 0, 2], raw * 2)
    assert image.metadata["channel_names"] == ["DAPI", "FITC"]
