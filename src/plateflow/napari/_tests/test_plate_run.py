"""Run on plate from napari: same outputs as the CLI, progress and cancel, tables and a clickable plate map."""

from __future__ import annotations

import json

import csv
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from plateflow import FunctionStep
from plateflow.cli import main as cli_main
from plateflow.execution.demo import demo_pipeline
from plateflow.io import save_pipeline
from plateflow.memory import numpy
from plateflow.napari._widget import PipelineBuilderWidget
from plateflow.plate import generate_sample_plate

pytestmark = pytest.mark.gui


def tree_bytes(root: Path) -> dict[str, bytes]:
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith((".tif", ".csv")):
                path = Path(folder) / name
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


@pytest.fixture
def run_panel(make_napari_viewer, tuning_plate):
    viewer = make_napari_viewer()
    builder = PipelineBuilderWidget(viewer, plate=tuning_plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    builder.tuning.live_check.setChecked(False)  # only the plate run here
    builder.load_pipeline(demo_pipeline())
    qtbot_panel = builder.open_plate_run()
    assert builder.open_plate_run() is qtbot_panel  # docked once
    return viewer, builder, qtbot_panel


def test_run_on_plate_writes_what_the_cli_writes_and_shows_the_results(run_panel, qtbot, tuning_plate, tmp_path):
    viewer, builder, panel = run_panel
    pipeline_file = tmp_path / "demo.yaml"
    save_pipeline(builder.model.to_pipeline(), pipeline_file)
    assert cli_main(["run", str(pipeline_file), str(tuning_plate), "-o", str(tmp_path / "cli"), "--quiet"]) == 0

    with qtbot.waitSignal(panel.run_finished, timeout=30000) as finished:
        assert panel.start_run(out=tmp_path / "gui", workers=1)
        assert panel.is_running and not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    state = finished.args[0]
    assert state.finished and not state.cancelled and state.succeeded == ("A01", "A02")
    assert panel.progress_bar.value() == 2 and panel.progress_bar.maximum() == 2
    written = tree_bytes(tmp_path / "gui")
    assert written == tree_bytes(tmp_path / "cli")
    assert {"object_counts.csv", "object_measurements.csv"} <= set(written)

    assert str(tmp_path / "gui") in panel.output_label.text() and panel.open_button.isEnabled()
    assert set(panel.tables.tables) == {"object_counts", "object_measurements"}
    with open(tmp_path / "cli" / "object_counts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sums = {well: float(sum(int(r["object_count"]) for r in rows if r["well"] == well)) for well in ("A01", "A02")}
    assert panel.plate_map.measurement_combo.currentText() == "object_counts: object_count"
    assert panel.plate_map.aggregation_combo.currentText() == "sum"
    assert panel.plate_map.values() == sums

    layers = panel.open_output_layers()
    assert [layer.name for layer in layers] == ["DAPI (plate outputs)"]
    # The input plate's frame (well, site, z_index): the one projected plane is shown at every Z, and
    # the int32 labels of the last (segmentation) step come in as a Labels layer.
    labels = layers[0]
    assert type(labels).__name__ == "Labels" and labels.data.shape == (2, 2, 3, 64, 64)
    assert tuple(labels.axis_labels) == tuple(viewer.layers["DAPI"].axis_labels) == ("well", "site", "z_index", "y", "x")
    on_disk = tifffile.imread(tmp_path / "gui" / "TimePoint_1" / "ZStep_1" / "A02_s2_w1.tif")
    for z in range(3):
        np.testing.assert_array_equal(np.asarray(labels.data[1, 1, z]), on_disk)


def test_clicking_a_well_on_the_plate_map_opens_its_outputs(run_panel, qtbot, tuning_plate, tmp_path):
    viewer, builder, panel = run_panel
    with qtbot.waitSignal(panel.run_finished, timeout=30000):
        panel.start_run(out=tmp_path / "out", workers=1)
    canvas = panel.plate_map.canvas
    canvas.resize(400, 260)
    assert canvas.colour_of("A02") != canvas.colour_of("H12")  # H12 is not on this plate: grey
    with qtbot.waitSignal(panel.well_layers_loaded, timeout=5000) as loaded:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.cell_rect("A02").center())
    well, layers = loaded.args
    assert well == "A02" and [layer.name for layer in layers] == ["A02 DAPI (output)"]
    labels = layers[0]
    # Well A02 only: a length-1 well axis placed at A02's index (1) of the plate's frame.
    assert type(labels).__name__ == "Labels" and labels.data.shape == (1, 2, 3, 64, 64)
    assert labels.translate[0] == 1.0
    np.testing.assert_array_equal(labels.data[0, 1, 2], tifffile.imread(tmp_path / "out" / "TimePoint_1" / "ZStep_1" / "A02_s2_w1.tif"))
    np.testing.assert_allclose(labels.scale[-2:], [builder.plate.pixel_size] * 2)
    # A second click updates the same layer instead of adding another.
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.cell_rect("A02").center())
    assert [l.name for l in viewer.layers].count("A02 DAPI (output)") == 1


def test_cancel_stops_the_run_and_leaves_the_rest_for_resume(run_panel, qtbot, tmp_path):
    viewer, builder, panel = run_panel
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as finished:
        panel.start_run(out=tmp_path / "out", workers=1)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        assert not panel.cancel_button.isEnabled()
    state = finished.args[0]
    assert state.cancelled and state.done < state.total == 2
    assert state.summary().startswith(f"cancelled: {state.done} of 2 well(s) done")
    assert panel.run_button.isEnabled()
    manifest = json.loads((tmp_path / "out" / "plateflow-manifest.json").read_text())
    unfinished = [w for w, entry in manifest["wells"].items() if entry["status"] != "done"]
    assert len(unfinished) == 2 - state.done and all(manifest["wells"][w]["status"] == "pending" for w in unfinished)


def test_run_refuses_a_pipeline_with_errors_and_unknown_wells(run_panel, tmp_path):
    viewer, builder, panel = run_panel
    assert not panel.start_run(out=tmp_path / "out", wells=["Z99"])
    assert "Unknown well(s): Z99" in panel.status_label.text()
    step = builder.model.steps[0]
    builder.model.set_kwarg(step.step_id, None, 0, "low_percentil", 1.0)
    assert not panel.start_run(out=tmp_path / "out", wells=["A01"])
    assert "error" in panel.status_label.text() and not (tmp_path / "out").exists()


@numpy
def slow_copy(stack, seconds: float = 0.2):
    time.sleep(seconds)
    return stack


def test_closing_the_run_generator_stops_the_run(tmp_path):
    # napari's worker.quit() closes the generator: the run must stop like a cancel,
    # not go on writing wells in the background that nobody sees.
    from plateflow.napari._runner import run_plate

    plate = generate_sample_plate(tmp_path / "plate", wells=("A01", "A02", "B01"), sites=1, channels=1, z_planes=2, size=(64, 64))
    out = tmp_path / "out"
    progress = run_plate([FunctionStep(slow_copy, variable_components=("z_index",))], plate, out, ["A01", "A02", "B01"])
    assert next(progress).done == 1
    progress.close()  # while A02 runs
    assert not [t for t in threading.enumerate() if t.name == "plateflow-plate-run"]  # the run has ended
    statuses = {w: e["status"] for w, e in json.loads((out / "plateflow-manifest.json").read_text())["wells"].items()}
    assert statuses["A01"] == "done" and statuses["B01"] == "pending"


@pytest.mark.parametrize(
    "error",
    [OSError(28, "cannot write the manifest: No space left on device"), RuntimeError("No space left on device for the pool")],
    ids=["OSError", "RuntimeError"],  # superqt's worker treats a RuntimeError specially: it must still end the run
)
def test_an_error_after_some_wells_stays_in_the_status_line(run_panel, qtbot, tmp_path, monkeypatch, error):
    import plateflow.execution
    from plateflow.execution import WellResult

    def run_then_fail(pipeline, plate, out, *, wells, on_well, **_):
        on_well(WellResult(wells[0]))
        raise error

    monkeypatch.setattr(plateflow.execution, "run", run_then_fail)
    viewer, builder, panel = run_panel
    with qtbot.waitSignal(panel.run_finished, timeout=30000) as finished:
        assert panel.start_run(out=tmp_path / "out", workers=1)
    assert finished.args[0].done == 1
    assert "No space left on device" in panel.status_label.text() and type(error).__name__ in panel.status_label.text()
    assert panel.error and panel.run_button.isEnabled()
