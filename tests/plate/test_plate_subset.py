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
