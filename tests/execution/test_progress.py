"""Progress output: a wells bar plus one step bar per well in flight, or plain lines."""

from __future__ import annotations

import io

import pytest

from plateflow.execution.progress import Progress


def test_a_step_bar_per_well_in_flight_and_the_wells_bar():
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    progress = Progress(3, stream=stream)
    progress.step("A01", 0, 4, "Normalize")
    progress.step("B02", 0, 4, "Normalize")
    progress.step("A01", 2, 4, "Z max projection")
    bars = progress._well_bars
    assert set(bars) == {"A01", "B02"}
    assert {bars["A01"].pos, bars["B02"].pos} in ({1, 2}, {-1, -2})  # each well its own row below the wells bar
    assert bars["A01"].n == 2 and bars["A01"].total == 4
    progress.well_done("A01", True, 1.0)
    progress.step("C03", 0, 4, "Normalize")  # takes the row A01 freed
    assert abs(progress._well_bars["C03"].pos) == 1
    progress.well_done("B02", False, 1.0, "step 2 failed")
    progress.well_done("C03", True, 1.0)
    progress.close()
    text = stream.getvalue()
    assert "A01" in text and "3/4 Z max projection" in text and "well B02 FAILED: step 2 failed" in text
    assert "3/3" in text  # the wells bar reached the end


def test_plain_lines_without_bars():
    stream = io.StringIO()
    progress = Progress(2, stream=stream, bars=False)
    progress.step("A01", 1, 3, "Top-hat")
    progress.well_done("A01", True, 0.5)
    progress.well_done("A02", False, 0.25, "boom")
    progress.close()
    assert stream.getvalue().splitlines() == [
        "  well A01: step 2/3 Top-hat",
        "[1/2] well A01 done (0.5 s)",
        "[2/2] well A02 FAILED: boom (0.2 s)",
    ]


def test_quiet_writes_nothing():
    stream = io.StringIO()
    progress = Progress(2, stream=stream, enabled=False)
    progress.step("A01", 0, 1, "x")
    progress.well_done("A01", True, 0.1)
    progress.close()
    assert stream.getvalue() == ""
