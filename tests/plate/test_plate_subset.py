"""Plate.subset: a view restricted to some component values, sharing the index."""

from __future__ import annotations

import pytest

from plateflow.plate import open_plate


def test_subset_one_site_of_one_well(sample_plate_dir):
    plate = open_plate(sample_plate_dir)
    view = plate.subset(well="B02", site="2")
    assert view.wells == ("B02",)
    assert view.components["site"] == ("2",) and view.components["channel"] == ("1", "2")
    assert len(view.files) == 2 * 3  # channels x z planes
    assert all(f.well == "B02" and f.site == "2" for f in view.files)
    assert view.root == plate.root and view.image_shape == plate.image_shape
    groups = view.microscope_handler.auto_detect_patterns(variable_components=("z_index",))
    assert [g.label for g in groups] == ["B02 site=2 channel=1 timepoint=1", "B02 site=2 channel=2 timepoint=1"]
    assert len(plate.files) == 2 * 2 * 2 * 3  # the original is untouched


def test_subset_rejects_unknown_values(sample_plate_dir):
    plate = open_plate(sample_plate_dir)
    with pytest.raises(ValueError, match="site 9 not in the plate; values: 1, 2"):
        plate.subset(site="9")
    with pytest.raises(ValueError, match="'zstep' is not a plate component"):
        plate.subset(zstep="1")


def test_subset_keeps_the_missing_files_of_its_selection(tmp_path):
    from ._build import imagexpress_names, make_files

    names = imagexpress_names(wells=("A01", "A02"), sites=(1, 2), channels=(1, 2), zs=(1, 2), timepoints=(1,))
    gone = ["TimePoint_1/ZStep_2/A02_s2_w1.tif", "TimePoint_1/ZStep_1/A01_s1_w2.tif"]
    make_files(tmp_path, [n for n in names if n not in gone], tiff=False)
    plate = open_plate(tmp_path, allow_ragged=True)
    assert plate.subset(well="A01").missing_files == ("TimePoint_1/ZStep_1/A01_s1_w2.tif",)
    assert plate.subset(well="A02", site="2").missing_files == ("TimePoint_1/ZStep_2/A02_s2_w1.tif",)
    assert plate.subset(well="A02", site="1").missing_files == ()
    assert plate.subset(channel=("1", "2")).missing_files == plate.missing_files
