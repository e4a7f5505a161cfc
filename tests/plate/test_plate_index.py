"""Plate index: detection errors, ragged plates, stray files, paths, grouping, speed."""

from __future__ import annotations

import os
import pickle

import pytest

from plateflow.plate import (
    ImageXpressHandler,
    PlateFormatError,
    RaggedPlateError,
    group_files,
    natural_sorted,
    open_plate,
    well_id,
    well_position,
)
from plateflow.plate import index as plate_index

from ._build import imagexpress_names, make_files


def test_natural_sort_orders_numbers():
    assert natural_sorted(["10", "9", "1", "2"]) == ["1", "2", "9", "10"]
    assert natural_sorted(["A10", "A2", "B1", "A1"]) == ["A1", "A2", "A10", "B1"]


def test_components_sorted_naturally(tmp_path):
    make_files(tmp_path, [f"A01_s{s}_w1.tif" for s in range(1, 12)], tiff=False)
    plate = open_plate(tmp_path)
    assert plate.components["site"] == tuple(str(s) for s in range(1, 12))
    assert [f.site for f in plate.files] == [str(s) for s in range(1, 12)]


def test_unknown_folder_error_lists_formats_and_names(tmp_path):
    make_files(tmp_path, ["image_001.png", "notes.txt", "scan 3.tif"], tiff=False)
    with pytest.raises(PlateFormatError) as info:
        open_plate(tmp_path)
    text = str(info.value)
    assert "ImageXpress" in text and "OperaPhenix" in text
    assert "A01_s1_w1.tif" in text and "r01c01f01p01-ch1sk1fk1fl1.tiff" in text
    assert "image_001.png" in text and "notes.txt" in text and "scan 3.tif" in text


def test_empty_folder_and_missing_folder(tmp_path):
    with pytest.raises(PlateFormatError, match="no files found"):
        open_plate(tmp_path)
    with pytest.raises(FileNotFoundError, match="plate folder not found"):
        open_plate(tmp_path / "nope")


def test_forced_microscope_is_validated(tmp_path):
    make_files(tmp_path, ["A01_s1_w1.tif"], tiff=False)
    with pytest.raises(ValueError, match="choose one of: ImageXpress, OperaPhenix"):
        open_plate(tmp_path, microscope="Incell")
    with pytest.raises(PlateFormatError, match="no OperaPhenix images"):
        open_plate(tmp_path, microscope="OperaPhenix")
    assert open_plate(tmp_path, microscope="ImageXpress").format_name == "ImageXpress"


def test_ragged_plate_lists_exact_missing_files(tmp_path):
    names = imagexpress_names(wells=("A01", "A02"), sites=(1, 2), channels=(1, 2), zs=(1, 2), timepoints=(1,))
    gone = ["TimePoint_1/ZStep_2/A02_s2_w1.tif", "TimePoint_1/ZStep_1/A01_s1_w2.tif"]
    make_files(tmp_path, [n for n in names if n not in gone], tiff=False)
    with pytest.raises(RaggedPlateError) as info:
        open_plate(tmp_path)
    assert info.value.missing == ("TimePoint_1/ZStep_1/A01_s1_w2.tif", "TimePoint_1/ZStep_2/A02_s2_w1.tif")
    assert "TimePoint_1/ZStep_2/A02_s2_w1.tif" in str(info.value)
    assert "allow_ragged=True" in str(info.value)
    plate = open_plate(tmp_path, allow_ragged=True)
    assert plate.missing_files == info.value.missing
    assert len(plate.files) == len(names) - 2


def test_ragged_well_missing_a_whole_site(tmp_path):
    make_files(tmp_path, ["A01_s1_w1.tif", "A01_s2_w1.tif", "B01_s1_w1.tif"], tiff=False)
    with pytest.raises(RaggedPlateError) as info:
        open_plate(tmp_path)
    assert info.value.missing == ("B01_s2_w1.tif",)


def test_duplicate_images_are_an_error(tmp_path):
    make_files(tmp_path, ["A01_s1_w1.tif", "A01_s1_w1.TIF", "A01_s2_w1.tif"], tiff=False)
    with pytest.raises(PlateFormatError, match="present twice.*A01_s1_w1"):
        open_plate(tmp_path)


def test_stray_files_ignored_and_listed(tmp_path):
    make_files(tmp_path, imagexpress_names(wells=("A01",), sites=(1,), channels=(1,)), tiff=False)
    strays = ["ground_truth.csv", "notes/readme.txt", ".DS_Store", "TimePoint_1/preview.png", "A01_s1_w1_mask.tif"]
    make_files(tmp_path, strays, tiff=False)
    plate = open_plate(tmp_path)
    assert [f.path for f in plate.files] == ["A01_s1_w1.tif"]
    assert sorted(plate.ignored_files) == sorted(strays)


def test_unicode_and_spaces_in_paths(tmp_path):
    root = tmp_path / "Platte Nr 1 – Zellen µm 細胞"
    make_files(root, [f"TimePoint_1/A01_s{s}_w1.tif" for s in (1, 2)])
    plate = open_plate(root)
    assert plate.root == root
    assert len(plate.files) == 2
    assert plate.image_shape == (8, 10)
    assert plate.path_of(plate.files[0]).is_file()


def test_symlinked_plate_folder(tmp_path):
    real = tmp_path / "real plate"
    make_files(real, imagexpress_names(wells=("A01", "B01"), sites=(1,), channels=(1, 2), timepoints=(1,)))
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    plate = open_plate(link)
    assert plate.root == link
    assert plate.wells == ("A01", "B01")
    assert plate.image_shape == (8, 10)


def test_symlink_loop_inside_plate_is_walked_once(tmp_path):
    make_files(tmp_path, ["TimePoint_1/A01_s1_w1.tif"], tiff=False)
    (tmp_path / "TimePoint_1" / "again").symlink_to(tmp_path, target_is_directory=True)
    assert len(open_plate(tmp_path).files) == 1


def test_header_read_once_and_lazily(tmp_path, monkeypatch):
    make_files(tmp_path, imagexpress_names(wells=("A01",), sites=(1, 2), channels=(1,)))
    calls = []
    real = plate_index._read_header
    monkeypatch.setattr(plate_index, "_read_header", lambda p: calls.append(p) or real(p))
    plate = open_plate(tmp_path)
    assert calls == []
    assert plate.image_shape == (8, 10) and plate.dtype == "uint16" and plate.pixel_size is None
    assert len(calls) == 1


def test_corrupt_first_image_header_names_file(tmp_path):
    make_files(tmp_path, ["A01_s1_w1.tif"], tiff=False)
    plate = open_plate(tmp_path)
    with pytest.raises(PlateFormatError, match=r"A01_s1_w1\.tif.*empty"):
        _ = plate.image_shape


def test_scan_is_single_walk(tmp_path, monkeypatch):
    make_files(tmp_path, imagexpress_names(wells=("A01", "A02", "B01"), sites=(1, 2), channels=(1,), zs=(1, 2), timepoints=(1,)), tiff=False)
    walked = []
    real_scandir = os.scandir
    monkeypatch.setattr(plate_index.os, "scandir", lambda p: walked.append(p) or real_scandir(p))
    plate = open_plate(tmp_path)
    plate.microscope_handler.auto_detect_patterns()
    plate.files_for_well("B01")
    # root, TimePoint_1, ZStep_1, ZStep_2: once each, not once per well
    assert len(walked) == 4


# -- grouping --------------------------------------------------------------------------


@pytest.fixture
def zplate(tmp_path):
    names = imagexpress_names(wells=("A01", "B02"), sites=(1, 2), channels=(1, 2), zs=(1, 2, 3), timepoints=(1,))
    make_files(tmp_path, names, tiff=False)
    return open_plate(tmp_path)


def test_default_grouping_stacks_sites(zplate):
    groups = zplate.microscope_handler.auto_detect_patterns()
    assert len(groups) == 2 * 2 * 3  # well x channel x z
    first = groups[0]
    assert first.well == "A01"
    assert dict(first.fixed) == {"well": "A01", "channel": "1", "z_index": "1", "timepoint": "1"}
    assert [f.site for f in first.files] == ["1", "2"]
    assert first.group_key is None
    assert first.label == "A01 channel=1 z_index=1 timepoint=1"


def test_grouping_z_stacks_by_channel(zplate):
    groups = zplate.microscope_handler.auto_detect_patterns(well_filter=["B02"], variable_components=("z_index",), group_by="channel")
    assert len(groups) == 2 * 2  # site x channel
    assert [(g.fixed["site"], g.group_key) for g in groups] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    for g in groups:
        assert g.well == "B02"
        assert [f.z_index for f in g.files] == ["1", "2", "3"]
        assert {f.channel for f in g.files} == {g.group_key}
        assert "z_index" not in g.fixed
        assert g.files[0].path == f"TimePoint_1/ZStep_1/B02_s{g.fixed['site']}_w{g.group_key}.tif"


def test_grouping_two_variable_components_orders_in_components_order(zplate):
    (group, *_rest) = zplate.microscope_handler.auto_detect_patterns(well_filter="A01", variable_components=("z_index", "site"))
    assert [(f.site, f.z_index) for f in group.files] == [("1", "1"), ("1", "2"), ("1", "3"), ("2", "1"), ("2", "2"), ("2", "3")]
    assert len(_rest) == 1


def test_grouping_validation(zplate):
    handler = zplate.microscope_handler
    with pytest.raises(ValueError, match="unknown component.*'plane'.*valid components: well, site, channel, z_index, timepoint"):
        handler.auto_detect_patterns(variable_components=("plane",))
    with pytest.raises(ValueError, match="group_by.*'colour'"):
        handler.auto_detect_patterns(group_by="colour")
    with pytest.raises(ValueError, match="also in variable_components"):
        handler.auto_detect_patterns(variable_components=("channel",), group_by="channel")
    with pytest.raises(ValueError, match="cannot include 'well'"):
        handler.auto_detect_patterns(variable_components=("well",))
    with pytest.raises(ValueError, match="'C03' not in the plate"):
        handler.auto_detect_patterns(well_filter=["C03"])


def test_group_files_on_output_listing(zplate):
    """The executor parses an earlier step's output listing (same relative paths) and groups it."""
    listing = [f.path for f in zplate.files_for_well("A01")] + ["measurements.csv"]
    handler = ImageXpressHandler()
    files = handler.parse_paths(listing)
    assert len(files) == 12
    groups = handler.group_files(files, variable_components="site")
    assert groups == group_files(zplate.files_for_well("A01"), ("site",))


def test_unbound_handler_explains(zplate):
    with pytest.raises(RuntimeError, match="not bound to a plate"):
        ImageXpressHandler().auto_detect_patterns()


def test_plate_and_groups_pickle(zplate):
    groups = zplate.microscope_handler.auto_detect_patterns()
    assert pickle.loads(pickle.dumps(groups)) == groups
    again = pickle.loads(pickle.dumps(zplate))
    assert again.wells == zplate.wells
    assert again.microscope_handler.auto_detect_patterns() == groups


def test_index_of_a_384_well_plate(tmp_path):
    """Counts only: the 1 s target is measured in benchmarks/bench_plate_index.py."""
    rows = "ABCDEFGHIJKLMNOP"
    wells = [f"{r}{c:02d}" for r in rows for c in range(1, 25)]
    folder = tmp_path / "TimePoint_1"
    folder.mkdir()
    for w in wells:
        for s in range(1, 10):
            for ch in range(1, 5):
                (folder / f"{w}_s{s}_w{ch}.tif").touch()
    plate = open_plate(tmp_path)
    assert len(plate.files) == 384 * 9 * 4
    assert len(plate.wells) == 384
    assert plate.components["site"] == tuple(str(s) for s in range(1, 10))


def test_well_position_inverts_well_id():
    assert well_position("A01") == (1, 1)
    assert well_position("b3") == (2, 3)
    assert well_position("AF48") == (32, 48)
    for row in (1, 8, 16, 26, 27, 32):
        for column in (1, 24, 48):
            assert well_position(well_id(row, column)) == (row, column)
    with pytest.raises(ValueError, match="not a well id"):
        well_position("r01c01")


def test_row_letters_of_plate_rows():
    from plateflow._naming import row_letters

    assert [row_letters(r) for r in (1, 8, 16, 26, 27, 32, 52, 53)] == ["A", "H", "P", "Z", "AA", "AF", "AZ", "BA"]
    with pytest.raises(ValueError, match="plate row 0 must be 1 or more"):
        row_letters(0)
