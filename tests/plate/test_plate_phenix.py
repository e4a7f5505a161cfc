"""Opera Phenix / Operetta names and Harmony index XML."""

from __future__ import annotations

import pytest

from plateflow.plate import OperaPhenixHandler, open_plate, well_id

from ._build import make_files, phenix_index_xml


def _phenix_names(rows=(1, 2), cols=(1, 12), fields=(1, 2), planes=(1, 2), channels=(1, 2), sk=(1,)):
    return [
        f"Images/r{r:02d}c{c:02d}f{f:02d}p{p:02d}-ch{ch}sk{t}fk1fl1.tiff"
        for r in rows for c in cols for f in fields for p in planes for ch in channels for t in sk
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("r01c01f01p01-ch1sk1fk1fl1.tiff", ("A01", "1", "1", "1", "1")),
        ("Images/r16c24f09p03-ch4sk2fk1fl1.tiff", ("P24", "9", "4", "3", "2")),
        ("r02c10f10p12-ch2sk10fk1fl1.tif", ("B10", "10", "2", "12", "10")),
        ("R01C01F01P01-CH1SK1FK1FL1.TIFF", ("A01", "1", "1", "1", "1")),
    ],
)
def test_parse_path(name, expected):
    f = OperaPhenixHandler().parse_path(name)
    assert (f.well, f.site, f.channel, f.z_index, f.timepoint) == expected


@pytest.mark.parametrize("name", ["A01_s1_w1.tif", "r01c01f01p01.tiff", "Index.idx.xml", "r01c01f01p01-ch1sk1fk1fl1.png"])
def test_parse_path_rejects(name):
    assert OperaPhenixHandler().parse_path(name) is None


def test_row_column_to_well_id():
    assert well_id(1, 1) == "A01"
    assert well_id(16, 24) == "P24"
    assert well_id(27, 3) == "AA03"
    assert well_id("c7") == "C07"


def test_phenix_plate_with_index_idx_xml(tmp_path):
    names = _phenix_names()
    make_files(tmp_path, names)
    (tmp_path / "Images" / "Index.idx.xml").write_text(
        phenix_index_xml({1: "HOECHST 33342", 2: "Alexa 488"}, 6.4998e-07, maps=True, images=names[:4])
    )
    plate = open_plate(tmp_path)
    assert plate.format_name == "OperaPhenix"
    assert isinstance(plate.microscope_handler, OperaPhenixHandler)
    assert plate.wells == ("A01", "A12", "B01", "B12")
    assert plate.components["site"] == ("1", "2")
    assert plate.components["z_index"] == ("1", "2")
    assert len(plate.files) == 4 * 2 * 2 * 2
    assert dict(plate.channel_names) == {"1": "HOECHST 33342", "2": "Alexa 488"}
    assert plate.pixel_size == pytest.approx(0.64998)
    assert plate.metadata_files == ("Images/Index.idx.xml",)
    assert plate.image_shape == (8, 10)


def test_phenix_plate_with_old_index_xml_per_image(tmp_path):
    names = _phenix_names(rows=(3,), cols=(4,), fields=(1,), planes=(1,), channels=(1, 2, 3))
    make_files(tmp_path, names)
    (tmp_path / "Index.xml").write_text(
        phenix_index_xml({1: "DAPI", 2: "GFP", 3: "mCherry"}, 1.2e-06, maps=False, per_image=True, images=names)
    )
    plate = open_plate(tmp_path)
    assert plate.wells == ("C04",)
    assert dict(plate.channel_names) == {"1": "DAPI", "2": "GFP", "3": "mCherry"}
    assert plate.pixel_size == pytest.approx(1.2)


def test_phenix_without_index_has_no_metadata(tmp_path):
    make_files(tmp_path, _phenix_names(rows=(1,), cols=(1,), fields=(1,), planes=(1,), channels=(1,)), tiff=True)
    plate = open_plate(tmp_path)
    assert plate.pixel_size is None
    assert dict(plate.channel_names) == {}


def test_phenix_format_path():
    h = OperaPhenixHandler()
    like = h.parse_path("Images/r01c01f01p01-ch1sk1fk1fl1.tiff")
    comps = {"well": "B12", "site": "3", "channel": "2", "z_index": "4", "timepoint": "1"}
    assert h.format_path(comps, like) == "Images/r02c12f03p04-ch2sk1fk1fl1.tiff"
    assert h.parse_path(h.format_path(comps, like)).components == comps
