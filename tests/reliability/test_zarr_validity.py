"""OME-Zarr output is a valid NGFF HCS plate after any run: a ``--wells`` subset, failed wells,
a cancelled run and its resume (validated with ome-zarr-models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plateflow import FunctionStep
from plateflow.execution import run

from . import functions as f
from .conftest import WELLS, pipeline

zarr = pytest.importorskip("zarr")


def _validated(out: Path) -> tuple[set[str], set[str]]:
    """The store validated by ome-zarr-models; returns (wells listed, wells with image arrays)."""
    from ome_zarr_models.v05.hcs import HCS

    (store,) = out.glob("*.zarr")
    group = zarr.open_group(str(store), mode="r")
    HCS.from_zarr(group)  # raises when the store is not a valid NGFF 0.5 HCS plate
    listed = {well["path"] for well in group.attrs["ome"]["plate"]["wells"]}
    with_arrays = {f"{row.name}/{column.name}" for row in store.iterdir() if row.is_dir() and len(row.name) <= 2
                   for column in row.iterdir() if (column / "0" / "0" / "zarr.json").is_file()}
    return listed, with_arrays


def test_a_wells_subset_lists_only_the_wells_it_wrote(make_plate, tmp_path):
    out = tmp_path / "out"
    report = run(pipeline(), make_plate(), out, wells=["A02"], workers=1, output_format="zarr", progress=False)
    assert report.ok, report.summary()
    listed, with_arrays = _validated(out)
    assert listed == with_arrays == {"A/2"}


def test_failed_and_cancelled_wells_leave_a_valid_plate_and_resume_completes_it(make_plate, tmp_path):
    plate = make_plate()
    marker = tmp_path / "fail-once"
    marker.touch()
    steps = pipeline(FunctionStep((f.raise_memory_error, {"marker": str(marker)}), name="Fault", variable_components=("site",)))
    out = tmp_path / "out"
    finished: list[str] = []
    report = run(steps, plate, out, workers=1, output_format="zarr", progress=False,
                 on_well=lambda r: finished.append(r.well), cancel=lambda: len(finished) >= 2)
    assert len(report.failed) == 1 and len(report.succeeded) == 1 and len(report.cancelled) == 1, report.summary()
    listed, with_arrays = _validated(out)
    assert listed == with_arrays and len(listed) == 1
    resumed = run(steps, plate, out, workers=1, output_format="zarr", progress=False, resume=True)
    assert resumed.ok and sorted(resumed.succeeded + resumed.skipped) == sorted(WELLS), resumed.summary()
    listed, with_arrays = _validated(out)
    assert listed == with_arrays == {"A/1", "A/2", "B/1"}
