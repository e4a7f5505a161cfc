"""Cells from nuclei seeds, per-object measurements in every channel, and the per-well / plate summaries."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from plateflow.library import numpy_functions as nf
from plateflow.library import profiles


def _two_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (2, 60, 90) stack: nuclei (channel 0) and cell bodies (channel 1), and the true cell masks."""
    yy, xx = np.mgrid[:60, :90]
    nuclei = np.zeros((60, 90), np.float32)
    bodies = np.zeros((60, 90), np.float32)
    cells = np.zeros((60, 90), np.int32)
    # Two cells whose bodies touch (centres 36 px apart, radii 20): the boundary lies half-way.
    for label, (cy, cx) in enumerate([(30, 25), (30, 61)], start=1):
        nuclei[(yy - cy) ** 2 + (xx - cx) ** 2 <= 7**2] = 1000.0
        radius = np.hypot(yy - cy, xx - cx)
        body = radius <= 20
        # Brightest at the centre, as a cell body is thickest there; the touching edges meet in a seam.
        bodies = np.maximum(bodies, np.where(body, 250.0 + (200.0 + 50.0 * label) * (1 - radius / 20), 0.0))
        cells[body & (cells == 0)] = label
    cells[(cells > 0) & (xx >= 43)] = 2  # the true boundary of the touching bodies is x = 43
    cells[(cells > 0) & (xx < 43)] = 1
    rng = np.random.default_rng(3)
    return np.stack([nuclei, bodies]) + rng.normal(0, 5, (2, 60, 90)).astype(np.float32), cells, (nuclei > 0)


@pytest.mark.parametrize("method", ["propagation", "watershed", "distance"])
def test_cells_grow_from_their_nuclei_and_keep_their_numbers(method: str) -> None:
    stack, true_cells, nucleus_pixels = _two_cells()
    same, nuclei = nf.identify_nuclei(stack, nuclei_channel=0)
    assert same is stack and nuclei.shape == (1, 60, 90) and nuclei.max() == 2
    _, cells, cytoplasm = nf.identify_cells(
        stack, nuclei_labels=nuclei, cell_channel=1, method=method, max_distance=25 if method == "distance" else 0
    )
    assert cells.dtype == np.int32 and cytoplasm.dtype == np.int32 and cells.shape == (1, 60, 90)
    for label in (1, 2):
        # Numbered as the nucleus, and the nucleus lies inside its cell.
        nucleus = nuclei[0] == label
        assert (cells[0][nucleus] == label).all()
        truth = true_cells == np.bincount(true_cells[nucleus]).argmax()
        found = cells[0] == label
        assert (found & truth).sum() / (found | truth).sum() > 0.9, method
        # The cytoplasm is the cell minus its nucleus, with the cell's number.
        np.testing.assert_array_equal(cytoplasm[0] == label, found & ~nucleus)
    assert (cells[0][true_cells == 0] > 0).mean() < 0.02  # the background stays background


def test_identify_cells_rejects_labels_of_another_shape() -> None:
    stack, _, _ = _two_cells()
    with pytest.raises(ValueError, match=r"nuclei_labels has shape \(1, 10, 10\).*\(60, 90\)"):
        nf.identify_cells(stack, nuclei_labels=np.zeros((1, 10, 10), np.int32))
    with pytest.raises(ValueError, match="cell_channel=5 but the stack has 2 images"):
        nf.identify_cells(stack, nuclei_labels=np.zeros((1, 60, 90), np.int32), cell_channel=5)


def test_measure_objects_matches_direct_computation() -> None:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 1000, (3, 40, 50)).astype(np.uint16)
    nuclei = np.zeros((40, 50), np.int32)
    nuclei[5:15, 5:20] = 1  # a 10 x 15 rectangle
    nuclei[25:35, 30:36] = 2
    cells = np.zeros((40, 50), np.int32)
    cells[2:18, 2:24] = 1
    cells[22:38, 26:40] = 2
    cytoplasm = np.where(nuclei > 0, 0, cells)
    _, nuc_rows, cell_rows, cyto_rows, relations = nf.measure_objects(
        stack, nuclei_labels=nuclei[None], cell_labels=cells[None], cytoplasm_labels=cytoplasm[None],
        channel_names=("DNA", "Actin", "Mito"),
    )
    assert [r["ObjectNumber"] for r in nuc_rows] == [1, 2] == [r["ObjectNumber"] for r in cell_rows]
    first = nuc_rows[0]
    assert first["Nuclei_AreaShape_Area"] == 150
    assert first["Nuclei_Location_Center_X"] == pytest.approx(12.0) and first["Nuclei_Location_Center_Y"] == pytest.approx(9.5)
    assert first["Nuclei_AreaShape_Solidity"] == pytest.approx(1.0)
    # A 10 x 15 rectangle: eccentricity from its second moments, sqrt(1 - (b/a)^2) with a^2 : b^2 = 15^2 - 1 : 10^2 - 1.
    assert first["Nuclei_AreaShape_Eccentricity"] == pytest.approx(np.sqrt(1 - (10**2 - 1) / (15**2 - 1)), rel=1e-6)
    for c, channel in enumerate(("DNA", "Actin", "Mito")):
        values = stack[c][cytoplasm == 2].astype(np.float64)
        row = cyto_rows[1]
        assert row[f"Cytoplasm_Intensity_MeanIntensity_{channel}"] == pytest.approx(values.mean())
        assert row[f"Cytoplasm_Intensity_MedianIntensity_{channel}"] == pytest.approx(np.median(values))
        assert row[f"Cytoplasm_Intensity_MaxIntensity_{channel}"] == values.max()
        assert row[f"Cytoplasm_Intensity_MinIntensity_{channel}"] == values.min()
        assert row[f"Cytoplasm_Intensity_IntegratedIntensity_{channel}"] == pytest.approx(values.sum())
        assert row[f"Cytoplasm_Intensity_StdIntensity_{channel}"] == pytest.approx(values.std())
    assert cyto_rows[1]["Cytoplasm_AreaShape_Area"] == int((cytoplasm == 2).sum())
    assert relations == [
        {"Nuclei_ObjectNumber": 1, "Cells_ObjectNumber": 1},
        {"Nuclei_ObjectNumber": 2, "Cells_ObjectNumber": 2},
    ]


def test_measure_objects_names_channels_by_default_and_checks_names() -> None:
    stack = np.ones((2, 8, 8), np.float32)
    labels = np.zeros((1, 8, 8), np.int32)
    labels[0, 2:5, 2:5] = 1
    _, rows, *_ = nf.measure_objects(stack, nuclei_labels=labels, cell_labels=labels, cytoplasm_labels=labels)
    assert "Nuclei_Intensity_MeanIntensity_C2" in rows[0]
    with pytest.raises(ValueError, match="channel_names has 1 names but the stack has 2 images"):
        nf.measure_objects(stack, nuclei_labels=labels, cell_labels=labels, cytoplasm_labels=labels, channel_names=("DNA",))
    with pytest.raises(ValueError, match="must name each channel once"):
        nf.measure_objects(stack, nuclei_labels=labels, cell_labels=labels, cytoplasm_labels=labels, channel_names=("A", "A"))


def test_summaries_per_well_and_for_the_plate(tmp_path: Path) -> None:
    rows = [
        {"well": "A01", "site": 1, "ObjectNumber": 1, "Nuclei_AreaShape_Area": 100, "Nuclei_Intensity_MeanIntensity_DNA": 1.0},
        {"well": "A01", "site": 2, "ObjectNumber": 1, "Nuclei_AreaShape_Area": 200, "Nuclei_Intensity_MeanIntensity_DNA": 3.0},
        {"well": "A01", "site": 2, "ObjectNumber": 2, "Nuclei_AreaShape_Area": 600, "Nuclei_Intensity_MeanIntensity_DNA": 8.0},
        {"well": "B02", "site": 1, "ObjectNumber": 1, "Nuclei_AreaShape_Area": 50, "Nuclei_Intensity_MeanIntensity_DNA": 2.0},
    ]
    with (tmp_path / "nuclei_measurements.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    per_well_path, plate_path = profiles.summarize_run(tmp_path)
    per_well = profiles.read_table(per_well_path)
    assert per_well == [
        {"Metadata_Well": "A01", "Count_Nuclei": 3, "Mean_Nuclei_AreaShape_Area": 300.0, "Median_Nuclei_AreaShape_Area": 200.0,
         "Mean_Nuclei_Intensity_MeanIntensity_DNA": 4.0, "Median_Nuclei_Intensity_MeanIntensity_DNA": 3.0},
        {"Metadata_Well": "B02", "Count_Nuclei": 1, "Mean_Nuclei_AreaShape_Area": 50.0, "Median_Nuclei_AreaShape_Area": 50.0,
         "Mean_Nuclei_Intensity_MeanIntensity_DNA": 2.0, "Median_Nuclei_Intensity_MeanIntensity_DNA": 2.0},
    ]
    plate = profiles.read_table(plate_path)
    assert plate == [{"Metadata_WellCount": 2, "Count_Nuclei": 4, "Mean_Nuclei_AreaShape_Area": 237.5,
                      "Median_Nuclei_AreaShape_Area": 150.0, "Mean_Nuclei_Intensity_MeanIntensity_DNA": 3.5,
                      "Median_Nuclei_Intensity_MeanIntensity_DNA": 2.5}]
    assert profiles.with_metadata_names(rows[:1])[0] == {
        "Metadata_Well": "A01", "Metadata_Site": 1, "ObjectNumber": 1, "Nuclei_AreaShape_Area": 100,
        "Nuclei_Intensity_MeanIntensity_DNA": 1.0,
    }
    empty = profiles.summarize_wells(rows, wells=["C03"])[-1]
    assert empty["Metadata_Well"] == "C03" and empty["Count_Nuclei"] == 0 and np.isnan(empty["Mean_Nuclei_AreaShape_Area"])
    with pytest.raises(FileNotFoundError, match="no measurement table at .*cells_measurements.csv"):
        profiles.summarize_run(tmp_path, "cells_measurements")


def test_assay_pipeline_runs_on_the_sample_plate(sample_plate_dir: Path, tmp_path: Path) -> None:
    """Nuclei, cells and measurements as three steps of one run; the merged tables summarize per well."""
    import plateflow
    from plateflow import FunctionStep, Pipeline
    from plateflow.library import registry

    get = registry.get
    project = FunctionStep(func=get("numpy.max_projection"), variable_components=("z_index",), name="project")
    per_site = ("channel",)
    pipeline = Pipeline([
        project,
        FunctionStep(func=get("numpy.identify_nuclei"), variable_components=per_site, name="nuclei"),
        FunctionStep(func=(get("numpy.identify_cells"), {"cell_channel": 1}), variable_components=per_site, name="cells"),
        FunctionStep(func=(get("numpy.measure_objects"), {"channel_names": ("DNA", "Body")}), variable_components=per_site, name="measure"),
    ])
    out = tmp_path / "out"
    report = plateflow.run(pipeline, sample_plate_dir, out, workers=1)
    assert not report.failed, report.failed
    truth = {(r["well"], r["site"]): int(r["nucleus_count"]) for r in csv.DictReader((sample_plate_dir / "ground_truth.csv").open())}
    nuclei = profiles.read_table(out / "nuclei_measurements.csv")
    counted: dict[tuple[str, str], int] = {}
    for row in nuclei:
        counted[(row["well"], str(row["site"]))] = counted.get((row["well"], str(row["site"])), 0) + 1
    assert set(counted) == set(truth)
    assert np.mean([abs(counted[k] - truth[k]) / truth[k] for k in truth]) < 0.1
    cells = profiles.read_table(out / "cells_measurements.csv")
    relations = profiles.read_table(out / "object_relationships.csv")
    assert len(relations) == len(nuclei) and all(r["Cells_ObjectNumber"] == r["Nuclei_ObjectNumber"] for r in relations)
    # Cells are larger than their nuclei and brighter in the body channel than nuclei are.
    assert np.median([r["Cells_AreaShape_Area"] for r in cells]) > 1.5 * np.median([r["Nuclei_AreaShape_Area"] for r in nuclei])
    per_well, _ = profiles.summarize_run(out)
    summary = {row["Metadata_Well"]: row for row in profiles.read_table(per_well)}
    for well in ("A01", "B02"):
        assert summary[well]["Count_Nuclei"] == sum(v for (w, _), v in counted.items() if w == well)
