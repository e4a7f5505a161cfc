"""OME-Zarr output: the parent creates the plate metadata once, each well adds only its own arrays."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.library import registry

from . import functions as f
from .conftest import make_plate


def _ngff_plate(store):
    """The store validated as an NGFF 0.5 HCS plate by ome-zarr-models (raises when invalid)."""
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    return HCS.from_zarr(zarr.open_group(str(store), mode="r"))


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
    for path, data in originals.items():
        # Same size as the original (zero padding after the TIFF), so fixing it back keeps the plate's fingerprint.
        tifffile.imwrite(path, np.full((64, 64), 7, dtype=np.uint16), compression="zlib")
        with open(path, "ab") as handle:
            handle.write(b"\0" * (len(data) - path.stat().st_size))
    return root, originals


def test_store_metadata_is_made_before_the_wells_run(plate_with_a_bad_well, tmp_path):
    root, _ = plate_with_a_bad_well
    for path in root.rglob("*.tif"):
        tifffile.imwrite(path, np.full((64, 64), 7, dtype=np.uint16))
    report = run(_steps(), root, tmp_path / "out", workers=2, output_format="zarr", progress=False)
    assert not report.succeeded and sorted(report.failed) == ["A01", "A02", "B01"]
    store = tmp_path / "out" / "plate.zarr"
    meta = json.loads((store / "zarr.json").read_text())["attributes"]
    assert meta["ome"]["plate"]["wells"] == []  # no well has arrays, so none is listed
    assert meta["plateflow"]["layout"]["wells"] == ["A01", "A02", "B01"]
    assert meta["plateflow"]["layout"]["image_shape"] is None  # the plate part only: arrays come per well
    assert not list(store.glob("*/*/*/0"))  # no well got as far as its arrays
    _ngff_plate(store)  # still a valid NGFF plate


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
        # The fixed input keeps the size and time stamp of the file the first run saw, so resume
        # takes it for the same plate (its fingerprint is names, sizes and times).
        seen = path.stat()
        path.write_bytes(data)
        assert path.stat().st_size == seen.st_size
        os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns))
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


def test_a_wells_subset_is_a_valid_plate_of_those_wells_with_labels_over_their_image(small_plate, tmp_path):
    import zarr

    from plateflow.execution.demo import demo_pipeline

    report = run(demo_pipeline(), small_plate, tmp_path / "out", wells=["B02"], output_format="zarr", progress=False)
    assert report.ok, report.summary()
    store = tmp_path / "out" / "plate.zarr"
    hcs = _ngff_plate(store)
    assert [w.path for w in hcs.ome_attributes.plate.wells] == ["B/2"]
    assert not (store / "A").exists()
    field = store / "B" / "2" / "1"
    attrs = json.loads((field / "zarr.json").read_text())["attributes"]["ome"]
    # The last step segments channel 1 only: one image channel (the Z projection it segmented), its labels beside it.
    (channel,) = attrs["omero"]["channels"]
    assert channel["label"] == "DAPI" and channel["color"] == "0000FF"
    image = np.asarray(zarr.open_array(str(field / "0"), mode="r"))
    assert image.shape == (1, 1, 1, 64, 64) and image.dtype == np.float32
    assert channel["window"]["end"] == pytest.approx(float(np.percentile(image, 99.9)))
    assert channel["window"]["end"] < 2**16
    labels = np.asarray(zarr.open_array(str(field / "labels" / "DAPI" / "0"), mode="r"))
    assert labels.dtype == np.int32 and labels.shape == (1, 1, 1, 64, 64)
    counts = {row["site"]: int(row["object_count"]) for row in csv.DictReader(open(report.tables["object_counts"]))}
    assert len(np.unique(labels[labels > 0])) == counts["2"]
    # The image under the labels is the max projection the labels were made from: brighter inside the nuclei.
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()
