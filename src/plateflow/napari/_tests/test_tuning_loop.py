"""The tuning loop as a user drives it: overlays on the right image, marks on every field, undo, keys.

Each test acts through the widgets (clicks, keys, typing); the checks read the
pipeline that results, the compiler's diagnostics, and the pixels on screen.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QPushButton

from plateflow import FunctionStep
from plateflow.execution.demo import demo_pipeline
from plateflow.library import registry
from plateflow.napari._style import SEVERITY_COLOURS, marked_severity
from plateflow.napari._widget import PipelineBuilderWidget

from .conftest import settle, wait_for_tuning

pytestmark = pytest.mark.gui


def button_in(widget, text: str) -> QPushButton:
    return next(b for b in widget.findChildren(QPushButton) if b.text() == text)


def click_row(qtbot, view, item) -> None:
    view.scrollToItem(item)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualItemRect(item).center())


def frame_pixels(widget, colour: str) -> int:
    """How many pixels of ``widget`` as drawn on screen are (close to) ``colour``."""
    image = widget.grab().toImage()
    wanted = QColor(colour)
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            pixel = image.pixelColor(x, y)
            if abs(pixel.red() - wanted.red()) < 40 and abs(pixel.green() - wanted.green()) < 40 and abs(pixel.blue() - wanted.blue()) < 40:
                count += 1
    return count


def segmentation_pipeline():
    """Smooth, Otsu threshold, label the nuclei channel of each Z plane: labels that follow the raw nuclei."""
    return [
        FunctionStep(
            {"1": [(registry.get("numpy.gaussian_filter"), {"sigma": 1.0}), registry.get("numpy.threshold_otsu"), registry.get("numpy.label")]},
            name="Nuclei",
            variable_components=("z_index",),
            group_by="channel",
        )
    ]


def canvas_mask(viewer, layer) -> np.ndarray:
    """The canvas pixels ``layer`` lights up when it is the only visible layer."""
    shown = {l.name: l.visible for l in viewer.layers}
    text = viewer.canvas.overlays["text"]
    text_shown, text.visible = text.visible, False
    for other in viewer.layers:
        other.visible = other is layer
    image = viewer.screenshot(canvas_only=True, flash=False)
    for other in viewer.layers:
        other.visible = shown[other.name]
    text.visible = text_shown
    return image[..., :3].max(axis=-1) > 60


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def test_tuning_layers_sit_on_the_raw_image_of_the_tuned_well_and_site(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer(show=True)
    builder = PipelineBuilderWidget(viewer, plate=tuning_plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    builder.load_pipeline(segmentation_pipeline())
    builder.site_combo.setCurrentText("2")
    builder.well_combo.setCurrentText("A02")
    wait_for_tuning(qtbot, builder)
    labels = viewer.layers["1 Nuclei"]
    raw = viewer.layers["DAPI"]
    assert type(labels).__name__ == "Labels"
    # The sliders stand on A02 (well index 1) / site 2 (index 1), and the canvas names them.
    assert tuple(viewer.dims.point[:2]) == (1.0, 1.0)
    assert viewer.canvas.overlays["text"].text.startswith("well A02, site 2")
    raw.contrast_limits = tuple(np.percentile(tifffile.imread(tuning_plate / "TimePoint_1" / "ZStep_2" / "A02_s2_w1.tif"), (60, 99.5)))
    viewer.reset_view()
    on_screen = overlap(canvas_mask(viewer, raw), canvas_mask(viewer, labels))
    assert on_screen > 0.3, on_screen
    # The same labels drawn over another site's image would not match it: what we see is the right image.
    viewer.dims.set_point(1, 0.0)
    assert overlap(canvas_mask(viewer, raw), canvas_mask(viewer, labels)) < 0.05  # no labels at site 1: nothing shows
    # Tuning on another well moves the view there, and the labels follow.
    builder.well_combo.setCurrentText("A01")
    wait_for_tuning(qtbot, builder)
    assert tuple(viewer.dims.point[:2]) == (0.0, 1.0) and tuple(labels.translate[:2]) == (0.0, 1.0)
    assert overlap(canvas_mask(viewer, raw), canvas_mask(viewer, labels)) > 0.3


def test_every_kind_of_field_shows_its_frame(qtbot, builder):
    colour = SEVERITY_COLOURS["error"]
    framed = set()
    # A combo box, an int and a float spin box; a literal (line edit); a check box.
    for function in ("numpy.threshold_local", "numpy.find_tile_positions", "numpy.threshold_otsu"):
        step_id = builder.add_step(function)
        step = builder.model.step(step_id)
        for (key, index, name), widget in builder.editor.param_widgets.items():
            native = widget.native
            before = frame_pixels(native, colour)
            # The mark a diagnostic with this path gets (the form finds the widget by the path).
            builder.editor.mark([((*step.path(key, index), "kwargs", name), "error", "a problem")])
            after = frame_pixels(native, colour)
            # A 2-pixel frame round the widget: at least its perimeter in the error colour.
            assert after - before >= native.width() + native.height(), (type(widget).__name__, before, after)
            framed.add(type(widget).__name__)
    assert {"ComboBox", "SpinBox", "FloatSpinBox", "LineEdit", "CheckBox"} <= framed


def test_invalid_text_in_a_literal_field_is_an_error_on_that_field(qtbot, builder):
    step_id = builder.add_step("numpy.find_tile_positions")
    settle(qtbot, builder)
    field = builder.editor.param_widgets[(None, 0, "grid_shape")].native
    field.selectAll()
    qtbot.keyClicks(field, "(1, 2")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    settle(qtbot, builder)
    invalid = [d for d in builder.diagnostics if d.code == "invalid-kwarg-value"]
    assert [(d.step_index, d.path, d.field) for d in invalid] == [(0, ("kwargs", "grid_shape"), "kwargs.grid_shape")]
    field = builder.editor.param_widgets[(None, 0, "grid_shape")].native
    assert marked_severity(field) == "error" and frame_pixels(field, SEVERITY_COLOURS["error"]) > field.width()
    assert "'(1, 2' is not a value for 'grid_shape'" in builder.problems.texts()[0]
    assert builder.step_list.item_for(step_id).data(Qt.ItemDataRole.UserRole + 2) == "error"
    field.selectAll()
    qtbot.keyClicks(field, "(2, 2)")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    settle(qtbot, builder)
    assert builder.model.step(step_id).chains[None][0].kwargs == {"grid_shape": (2, 2)}
    assert not [d for d in builder.diagnostics if d.code == "invalid-kwarg-value"]
    assert marked_severity(builder.editor.param_widgets[(None, 0, "grid_shape")].native) == ""


def test_undo_redo_delete_and_add_after_the_selection_from_the_keyboard(qtbot, builder):
    builder.catalogue.select_function("numpy.gaussian_filter")
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    builder.catalogue.select_function("numpy.label")
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    first = builder.model.steps[0]
    click_row(qtbot, builder.step_list, builder.step_list.item_for(first.step_id))
    builder.catalogue.select_function("numpy.threshold_otsu")
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    assert [s.name for s in builder.model.steps] == ["gaussian_filter", "threshold_otsu", "label"]  # after the selection

    # Delete removes the selected step; Ctrl+Z brings it back, Ctrl+Shift+Z removes it again.
    builder.step_list.setFocus()
    qtbot.keyClick(builder.step_list, Qt.Key.Key_Delete)
    assert [s.name for s in builder.model.steps] == ["gaussian_filter", "label"]
    qtbot.keyClick(builder.step_list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [s.name for s in builder.model.steps] == ["gaussian_filter", "threshold_otsu", "label"]
    qtbot.keyClick(builder.step_list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert [s.name for s in builder.model.steps] == ["gaussian_filter", "label"]

    # A parameter edit is undone too, and the form shows the value again.
    click_row(qtbot, builder.step_list, builder.step_list.item_for(first.step_id))
    sigma = builder.editor.param_widgets[(None, 0, "sigma")].native
    sigma.selectAll()
    qtbot.keyClicks(sigma, "3.05")
    qtbot.keyClick(sigma, Qt.Key.Key_Return)
    assert builder.model.step(first.step_id).chains[None][0].kwargs == {"sigma": 3.05}
    builder.step_list.setFocus()
    qtbot.keyClick(builder.step_list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert builder.model.step(first.step_id).chains[None][0].kwargs == {}
    assert builder.editor.param_widgets[(None, 0, "sigma")].value == 1.0  # the default again

    # Clear is undoable, and takes the name with it.
    builder.model.name = "my pipeline"
    qtbot.mouseClick(builder.clear_button, Qt.MouseButton.LeftButton)
    assert builder.model.steps == [] and builder.model.name == "pipeline"
    qtbot.mouseClick(builder.undo_button, Qt.MouseButton.LeftButton)
    assert [s.name for s in builder.model.steps] == ["gaussian_filter", "label"]


def test_spin_boxes_save_the_value_they_show(qtbot, builder):
    step_id = builder.add_step("numpy.gaussian_filter")
    sigma = builder.editor.param_widgets[(None, 0, "sigma")]
    sigma.native.setValue(2.95)
    sigma.native.setFocus()
    qtbot.keyClick(sigma.native, Qt.Key.Key_Up)  # 2.95 + 0.1 in floats is 3.0500000000000003
    assert builder.model.step(step_id).chains[None][0].kwargs["sigma"] == 3.05


def test_projection_defaults_to_z_and_a_channel_entry_can_be_removed_and_given_back(qtbot, builder):
    builder.catalogue.select_function("numpy.max_projection")
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    assert builder.editor.variable_checks["z_index"].isChecked() and not builder.editor.variable_checks["site"].isChecked()
    builder.catalogue.select_function("numpy.top_hat")
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    step_id = builder.step_list.current_step_id()
    editor = builder.editor
    editor.group_by_combo.setCurrentIndex(editor.group_by_combo.findData("channel"))
    qtbot.mouseClick(editor.per_group_check, Qt.MouseButton.LeftButton)
    assert list(builder.model.step(step_id).chains) == ["1", "2"]
    qtbot.mouseClick(builder.editor.entry_remove_buttons["2"], Qt.MouseButton.LeftButton)
    settle(qtbot, builder)
    step = builder.model.to_pipeline()[1]
    assert list(step.func) == ["1"]  # a DAPI-only step
    assert not builder.editor.entry_remove_buttons["1"].isEnabled()
    assert [d.code for d in builder.diagnostics] == ["uncovered-group-value"]
    # and the removed channel can be given back, with a copy of the first entry's functions
    add = builder.editor.entry_add_buttons["2"]
    assert add.text() == "Add channel 2 (FITC)" and list(builder.editor.entry_add_buttons) == ["2"]
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    settle(qtbot, builder)
    step = builder.model.to_pipeline()[1]
    assert list(step.func) == ["1", "2"] and step.func["2"] == step.func["1"]
    assert builder.editor.entry_add_buttons == {} and [d.code for d in builder.diagnostics] == []


def test_status_counts_in_words(builder):
    assert builder.plate_status.text() == "ImageXpress, 4 wells, 4 sites, 2 channels, 3 Z planes"


def test_removing_the_step_in_error_brings_the_preview_back(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = PipelineBuilderWidget(viewer, plate=tuning_plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    builder.load_pipeline(list(demo_pipeline())[:2])
    wait_for_tuning(qtbot, builder)
    builder.catalogue.select_function("numpy.assemble_tiles")  # needs 'positions' that no step makes
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    wait_for_tuning(qtbot, builder)
    assert "error" in builder.tuning.status_label.text()
    builder.step_list.setFocus()
    qtbot.keyClick(builder.step_list, Qt.Key.Key_Delete)
    wait_for_tuning(qtbot, builder)
    assert "error" not in builder.tuning.status_label.text()
    assert builder.tuning.status_label.text().startswith("Well A01, site 1")


def test_clear_and_load_leave_no_stale_layers(make_napari_viewer, qtbot, tuning_plate, tmp_path):
    viewer = make_napari_viewer()
    builder = PipelineBuilderWidget(viewer, plate=tuning_plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    builder.load_pipeline(demo_pipeline())
    wait_for_tuning(qtbot, builder)
    path = tmp_path / "demo.yaml"
    assert builder.save_pipeline_file(path)
    assert builder.load_pipeline_file(path)
    wait_for_tuning(qtbot, builder)
    names = [layer.name for layer in viewer.layers]
    assert names == ["DAPI", "FITC", "4 Count nuclei", "4 Count nuclei: object_measurements"]  # no " [1]" copies
    qtbot.mouseClick(builder.clear_button, Qt.MouseButton.LeftButton)
    wait_for_tuning(qtbot, builder)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "FITC"]


def test_points_of_a_two_channel_measurement_hold_every_point_with_its_values(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = PipelineBuilderWidget(viewer, plate=tuning_plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    steps = list(demo_pipeline())
    measure = FunctionStep(
        (registry.get("numpy.measure_nuclei"), {"sigma": 1.0, "min_size": 30, "min_distance": 4}),
        name="Count nuclei",
        variable_components=("site",),
    )  # not per channel: it runs on DAPI and on FITC
    builder.load_pipeline([*steps[:3], measure])
    wait_for_tuning(qtbot, builder)
    points = viewer.layers["4 Count nuclei: object_measurements"]
    rows = builder.tuning.visualizer.tables_view.tables["4 Count nuclei: object_measurements"]
    channels = {str(row["channel"]) for row in rows}
    assert channels == {"1", "2"}
    # Every row of both channels, at each of the 3 Z planes the (projected) output is shown at.
    assert len(points.data) == 3 * len(rows)
    assert set(points.features["channel"].astype(str)) == {"1", "2"}
    numeric = [c for c in rows[0] if isinstance(rows[0][c], (int, float)) and c not in ("site",)]
    assert numeric and all(c in points.features.columns for c in numeric)
    np.testing.assert_allclose(sorted(points.features[numeric[-1]][: len(rows)]), sorted(float(r[numeric[-1]]) for r in rows))


def cut_controls(widget) -> list[tuple[str, str]]:
    """Visible labels, buttons and check boxes narrower than their text (word-wrapped and elided labels aside)."""
    from qtpy.QtWidgets import QAbstractButton, QLabel, QSizePolicy

    cut = []
    for child in widget.findChildren((QLabel, QAbstractButton)):
        if not child.isVisible() or (isinstance(child, QLabel) and child.wordWrap()):
            continue
        if child.sizePolicy().horizontalPolicy() == QSizePolicy.Policy.Ignored:
            continue  # a status line that elides, with its whole text in its tooltip
        if child.width() < child.sizeHint().width() - 1:
            cut.append((type(child).__name__, child.text()))
    return cut


@pytest.mark.parametrize("screen", [(1280, 800), (1600, 1000)])
def test_napari_with_the_builder_and_the_run_panel_fits_the_screen(make_napari_viewer, qtbot, screen):
    from plateflow.napari.__main__ import open_builder

    viewer = make_napari_viewer(show=True)
    builder = open_builder(viewer)
    builder.open_plate_run()
    window = viewer.window._qt_window
    window.resize(*screen)
    wait_for_tuning(qtbot, builder, timeout=60000)  # the tuning run adds its layers and its tables
    qtbot.wait(200)
    assert window.minimumSizeHint().height() <= screen[1] and window.height() <= screen[1]
    assert builder.tabs.tabText(builder.tabs.currentIndex()) == "Run"
    for tab in range(builder.tabs.count()):
        builder.tabs.setCurrentIndex(tab)
        qtbot.wait(50)
        if screen[0] >= 1600:
            assert cut_controls(builder) == [], builder.tabs.tabText(tab)


def test_clicking_the_selected_row_selects_it_and_does_not_start_a_rename(qtbot, builder):
    from qtpy.QtWidgets import QAbstractItemView

    step_id = builder.add_step("numpy.gaussian_filter")
    item = builder.step_list.item_for(step_id)
    click_row(qtbot, builder.step_list, item)
    qtbot.wait(QApplication_double_click_interval() + 50)  # two single clicks, not a double click
    click_row(qtbot, builder.step_list, item)
    qtbot.wait(QApplication_double_click_interval() + 150)  # Qt opens a "selected clicked" editor after this
    assert builder.step_list.state() != QAbstractItemView.State.EditingState
    assert builder.step_list.current_step_id() == step_id


def QApplication_double_click_interval() -> int:  # noqa: N802 - reads like the Qt call it wraps
    from qtpy.QtWidgets import QApplication

    return QApplication.doubleClickInterval()
