"""Nuclei segmentation counts the sample plate's nuclei within 5 % per site on average."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow.library import numpy_functions as nf


@pytest.fixture(scope="module")
def nuclei_plate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return Path(request.getfixturevalue("sample_plate_dir"))
    except pytest.FixtureLookupError:
        from plateflow.plate.sample import generate_sample_plate

        return generate_sample_plate(tmp_path_factory.mktemp("plate") / "plate", wells=("A01", "B02", "C03"), sites=3)


def test_nucleus_counts_match_ground_truth(nuclei_plate: Path) -> None:
    truth = {
        (row["well"], int(row["site"])): int(row["nucleus_count"])
        for row in csv.DictReader((nuclei_plate / "ground_truth.csv").open())
    }
    planes: dict[tuple[str, int], list[Path]] = {}
    for path in sorted(nuclei_plate.rglob("*_w1.tif")):  # channel 1: nuclei, one file per Z plane
        well, site, _ = path.stem.split("_")
        planes.setdefault((well, int(site[1:])), []).append(path)
    assert set(planes) == set(truth)
    errors = []
    for key, paths in planes.items():
        projected = nf.max_projection(np.stack([tifffile.imread(p) for p in paths]))
        found = int(nf.segment_nuclei(projected).max())
        errors.append(abs(found - truth[key]) / truth[key])
    assert np.mean(errors) < 0.05, f"mean relative count error {np.mean(errors):.3f}"
