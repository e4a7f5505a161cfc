"""What a viewer shows of a well: label images as NGFF labels, colours by channel name, windows from the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from plateflow.vfs import FileManager, ZarrPlateLayout, create_plate_metadata
from plateflow.vfs.backends.zarr_store import channel_color, is_label_plane, write_well


def _store(tmp_path: Path, channels=("1", "2", "3")) -> Path:
    names = {"1": "DAPI", "2": "FITC", "3": "Cy5"}
    layout = ZarrPlateLayout(wells=("A01", "B02"), sites=("1", "2"), channels=channels, channel_names={c: names[c] for c in channels},
                             pixel_size=0.5, microscope="ImageXpress", name="labels plate")
    return create_plate_metadata(tmp_path / "plate.zarr", layout)


def _nuclei(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An intensity image with two bright squares, and its label image."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 5.0, (32, 40)).astype(np.float32)
    labels = np.zeros((32, 40), np.int32)
    labels[4:10, 5:12], labels[20:28, 25:35] = 1, 2
    image[labels > 0] += 1000.0
    return image, labels


def _attrs(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


def test_label_planes_and_masks_are_told_from_images():
    assert is_label_plane(np.zeros((4, 4), np.int32)) and is_label_plane(np.zeros((4, 4), bool))
    assert is_label_plane(np.zeros((4, 4), np.uint32))
    assert is_label_plane(np.array([[0, 1]], np.uint8))  # a 0/1 mask
    assert not is_label_plane(np.array([[0, 200]], np.uint8))
    assert not is_label_plane(np.zeros((4, 4), np.uint16)) and not is_label_plane(np.zeros((4, 4), np.float32))


def test_channel_colours_come_from_their_names():
    assert [channel_color(n, i, 4) for i, n in enumerate(("DAPI", "FITC", "Cy5", "TexasRed"))] == ["0000FF", "00FF00", "FF00FF", "FF0000"]
    assert channel_color("Hoechst 33342", 0, 2) == "0000FF" and channel_color("Alexa 488", 1, 2) == "00FF00"
    assert channel_color("channel 1", 0, 1) == "FFFFFF"  # a lone unnamed channel: grey
    assert [channel_color(f"ch{i}", i, 3) for i in range(3)] == ["00FF00", "FF00FF", "00FFFF"]


def test_labels_are_an_ngff_label_image_over_the_image_they_came_from(tmp_path):
    from ome_zarr_models.v05.hcs import HCS

    store = _store(tmp_path)
    sources, planes = [], []
    for site, seed in (("1", 1), ("2", 2)):
        image, labels = _nuclei(seed)
        sources.append(({"site": site, "channel": "1"}, image))
        planes.append(({"site": site, "channel": "1"}, labels))
        planes.append(({"site": site, "channel": "2"}, (image * 2).astype(np.uint16)))
    layout = write_well(store, "B02", planes, sources=sources)
    assert layout.channels == ("1", "2")  # channel 3 was never written: not in the image

    field = store / "B" / "2" / "1"
    image_array = zarr.open_array(str(field / "0"), mode="r")
    assert image_array.shape == (1, 2, 1, 32, 40) and image_array.dtype == np.float32
    np.testing.assert_array_equal(image_array[0, 0, 0], sources[1][1])  # the labels' source image
    np.testing.assert_array_equal(image_array[0, 1, 0], (sources[1][1] * 2).astype(np.uint16))
    assert _attrs(field / "labels")["ome"] == {"version": "0.5", "labels": ["DAPI"]}
    label_array = zarr.open_array(str(field / "labels" / "DAPI" / "0"), mode="r")
    assert label_array.shape == (1, 1, 1, 32, 40) and label_array.dtype == np.int32
    np.testing.assert_array_equal(label_array[0, 0, 0], planes[2][1])
    assert _attrs(field / "labels" / "DAPI")["ome"]["image-label"]["source"] == {"image": "../../"}

    channels = _attrs(field)["ome"]["omero"]["channels"]
    assert [(c["label"], c["color"]) for c in channels] == [("DAPI", "0000FF"), ("FITC", "00FF00")]
    data = sources[1][1]
    window = channels[0]["window"]
    assert window["min"] == pytest.approx(float(data.min())) and window["max"] == pytest.approx(float(data.max()))
    assert window["start"] == pytest.approx(float(np.percentile(data, 0.1))) and window["end"] == pytest.approx(float(np.percentile(data, 99.9)))

    hcs = HCS.from_zarr(zarr.open_group(str(store), mode="r"))
    assert [w.path for w in hcs.ome_attributes.plate.wells] == ["B/2"]  # A01 has no arrays: not listed

    fm = FileManager()  # the backend reads what the last step wrote: the labels for channel 1
    position = {"well": "B02", "site": "2", "channel": "1"}
    np.testing.assert_array_equal(fm.load(store, "zarr", components=position), planes[2][1])
    assert fm.exists(store, "zarr", components={**position, "z_index": "1"})
    assert fm.backend("zarr").well_labels(store, "B02") == {"1": "DAPI"}
    with pytest.raises(ValueError, match="channel='3' is not in well B02 of the store; its channels: 1, 2"):
        fm.load(store, "zarr", components={**position, "channel": "3"})


def test_labels_without_their_source_are_shown_over_their_mask(tmp_path):
    store = _store(tmp_path, channels=("1",))
    _, labels = _nuclei(3)
    write_well(store, "A01", [({"site": "1"}, labels), ({"site": "2"}, labels)])
    image = zarr.open_array(str(store / "A" / "1" / "0" / "0"), mode="r")
    np.testing.assert_array_equal(image[0, 0, 0], (labels > 0).astype(np.uint8))
    assert _attrs(store / "A" / "1" / "0")["ome"]["omero"]["channels"][0]["window"]["end"] == 1.0


def test_write_well_refuses_planes_of_several_shapes(tmp_path):
    store = _store(tmp_path, channels=("1",))
    with pytest.raises(ValueError, match=r"well A01: planes of shapes \[\(4, 4\), \(8, 8\)\]"):
        write_well(store, "A01", [({"site": "1"}, np.zeros((4, 4), np.uint16)), ({"site": "2"}, np.zeros((8, 8), np.uint16))])
    with pytest.raises(ValueError, match="well A01: no planes to write"):
        write_well(store, "A01", [])


def test_damaged_metadata_reads_as_no_array(tmp_path):
    store = _store(tmp_path, channels=("1",))
    write_well(store, "A01", [({"site": "1"}, np.ones((4, 4), np.uint16)), ({"site": "2"}, np.ones((4, 4), np.uint16))])
    fm = FileManager()
    position = {"well": "A01", "site": "2", "channel": "1", "z_index": "1"}
    assert fm.backend("zarr").has_array(store, components=position)
    (store / "A" / "1" / "1" / "0" / "zarr.json").write_text("garbage{")
    assert not fm.backend("zarr").has_array(store, components=position)  # resume redoes the well
    (store / "A" / "1" / "zarr.json").write_bytes(b"")
    assert not FileManager().backend("zarr").has_array(store, components=position)
