"""A run's outputs open right in napari: labels as Labels layers, sensible contrast, the plate's frame.

Both readers are tried on OME-Zarr output: plateflow's (the output folder, in
the input plate's frame) and napari-ome-zarr's (one field of the store).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from plateflow.execution import run
from plateflow.execution.demo import demo_pipeline
from plateflow.napari._reader import napari_get_reader


@pytest.fixture(scope="module")
def zarr_run(tuning_plate, tmp_path_factory):
    out = tmp_path_factory.mktemp("zarr_outputs") / "out"
    report = run(demo_pipeline(), tuning_plate, out, wells=["A02"], workers=1, output_format="zarr", progress=False)
    assert report.ok, report.summary()
    return out


def _field_attrs(field):
    return json.loads((field / "zarr.json").read_text())["attributes"]["ome"]


def test_plateflow_reader_opens_zarr_outputs_in_the_plate_frame(make_napari_viewer, zarr_run, tuning_plate):
    import zarr

    viewer = make_napari_viewer(show=True)
    plate_layers = viewer.open(str(tuning_plate), plugin="plateflow")
    layers = viewer.open(str(zarr_run), plugin="plateflow")
    assert [(type(layer).__name__, layer.name) for layer in layers] == [("Image", "DAPI (outputs)"), ("Labels", "DAPI labels")]
    image, labels = layers
    # The plate's frame: well, site, Z sliders shared with the plate layers (the projection shows at every Z).
    assert tuple(image.axis_labels) == tuple(plate_layers[0].axis_labels) == ("well", "site", "z_index", "y", "x")
    assert image.data.shape == labels.data.shape == plate_layers[0].data.shape == (2, 2, 3, 64, 64)
    store = zarr_run / "plate.zarr"
    field = store / "A" / "2" / "1"  # well A02, site 2
    expected_labels = np.asarray(zarr.open_array(str(field / "labels" / "DAPI" / "0"), mode="r"))[0, 0, 0]
    for z in range(3):
        np.testing.assert_array_equal(np.asarray(labels.data[1, 1, z]), expected_labels)
    assert expected_labels.max() > 0 and not np.asarray(labels.data[0]).any()  # A01 did not run: empty
    window = _field_attrs(store / "A" / "2" / "0")["omero"]["channels"][0]["window"]
    assert tuple(image.contrast_limits) == pytest.approx((window["start"], window["end"]))
    assert image.contrast_limits[1] < 2**16 and image.colormap.name == "blue"

    for layer in plate_layers:
        layer.visible = False
    viewer.dims.set_point(0, 1)  # well A02, site 1 on screen: the outputs alone
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    blue = shot[..., 2] - np.maximum(shot[..., 0], shot[..., 1])
    assert (blue > 100).mean() > 0.002  # the DAPI projection is drawn in blue, not black
    labelled = (np.ptp(shot, axis=-1) > 0) & (blue <= 100)
    assert labelled.mean() > 0.001  # and the labels in their colours over it


def test_napari_ome_zarr_opens_a_field_with_its_labels(make_napari_viewer, zarr_run):
    pytest.importorskip("napari_ome_zarr")
    viewer = make_napari_viewer()
    field = zarr_run / "plate.zarr" / "A" / "2" / "1"
    layers = viewer.open(str(field), plugin="napari-ome-zarr")
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds.count("Image") == 1 and kinds.count("Labels") == 1  # one channel written, one label image
    image = next(layer for layer in layers if type(layer).__name__ == "Image")
    window = _field_attrs(field)["omero"]["channels"][0]["window"]
    assert tuple(image.contrast_limits) == pytest.approx((window["start"], window["end"]))
    assert image.contrast_limits[1] < 2**16 and image.colormap.name == "blue"


def test_tiff_outputs_open_with_labels_as_a_labels_layer(make_napari_viewer, tuning_plate, tmp_path):
    out = tmp_path / "out"
    report = run(demo_pipeline(), tuning_plate, out, workers=1, progress=False)
    assert report.ok, report.summary()
    viewer = make_napari_viewer()
    assert napari_get_reader(str(out / "plateflow-manifest.json")) is not None  # the manifest file opens its folder
    layers = viewer.open(str(out), plugin="plateflow")
    assert [(type(layer).__name__, layer.name) for layer in layers] == [("Labels", "DAPI labels")]
    assert tuple(layers[0].axis_labels) == ("well", "site", "z_index", "y", "x") and layers[0].data.shape == (2, 2, 3, 64, 64)


def test_reader_claims_only_plates_and_plateflow_outputs(zarr_run, tuning_plate, tmp_path):
    (tmp_path / "notes.txt").write_text("not a plate")
    assert napari_get_reader(str(tmp_path)) is None
    assert napari_get_reader(str(zarr_run / "plate.zarr")) is None  # an OME-Zarr store: napari-ome-zarr's
    assert napari_get_reader(str(zarr_run / "plate.zarr" / "A" / "2" / "0")) is None
    assert napari_get_reader(str(zarr_run)) is not None and napari_get_reader(str(tuning_plate)) is not None


def test_a_damaged_plate_image_is_one_error_naming_the_file_without_tifffile_log_lines(tmp_path, caplog):
    import logging

    from plateflow.napari._reader import read_plate
    from plateflow.plate import generate_sample_plate

    plate = generate_sample_plate(tmp_path / "plate", wells=("A01",), sites=1, channels=1, z_planes=1, size=(64, 64))
    (image,) = plate.rglob("*.tif")
    image.write_bytes(image.read_bytes()[:200])  # truncated
    with caplog.at_level(logging.DEBUG, logger="tifffile"):
        with pytest.raises(Exception) as caught:
            read_plate(plate)
    assert str(image) in str(caught.value)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]
