"""run(cancel=..., on_well=...): stopping a run part-way, and resuming it to the same outputs."""

from __future__ import annotations

import json

import pytest

from plateflow import run
from plateflow.execution.demo import demo_pipeline

from .conftest import tree_bytes


@pytest.fixture(scope="module")
def reference(four_well_plate, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "out"
    report = run(demo_pipeline(), four_well_plate, out, workers=1, progress=False)
    assert report.ok
    return tree_bytes(out)


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_after_the_first_well_then_resume(four_well_plate, tmp_path, reference, workers):
    finished = []
    out = tmp_path / "out"
    report = run(
        demo_pipeline(),
        four_well_plate,
        out,
        workers=workers,
        progress=False,
        on_well=lambda result: finished.append(result.well),
        cancel=lambda: len(finished) >= 1,
    )
    assert finished and report.succeeded == [w for w in ["A01", "A02", "B01", "B02"] if w in finished]
    assert report.cancelled and set(report.cancelled) | set(report.succeeded) == {"A01", "A02", "B01", "B02"}
    assert not report.ok and report.failed == {}
    assert "cancelled before" in report.summary()
    manifest = json.loads((out / "plateflow-manifest.json").read_text())
    assert {w: manifest["wells"][w]["status"] for w in report.cancelled} == {w: "pending" for w in report.cancelled}

    resumed = run(demo_pipeline(), four_well_plate, out, workers=workers, progress=False, resume=True)
    assert resumed.ok and sorted(resumed.skipped) == sorted(report.succeeded)
    assert sorted(resumed.succeeded) == sorted(report.cancelled)
    assert tree_bytes(out) == reference


def test_on_well_sees_every_result(small_plate, tmp_path):
    seen = []
    report = run(demo_pipeline(), small_plate, tmp_path / "out", progress=False, on_well=seen.append)
    assert [r.well for r in seen] == ["A01", "B02"] and all(r.ok for r in seen)
    assert report.ok and report.cancelled == []


def test_resume_refuses_another_output_format(small_plate, tmp_path):
    out = tmp_path / "out"
    assert run(demo_pipeline(), small_plate, out, wells=["A01"], progress=False).ok
    with pytest.raises(ValueError, match="wrote tiff output; resuming it with output_format='zarr' would mix formats"):
        run(demo_pipeline(), small_plate, out, progress=False, resume=True, output_format="zarr")
    resumed = run(demo_pipeline(), small_plate, out, progress=False, resume=True)
    assert resumed.skipped == ["A01"] and resumed.succeeded == ["B02"]
