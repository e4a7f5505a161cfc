"""Live per-step layers while tuning: edits, stale runs, errors on their step, closing mid-run."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from plateflow import FunctionStep
from plateflow.execution.demo import demo_pipeline
from plateflow.memory import numpy
from plateflow.napari._step_list import SEVERITY_ROLE
from plateflow.napari._widget import PipelineBuilderWidget

from .conftest import wait_for_tuning

pytestmark = pytest.mark.gui

CALLS: Counter = Counter()


@numpy
def scale_for_test(stack, factor: float = 1.0):
    CALLS["scale"] += 1
    return stack.astype(np.float32) * np.float32(factor)


@numpy
def offset_for_test(stack, offset: float = 0.0, seconds: float = 0.0):
    CALLS["offset"] += 1
    time.sleep(seconds)
    return stack + np.float32(offset)


@numpy
def fail_above(stack, limit: float = 10.0):
    if limit > 100:
        raise ValueError(f"limit {limit} is above 100")
    return np.minimum(stack, np.float32(limit))


@pytest.fixture(autouse=True)
def reset_counts():
    CALLS.clear()


def docked_builder(viewer, plate, steps) -> PipelineBuilderWidget:
    builder = PipelineBuilderWidget(viewer, plate=plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    builder.load_pipeline(steps)
    return builder


def scale_then_offset(offset=1.0, seconds=0.0):
    return [
        FunctionStep((scale_for_test, {"factor": 2.0}), name="Scale", variable_components=("z_index",)),
        FunctionStep((offset_for_test, {"offset": offset, "seconds": seconds}), name="Offset", variable_components=("z_index",)),
    ]


def site_stack(plate, channel, well="A01", site="1"):
    """The plate's Z planes of one site and channel, read directly: (Z, Y, X)."""
    return np.stack([tifffile.imread(plate / "TimePoint_1" / f"ZStep_{z}" / f"{well}_s{site}_w{channel}.tif") for z in (1, 2, 3)])


def test_editing_a_parameter_updates_the_layer_and_reuses_upstream_steps(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, scale_then_offset(offset=1.0))
    wait_for_tuning(qtbot, builder)
    layer = viewer.layers["2 Offset (DAPI)"]
    assert "1 Scale (DAPI)" not in [l.name for l in viewer.layers]  # only the last step is shown by default
    expected = site_stack(tuning_plate, 1).astype(np.float32) * 2 + 1  # the two functions applied directly
    np.testing.assert_array_equal(layer.data[0, 0], expected)
    # In the plate's frame: a length-1 well and site axis at A01 / site 1, over the plate's own DAPI layer.
    assert layer.colormap.name == "blue" and tuple(layer.axis_labels) == ("well", "site", "z_index", "y", "x")
    assert tuple(layer.translate[:2]) == (0.0, 0.0) and viewer.layers.index("DAPI") < viewer.layers.index(layer)
    layer.contrast_limits = (5.0, 50.0)
    layer.visible = False

    CALLS.clear()
    builder.step_list.select_step(builder.model.steps[1].step_id)
    offset_widget = builder.editor.param_widgets[(None, 0, "offset")]
    offset_widget.value = 7.0
    wait_for_tuning(qtbot, builder)
    np.testing.assert_array_equal(viewer.layers["2 Offset (DAPI)"].data[0, 0], expected + 6)
    assert viewer.layers["2 Offset (DAPI)"] is layer  # updated in place
    assert tuple(layer.contrast_limits) == (5.0, 50.0) and not layer.visible
    assert CALLS == Counter(offset=2)  # one call per channel; the scale step came from the cache


def test_two_quick_edits_leave_the_layer_showing_the_second(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, scale_then_offset(offset=1.0))
    wait_for_tuning(qtbot, builder)
    layer = viewer.layers["2 Offset (FITC)"]
    shown = []
    layer.events.data.connect(lambda event: shown.append(np.asarray(layer.data[0, 0]).copy()))
    step_id = builder.model.steps[1].step_id
    controller = builder.tuning.controller

    builder.model.set_kwarg(step_id, None, 0, "seconds", 0.4)
    builder.model.set_kwarg(step_id, None, 0, "offset", 3.0)
    with qtbot.waitSignal(controller.run_started, timeout=5000):
        pass
    slow_worker = controller.worker
    builder.model.set_kwarg(step_id, None, 0, "seconds", 0.0)
    builder.model.set_kwarg(step_id, None, 0, "offset", 9.0)
    wait_for_tuning(qtbot, builder)
    qtbot.waitUntil(lambda: not slow_worker.is_running, timeout=5000)
    qtbot.wait(50)  # let anything the stale worker yielded reach the main thread
    base = site_stack(tuning_plate, 2).astype(np.float32) * 2
    np.testing.assert_array_equal(layer.data[0, 0], base + 9)
    assert shown and all(not np.array_equal(data, base + 3) for data in shown)


def test_an_edit_after_a_pause_runs_at_once_and_quick_edits_merge_into_one_run(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, scale_then_offset(offset=1.0))
    wait_for_tuning(qtbot, builder)
    qtbot.wait(100)  # a pause longer than the debounce
    controller = builder.tuning.controller
    starts = []
    controller.run_started.connect(lambda request: starts.append(request.pipeline[1].func[1]["offset"]))
    step_id = builder.model.steps[1].step_id
    builder.model.set_kwarg(step_id, None, 0, "offset", 2.0)
    assert starts == [2.0]  # started in the edit's own turn of the event loop, no wait for the delay
    builder.model.set_kwarg(step_id, None, 0, "offset", 4.0)
    builder.model.set_kwarg(step_id, None, 0, "offset", 6.0)
    assert len(starts) == 1  # edits within the delay wait for the pause
    wait_for_tuning(qtbot, builder)
    assert starts == [2.0, 6.0]
    base = site_stack(tuning_plate, 2).astype(np.float32) * 2
    np.testing.assert_array_equal(viewer.layers["2 Offset (FITC)"].data[0, 0], base + 6)


def test_show_all_labels_points_and_tables(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, demo_pipeline())
    wait_for_tuning(qtbot, builder)
    names = [l.name for l in viewer.layers]
    assert names == ["DAPI", "FITC", "4 Count nuclei", "4 Count nuclei: object_measurements"]
    labels, points = viewer.layers[2:]
    assert type(labels).__name__ == "Labels" and labels.data.dtype == np.int32 and labels.data.max() >= 1
    # One point per nucleus at every Z plane of well A01 / site 1 (the projection's labels show at every Z).
    assert type(points).__name__ == "Points" and len(points.data) == 3 * labels.data.max()
    assert set(points.data[:, 0]) == {0.0} and set(points.data[:, 1]) == {0.0} and set(points.data[:, 2]) == {0.0, 1.0, 2.0}
    np.testing.assert_allclose(labels.scale, points.scale)
    tables = builder.tuning.visualizer.tables_view
    assert set(tables.tables) == {"4 Count nuclei: object_counts", "4 Count nuclei: object_measurements"}
    assert tables.tables["4 Count nuclei: object_counts"][0]["object_count"] == labels.data.max()

    qtbot.mouseClick(builder.tuning.show_all_check, Qt.MouseButton.LeftButton)
    wait_for_tuning(qtbot, builder)
    names = [l.name for l in viewer.layers]
    assert {"1 Normalize (DAPI)", "1 Normalize (FITC)", "2 Remove background (DAPI)", "3 Z max projection (FITC)"} <= set(names)
    assert viewer.layers["3 Z max projection (DAPI)"].data.shape == (1, 1, 3, 64, 64)  # one plane, shown at every Z
    # Intermediate images start hidden and labels stay on top, so the final labels are not washed out.
    assert not viewer.layers["1 Normalize (DAPI)"].visible
    assert names.index("4 Count nuclei") > max(names.index(n) for n in names if n != "4 Count nuclei" and "object_" not in n)

    qtbot.mouseClick(builder.tuning.show_all_check, Qt.MouseButton.LeftButton)
    builder.step_list.select_step(builder.model.steps[1].step_id)
    qtbot.mouseClick(builder.tuning.show_step_check, Qt.MouseButton.LeftButton)
    assert builder.model.steps[1].visualize
    wait_for_tuning(qtbot, builder)
    names = [l.name for l in viewer.layers]
    assert "2 Remove background (DAPI)" in names and "1 Normalize (DAPI)" not in names


def test_a_step_that_raises_is_marked_with_its_traceback_one_click_away(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    steps = [*scale_then_offset(), FunctionStep((fail_above, {"limit": 500.0}), name="Clip", variable_components=("z_index",))]
    builder = docked_builder(viewer, tuning_plate, steps)
    wait_for_tuning(qtbot, builder)
    clip = builder.model.steps[2]
    item = builder.step_list.item_for(clip.step_id)
    assert item.data(SEVERITY_ROLE) == "error"
    assert "limit 500.0 is above 100" in item.toolTip() and "fail_above" in item.toolTip()
    panel = builder.tuning
    assert "Step 3 'Clip' failed" in panel.status_label.text()
    assert panel.traceback_button.isEnabled()
    qtbot.mouseClick(panel.traceback_button, Qt.MouseButton.LeftButton)
    dialog = panel.traceback_dialog
    assert dialog is not None and dialog.isVisible()
    assert "ValueError" in dialog.text.toPlainText() and "fail_above" in dialog.text.toPlainText()
    dialog.close()

    builder.model.set_kwarg(clip.step_id, None, 0, "limit", 50.0)
    wait_for_tuning(qtbot, builder)
    assert item.data(SEVERITY_ROLE) == "" and not panel.traceback_button.isEnabled()
    assert float(viewer.layers["3 Clip (DAPI)"].data.max()) <= 50.0


def test_closing_the_viewer_during_a_run_raises_nothing(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, scale_then_offset(seconds=0.5))
    controller = builder.tuning.controller
    with qtbot.waitSignal(controller.run_started, timeout=5000):
        pass
    worker = controller.worker
    qtbot.waitUntil(lambda: worker.is_running, timeout=5000)
    viewer.close()  # while the slow second step computes
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5000)
    qtbot.wait(100)  # deliver whatever the worker emitted on its way out
    assert controller.closed


def test_an_error_outside_the_steps_is_reported_not_raised_in_the_event_loop(make_napari_viewer, qtbot, tuning_plate, monkeypatch):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, scale_then_offset())
    wait_for_tuning(qtbot, builder)
    controller = builder.tuning.controller

    def broken_execute(plan, cancel=None):
        raise OSError("the cache could not be read")
        yield  # a generator, like SampleRunner.execute

    monkeypatch.setattr(controller.runner, "execute", broken_execute)
    with qtbot.waitSignal(controller.step_failed, timeout=5000) as failed:
        builder.model.set_kwarg(builder.model.steps[1].step_id, None, 0, "offset", 5.0)
    assert "the cache could not be read" in failed.args[1].message
    wait_for_tuning(qtbot, builder)
    assert "The tuning run failed: OSError: the cache could not be read" in builder.tuning.status_label.text()


def test_opening_the_same_plate_again_brings_its_layers_back(make_napari_viewer, qtbot, tuning_plate, tmp_path):
    viewer = make_napari_viewer()
    builder = docked_builder(viewer, tuning_plate, scale_then_offset())
    wait_for_tuning(qtbot, builder)
    assert "2 Offset (DAPI)" in [l.name for l in viewer.layers]
    builder.set_plate(tmp_path / "no such plate")  # a typo in the plate field: its layers go
    wait_for_tuning(qtbot, builder)
    assert "2 Offset (DAPI)" not in [l.name for l in viewer.layers]
    builder.set_plate(tuning_plate)  # the typo fixed: the same plate, the same pipeline, a new run
    wait_for_tuning(qtbot, builder)
    np.testing.assert_array_equal(viewer.layers["2 Offset (DAPI)"].data[0, 0], site_stack(tuning_plate, 1).astype(np.float32) * 2 + 1)
