"""The Pipeline builder driven through its own controls, with compile-on-edit marks."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QModelIndex, Qt
from qtpy.QtWidgets import QFileDialog, QPushButton

from plateflow.io import load_pipeline
from plateflow.library import registry
from plateflow.napari._step_list import BADGES_ROLE, NUMBER_ROLE, SEVERITY_ROLE
from plateflow.napari._style import marked_severity
from plateflow.patterns import normalize_pattern

from .conftest import settle

pytestmark = pytest.mark.gui


def pipeline_summary(pipeline) -> list[tuple]:
    """(name, [(registry name, kwargs)], variable components, group_by) per step."""
    rows = []
    for step in pipeline:
        pattern = normalize_pattern(step.func)
        calls = {key: [(registry.name_of(c.func), dict(c.kwargs)) for c in chain] for key, chain in pattern.chains.items()}
        rows.append((step.name, calls, tuple(step.variable_components), step.group_by))
    return rows


def double_click(qtbot, view, item) -> None:
    view.scrollToItem(item)
    rect = view.visualItemRect(item)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def click_row(qtbot, view, item) -> None:
    view.scrollToItem(item)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualItemRect(item).center())


def button_in(widget, text: str) -> QPushButton:
    return next(b for b in widget.findChildren(QPushButton) if b.text() == text)


def type_into_spin(qtbot, spin, text: str) -> None:
    spin.selectAll()
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def test_build_a_three_step_pipeline_with_the_controls(qtbot, builder):
    catalogue = builder.catalogue
    qtbot.keyClicks(catalogue.filter_edit, "gauss")
    visible = catalogue.visible_names()
    assert "numpy.gaussian_filter" in visible and "numpy.label" not in visible
    catalogue.select_function("numpy.gaussian_filter")
    assert "sigma (px)" in catalogue.doc_pane.toPlainText()
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    sigma = builder.editor.param_widgets[(None, 0, "sigma")]
    assert sigma.label == "sigma (px)" and (sigma.min, sigma.max) == (0, 100)
    type_into_spin(qtbot, sigma.native, "2.5")

    catalogue.filter_edit.clear()
    qtbot.keyClicks(catalogue.filter_edit, "threshold_local")
    assert catalogue.visible_names() == ["numpy.threshold_local"]
    double_click(qtbot, catalogue.tree, catalogue.item_for("numpy.threshold_local"))
    method = builder.editor.param_widgets[(None, 0, "method")]
    method.native.setCurrentIndex(method.native.findText("mean"))
    type_into_spin(qtbot, builder.editor.param_widgets[(None, 0, "block_size")].native, "51")

    catalogue.filter_edit.clear()
    qtbot.keyClicks(catalogue.filter_edit, "numpy label")
    assert catalogue.current_function() == "numpy.label"
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    connectivity = builder.editor.param_widgets[(None, 0, "connectivity")]
    connectivity.native.setCurrentIndex(connectivity.native.findText("2"))

    settle(qtbot, builder)
    assert builder.diagnostics == []
    assert builder.last_check_seconds < 0.25
    assert pipeline_summary(builder.model.to_pipeline()) == [
        ("gaussian_filter", {None: [("numpy.gaussian_filter", {"sigma": 2.5})]}, ("site",), None),
        ("threshold_local", {None: [("numpy.threshold_local", {"method": "mean", "block_size": 51})]}, ("site",), None),
        ("label", {None: [("numpy.label", {"connectivity": 2})]}, ("site",), None),
    ]
    assert [builder.step_list.item(r).data(NUMBER_ROLE) for r in range(3)] == [1, 2, 3]


def test_catalogue_greys_unavailable_functions_with_the_reason(builder):
    from plateflow.napari._catalogue import AVAILABLE_ROLE

    for name in registry.names():
        info = registry.info(name)
        item = builder.catalogue.item_for(name)
        assert item.data(0, AVAILABLE_ROLE) == info.available
        assert (info.unavailable_reason in item.toolTip(0)) if not info.available else ("Unavailable" not in item.toolTip(0))
    builder.catalogue.filter_edit.setText("torch")
    visible = builder.catalogue.visible_names()
    assert set(registry.names(memory_type="torch")) <= set(visible) and "numpy.label" not in visible


def test_misspelled_kwarg_marks_step_and_section_until_removed(qtbot, builder):
    step_id = builder.add_step("numpy.gaussian_filter")
    builder.model.set_kwarg(step_id, None, 0, "sigmaa", 2.0)
    settle(qtbot, builder)
    item = builder.step_list.item_for(step_id)
    assert item.data(SEVERITY_ROLE) == "error"
    assert "parameter 'sigmaa'" in item.toolTip() and "did you mean 'sigma'?" in item.toolTip()
    row = builder.editor.unknown_kwarg_rows[(None, 0, "sigmaa")]
    field = builder.editor.widget_for(("kwargs", "sigmaa"))
    assert field.parent() is row and marked_severity(field) == "error"  # the keyword's own row, not its section
    assert marked_severity(builder.editor.call_boxes[(None, 0)]) == ""
    assert "sigmaa" in field.toolTip()
    assert builder.problems.texts() == [
        "Step 1 'gaussian_filter', parameter 'sigmaa': gaussian_filter() has no parameter 'sigmaa'. Fix: did you mean 'sigma'?"
    ]
    # The compiler's field string stays one hover away, after what is wrong.
    assert "[unknown-kwarg] at kwargs.sigmaa" in builder.problems.item(0).toolTip()

    qtbot.mouseClick(button_in(row, "Remove"), Qt.MouseButton.LeftButton)
    settle(qtbot, builder)
    assert builder.step_list.item_for(step_id).data(SEVERITY_ROLE) == ""
    assert marked_severity(builder.editor.call_boxes[(None, 0)]) == ""
    assert builder.problems.count() == 0


def test_invalid_value_marks_the_field_widget_and_the_problem_focuses_it(qtbot, builder):
    first = builder.add_step("numpy.gaussian_filter")
    builder.add_step("numpy.threshold_otsu")
    builder.model.set_kwarg(first, None, 0, "sigma", "big")
    settle(qtbot, builder)
    click_row(qtbot, builder.problems, builder.problems.item(0))
    assert builder.step_list.current_step_id() == first and builder.editor.step_id == first
    sigma = builder.editor.param_widgets[(None, 0, "sigma")]
    assert marked_severity(sigma.native) == "error"
    assert builder.go_to_diagnostic(builder.diagnostics[0]) is sigma.native

    sigma.value = "1.5"  # a line edit here, since the value is not a number; it takes a literal
    settle(qtbot, builder)
    assert builder.model.step(first).chains[None][0].kwargs == {"sigma": 1.5}
    assert marked_severity(builder.editor.param_widgets[(None, 0, "sigma")].native) == ""
    assert builder.diagnostics == []


def test_wrong_memory_type_in_a_chain_marks_the_chain_item(qtbot, builder):
    step_id = builder.add_step("numpy.top_hat")
    builder.catalogue.select_function("torch.gaussian_filter")
    qtbot.mouseClick(builder.add_to_chain_button, Qt.MouseButton.LeftButton)
    settle(qtbot, builder)
    assert ("chain-memory-mismatch", "func[1]") in {(d.code, d.field) for d in builder.diagnostics}
    assert builder.step_list.item_for(step_id).data(SEVERITY_ROLE) == "error"
    second = builder.editor.call_boxes[(None, 1)]
    assert second.title() == "function 2 of 2: torch.gaussian_filter"
    assert marked_severity(second) == "error" and "numpy arrays" in second.toolTip()
    assert marked_severity(builder.editor.call_boxes[(None, 0)]) == ""

    qtbot.mouseClick(button_in(second, "Remove"), Qt.MouseButton.LeftButton)
    settle(qtbot, builder)
    assert builder.diagnostics == []
    assert builder.step_list.item_for(step_id).data(SEVERITY_ROLE) == ""
    assert list(builder.editor.call_boxes) == [(None, 0)]


def test_missing_special_input_is_marked_and_fixed_by_adding_the_producer(qtbot, builder):
    assemble = builder.add_step("numpy.assemble_tiles")
    settle(qtbot, builder)
    item = builder.step_list.item_for(assemble)
    assert item.data(SEVERITY_ROLE) == "error"
    assert ("positions: no step makes it", "#e53935") in item.data(BADGES_ROLE)
    label = builder.editor.special_input_labels["positions"]
    assert marked_severity(label) == "error" and "no step produces 'positions'" in label.toolTip()

    double_click(qtbot, builder.catalogue.tree, builder.catalogue.item_for("numpy.find_tile_positions"))
    qtbot.mouseClick(builder.up_button, Qt.MouseButton.LeftButton)
    settle(qtbot, builder)
    assert [s.name for s in builder.model.steps] == ["find_tile_positions", "assemble_tiles"]
    item = builder.step_list.item_for(assemble)
    assert item.data(SEVERITY_ROLE) == ""
    assert any(text == "positions from step 1" for text, _ in item.data(BADGES_ROLE))
    assert not any(d.is_error for d in builder.diagnostics)


def test_conversion_badge_between_steps_of_different_memory_types(qtbot, builder):
    builder.add_step("numpy.gaussian_filter")
    torch_step = builder.add_step("torch.top_hat")
    settle(qtbot, builder)  # the badges are the analysis' flow
    badges = [text for text, _ in builder.step_list.item_for(torch_step).data(BADGES_ROLE)]
    assert badges[:2] == ["numpy -> torch", "torch"]


def test_reorder_enable_rename_duplicate_remove(qtbot, builder):
    a = builder.add_step("numpy.gaussian_filter")
    b = builder.add_step("numpy.threshold_otsu")
    c = builder.add_step("numpy.label")
    step_list = builder.step_list
    # A drag and drop moves rows in the list's Qt model; the pipeline model follows.
    assert step_list.model().moveRow(QModelIndex(), 2, QModelIndex(), 0)
    assert [s.step_id for s in builder.model.steps] == [c, a, b]
    step_list.item_for(a).setCheckState(Qt.CheckState.Unchecked)
    assert not builder.model.step(a).enabled
    assert [s.name for s in builder.model.to_pipeline()] == ["label", "threshold_otsu"]
    assert [step_list.item(r).data(NUMBER_ROLE) for r in range(3)] == [1, 0, 2]
    step_list.item_for(b).setText("Otsu")
    assert builder.model.step(b).name == "Otsu"
    step_list.select_step(b)
    qtbot.mouseClick(builder.duplicate_button, Qt.MouseButton.LeftButton)
    assert [s.name for s in builder.model.steps] == ["label", "gaussian_filter", "Otsu", "Otsu (copy)"]
    qtbot.mouseClick(builder.remove_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(builder.down_button, Qt.MouseButton.LeftButton)  # nothing below the last step
    assert [s.name for s in builder.model.steps] == ["label", "gaussian_filter", "Otsu"]


def test_components_group_by_and_one_chain_per_channel(qtbot, builder):
    step_id = builder.add_step("numpy.gaussian_filter")
    editor = builder.editor
    assert editor.variable_checks["z_index"].text() == "z_index (3)"
    editor.variable_checks["z_index"].setChecked(True)
    assert builder.model.step(step_id).variable_components == ("site", "z_index")
    editor.group_by_combo.setCurrentIndex(editor.group_by_combo.findData("channel"))
    editor.per_group_check.setChecked(True)
    step = builder.model.step(step_id)
    assert step.group_by == "channel" and list(step.chains) == ["1", "2"]
    assert "DAPI" in editor.entry_boxes["1"].title()
    builder.catalogue.select_function("numpy.top_hat")
    qtbot.mouseClick(button_in(editor.entry_boxes["2"], "Add the selected function here"), Qt.MouseButton.LeftButton)
    assert [c.function for c in builder.model.step(step_id).chains["2"]] == ["numpy.gaussian_filter", "numpy.top_hat"]
    assert editor.call_boxes[("2", 1)].title() == "function 2 of 2: numpy.top_hat"
    settle(qtbot, builder)
    assert builder.diagnostics == []
    editor.group_by_combo.setCurrentIndex(editor.group_by_combo.findData("site"))
    settle(qtbot, builder)
    assert "group-by-is-variable" in {d.code for d in builder.diagnostics}
    assert marked_severity(builder.editor.group_by_combo) == "error" or marked_severity(builder.editor.variable_box) == "error"


def test_save_clear_load_gives_the_same_pipeline(qtbot, builder, tmp_path, monkeypatch):
    blur = builder.add_step("numpy.gaussian_filter")
    builder.model.set_kwarg(blur, None, 0, "sigma", 3.0)
    builder.model.set_variable_components(blur, ["z_index"])
    chain = builder.add_step("numpy.top_hat")
    builder.model.add_to_chain(chain, "numpy.median_filter", kwargs={"size": 5})
    per_channel = builder.add_step("numpy.threshold_otsu")
    builder.model.set_group_by(per_channel, "channel")
    builder.model.set_per_group(per_channel, ["1", "2"])
    builder.model.set_kwarg(per_channel, "2", 0, "per_slice", False)
    switched_off = builder.add_step("numpy.median_filter")
    builder.model.set_enabled(switched_off, False)
    before = pipeline_summary(builder.model.to_pipeline())
    saved = pipeline_summary(builder.model.to_pipeline(include_disabled=True))
    assert len(saved) == len(before) + 1

    target = tmp_path / "pipeline.yaml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    qtbot.mouseClick(builder.save_button, Qt.MouseButton.LeftButton)
    assert target.is_file() and pipeline_summary(load_pipeline(target)) == saved
    assert [s.enabled for s in load_pipeline(target)] == [True, True, True, False]
    qtbot.mouseClick(builder.clear_button, Qt.MouseButton.LeftButton)
    assert builder.model.steps == [] and builder.step_list.count() == 0
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(target), ""))
    qtbot.mouseClick(builder.load_button, Qt.MouseButton.LeftButton)
    assert pipeline_summary(builder.model.to_pipeline()) == before
    assert builder.step_list.count() == 4  # the disabled step came back, still disabled
    assert [s.enabled for s in builder.model.steps] == [True, True, True, False]

    script = tmp_path / "pipeline.py"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(script), ""))
    qtbot.mouseClick(builder.export_button, Qt.MouseButton.LeftButton)
    text = script.read_text()
    compile(text, str(script), "exec")
    assert "numpy.median_filter" in text or "median_filter" in text


def test_loading_a_file_with_problems_lists_them(qtbot, builder, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("plateflow: 1\nname: bad\nsteps:\n- name: Blur\n  function: [numpy.gaussian_filter, {sigmaa: 2}]\n")
    assert not builder.load_pipeline_file(bad)
    assert any("sigmaa" in text for text in builder.problems.texts())
    assert builder.model.steps == []


def test_plate_choice_fills_the_well_and_site_combos(qtbot, builder, tmp_path):
    assert builder.well_combo.count() == 4 and builder.sample_well == "A01"
    assert [builder.site_combo.itemText(i) for i in range(builder.site_combo.count())] == ["1", "2", "3", "4"]
    with qtbot.waitSignal(builder.sample_changed) as blocker:
        builder.well_combo.setCurrentIndex(2)
    assert blocker.args == ["B01", "1"]
    assert builder.set_plate(tmp_path) is None
    assert builder.well_combo.count() == 0 and "Cannot open the plate" in builder.plate_status.text()
    builder.add_step("numpy.gaussian_filter")
    settle(qtbot, builder)
    assert "without a plate" in builder.problems_label.text()
