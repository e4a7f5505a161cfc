"""ImageXpress / MetaXpress names, folders and HTD metadata."""

from __future__ import annotations

import numpy as np
import pytest

from plateflow.plate import ImageFile, ImageXpressHandler, open_plate
from plateflow.plate.imagexpress import parse_htd

from ._build import HTD, imagexpress_names, make_files

GUID = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("A01_s1_w1.tif", ("A01", "1", "1", "1", "1")),
        ("B12_s10_w3.TIF", ("B12", "10", "3", "1", "1")),
        ("TimePoint_2/ZStep_3/C05_s2_w1.tif", ("C05", "2", "1", "3", "2")),
        ("TimePoint_1/D07_s4_w2.tiff", ("D07", "4", "2", "1", "1")),
        ("ZStep_12/A01_s1_w1.tif", ("A01", "1", "1", "12", "1")),
        ("A01_s1_w1_z4.tif", ("A01", "1", "1", "4", "1")),
        (f"A01_s1_w1{GUID}.tif", ("A01", "1", "1", "1", "1")),
        (f"A01_s1_w1{{{GUID}}}.tif", ("A01", "1", "1", "1", "1")),
        (f"A01_s1_w1_[{GUID}].tif", ("A01", "1", "1", "1", "1")),
        ("A01_s2_w1_0123456789abcdef0123456789abcdef.tif", ("A01", "2", "1", "1", "1")),
        ("A01_w2.tif", ("A01", "1", "2", "1", "1")),  # single site: no _s
        ("A01_s3.tif", ("A01", "3", "1", "1", "1")),  # single channel: no _w
        ("A01.tif", ("A01", "1", "1", "1", "1")),
        ("MyPlate_B03_s1_w2.tif", ("B03", "1", "2", "1", "1")),  # plate-name prefix
        ("Plate 1_2023_A1_s1_w1.tif", ("A01", "1", "1", "1", "1")),  # 1-digit column normalised
        ("AF48_s1_w1.tif", ("AF48", "1", "1", "1", "1")),  # 1536-well row
    ],
)
def test_parse_path_components(relpath, expected):
    parsed = ImageXpressHandler().parse_path(relpath)
    assert parsed is not None
    assert (parsed.well, parsed.site, parsed.channel, parsed.z_index, parsed.timepoint) == expected
    assert parsed.path == relpath


@pytest.mark.parametrize(
    "relpath",
    [
        "A01_s1_w1_thumb.tif",
        f"A01_s1_w1_thumb{GUID}.tif",
        "TimePoint_1/A01_s1_w2_thumbABC.TIF",
        "A01_s1_w1.png",
        "A01_s1_w1_mask.tif",
        "ground_truth.csv",
        "plate.HTD",
        "r01c01f01p01-ch1sk1fk1fl1.tiff",
        "notes.txt",
    ],
)
def test_parse_path_rejects_non_images(relpath):
    assert ImageXpressHandler().parse_path(relpath) is None


def test_imagefile_components():
    f = ImageXpressHandler().parse_path("TimePoint_3/ZStep_2/A01_s4_w1.tif")
    assert f.components == {"well": "A01", "site": "4", "channel": "1", "z_index": "2", "timepoint": "3"}
    assert f.component("z_index") == "2"
    with pytest.raises(ValueError, match="valid components: well, site, channel, z_index, timepoint"):
        f.component("plane")


def test_plate_with_timepoint_and_zstep_folders(tmp_path):
    names = imagexpress_names(wells=("A01", "A02"), sites=(1, 2), channels=(1, 2), zs=(1, 2, 3), timepoints=(1, 2))
    make_files(tmp_path, names)
    (tmp_path / "plate.HTD").write_text(HTD)
    plate = open_plate(tmp_path)
    assert plate.format_name == "ImageXpress"
    assert isinstance(plate.microscope_handler, ImageXpressHandler)
    assert plate.wells == ("A01", "A02")
    assert dict(plate.components) == {
        "well": ("A01", "A02"),
        "site": ("1", "2"),
        "channel": ("1", "2"),
        "z_index": ("1", "2", "3"),
        "timepoint": ("1", "2"),
    }
    assert len(plate.files) == 2 * 2 * 2 * 3 * 2
    assert len(plate.files_for_well("A02")) == 24
    assert plate.metadata_files == ("plate.HTD",)
    assert plate.ignored_files == ()
    assert plate.image_shape == (8, 10)
    assert plate.dtype == np.uint16
    assert dict(plate.channel_names) == {"1": "DAPI", "2": "FITC"}
    assert plate.pixel_size is None  # the HTD has none and these TIFFs have no MetaSeries header
    assert "TimePoint_2/ZStep_3/A02_s2_w2.tif" in {f.path for f in plate.files}


def test_plate_without_folders_single_site_and_channel(tmp_path):
    make_files(tmp_path, ["A01.tif", "A02.tif", "B01.tif"])
    plate = open_plate(tmp_path)
    assert plate.wells == ("A01", "A02", "B01")
    assert plate.components["site"] == ("1",)
    assert plate.components["channel"] == ("1",)
    assert plate.components["z_index"] == ("1",)
    assert dict(plate.channel_names) == {}


def test_single_channel_names_without_w(tmp_path):
    make_files(tmp_path, [f"TimePoint_1/A01_s{s}.tif" for s in range(1, 4)])
    plate = open_plate(tmp_path)
    assert plate.components["site"] == ("1", "2", "3")
    assert plate.components["channel"] == ("1",)


def test_thumbnails_and_guid_suffixes(tmp_path):
    names = [f"TimePoint_1/A01_s{s}_w{c}{GUID[:-2]}{s}{c}.tif" for s in (1, 2) for c in (1, 2)]
    thumbs = [f"TimePoint_1/A01_s{s}_w{c}_thumb{GUID}.tif" for s in (1, 2) for c in (1, 2)]
    make_files(tmp_path, names + thumbs)
    plate = open_plate(tmp_path)
    assert len(plate.files) == 4
    assert {f.path for f in plate.files} == set(names)
    assert set(plate.ignored_files) == set(thumbs)


def test_htd_parsing_and_latin1_description(tmp_path):
    htd = parse_htd(HTD)
    assert htd["HTSInfoFile"] == ["Version 1.0"]
    assert htd["WaveName2"] == ["FITC"]
    assert htd["XSites"] == ["2"]
    make_files(tmp_path, imagexpress_names(wells=("A01",), sites=(1,), channels=(1, 2)))
    # Real HTD files can carry Windows-1252 bytes; the channel names must still come through.
    (tmp_path / "Plate.HTD").write_bytes(HTD.replace("test plate", "Zellkultur \xb5m").encode("latin-1"))
    assert dict(open_plate(tmp_path).channel_names) == {"1": "DAPI", "2": "FITC"}
    with pytest.raises(ValueError, match="HTSInfoFile"):
        parse_htd('"Description", "no header"\n')


def test_metaseries_pixel_size_from_header(sample_plate_dir):
    plate = open_plate(sample_plate_dir)
    assert plate.pixel_size == pytest.approx(0.65)


def test_format_path_keeps_layout():
    h = ImageXpressHandler()
    like = h.parse_path(f"TimePoint_1/ZStep_2/P_A01_s1_w1{GUID}.tif")
    comps = {"well": "B03", "site": "4", "channel": "2", "z_index": "5", "timepoint": "7"}
    assert h.format_path(comps, like) == "TimePoint_7/ZStep_5/P_B03_s4_w2.tif"
    like = h.parse_path("A01_w1.TIF")
    assert h.format_path({**comps}, like) == "B03_w2.TIF"
    assert isinstance(like, ImageFile)
