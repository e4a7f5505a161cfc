"""The "Pipeline builder" dock widget.

From top to bottom: the plate to work on (folder, and the well and site to tune
on); docked in a viewer, the tuning controls (live per-step layers of the
sample site, see ``_tuning``); then two tabs: **Build** (the function catalogue
beside the step list, the form of the selected step, the problems of the last
check) and **Run** (the run on the whole plate and its results, see
``_plate_run``); and the pipeline file buttons. Every part scrolls or splits,
so napari with the builder docked fits a 1280 x 800 screen.

Every edit goes to a :class:`~plateflow.napari._model.PipelineModel` (the
editing document, with undo and redo: Ctrl+Z, Ctrl+Shift+Z). Each change
restarts a short debounce (superqt's ``qdebounced``); when it fires, the
enabled steps go through :func:`plateflow.analyze` on the main thread (about a
millisecond; the time of the last one is shown). Its one result drives
everything the builder shows about the pipeline: the step rows' badges (memory
types, conversions, where each special input comes from), the forms' memory
badges and links, and the mark of every diagnostic on its step row, on the
widget of its ``path`` in the form, and in the problems panel.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, Qt, Signal
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qdebounced

import plateflow
from plateflow import Analysis
from plateflow.compiler import Diagnostic
from plateflow.compiler.diagnostics import format_field
from plateflow.io import PipelineFileError, UnregisteredFunctionError, export_script, load_pipeline, save_pipeline
from plateflow.plate import Plate, PlateError, open_plate, sample_plate_path
from plateflow.steps import Pipeline

from ._catalogue import FunctionCatalogue
from ._model import PipelineModel, StepModel
from ._problems import ProblemsPanel, diagnostic_place
from ._step_editor import StepEditor
from ._step_list import StepListWidget

if TYPE_CHECKING:
    import napari

__all__ = ["PipelineBuilderWidget", "CHECK_DELAY_MS"]

#: Debounce between the last edit and the check it triggers.
CHECK_DELAY_MS = 200

_PIPELINE_FILTER = "plateflow pipeline (*.yaml *.yml);;All files (*)"
_SCRIPT_FILTER = "Python script (*.py);;All files (*)"


def _diagnostic_text(diagnostic: Diagnostic, step: StepModel | None) -> str:
    """What a marked widget's tooltip says: what is wrong, then where and how to fix it."""
    text = diagnostic.message
    where = diagnostic_place(diagnostic, step)
    if where:
        text += f" ({where})"
    return f"{text}\nFix: {diagnostic.hint}" if diagnostic.hint else text


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _invalid_text_diagnostics(model: PipelineModel) -> list[Diagnostic]:
    """An error on each field whose typed text is not a value yet (the pipeline keeps the last valid one)."""
    found = []
    for index, step in enumerate(model.enabled_steps()):
        for key, call_index, call in step.calls():
            for name, text in call.invalid.items():
                path = (*step.path(key, call_index), "kwargs", name)
                message = (
                    f"'{name}' needs a value" if not text.strip() else f"'{text}' is not a value for '{name}'"
                )
                found.append(
                    Diagnostic(
                        "error",
                        "invalid-kwarg-value",
                        index,
                        step.name,
                        format_field(path),
                        message,
                        "type a Python literal such as 1.5, (3, 3), 'text' or None",
                        path,
                    )
                )
    return found


class PipelineBuilderWidget(QWidget):
    """Build a plateflow pipeline with forms, checked against a plate on every edit.

    Args:
        napari_viewer: the viewer the widget is docked in (napari passes it).
        plate: a plate folder to start with; defaults to the bundled sample plate.

    Signals:
        checked(list): the diagnostics of each finished check.
        plate_changed(object): the newly opened ``Plate`` (``None`` when it failed to open).
        sample_changed(str, str): the well and site chosen for tuning.
    """

    checked = Signal(list)
    plate_changed = Signal(object)
    sample_changed = Signal(str, str)

    def __init__(self, napari_viewer: "napari.viewer.Viewer | None" = None, plate: str | os.PathLike[str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.model = PipelineModel()
        self.plate: Plate | None = None
        self.diagnostics: list[Diagnostic] = []
        self.analysis: Analysis | None = None
        self.last_check_seconds = 0.0
        self._check_is_pending = False
        self._marks_by_step: dict[str, list[tuple[tuple[Any, ...], str, str]]] = {}
        self._check_rows: dict[str, list[tuple[str, str]]] = {}
        self._run_errors: dict[str, str] = {}
        self.tuning: Any = None
        self.plate_run: Any = None

        self._debounced_check = qdebounced(self._on_check_due, timeout=CHECK_DELAY_MS, parent=self)

        self._build_plate_row()
        self.catalogue = FunctionCatalogue(self)
        self.step_list = StepListWidget(self.model, self)
        self.editor = StepEditor(self.model, self.catalogue.current_function, self)
        self.editor_scroll = QScrollArea(self)
        self.editor_scroll.setWidgetResizable(True)
        self.editor_scroll.setWidget(self.editor)
        self.editor_scroll.setMinimumHeight(100)
        self.problems_label = QLabel("Problems", self)
        self.problems = ProblemsPanel(self)
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        self._build_layout()
        self._connect()
        self.set_plate(plate if plate is not None else sample_plate_path())
        if napari_viewer is not None:
            from ._tuning import TuningPanel

            self.tuning = TuningPanel(self, napari_viewer, self)
            self.body_layout.insertWidget(2, self.tuning)
        self.run_plate_button.setEnabled(napari_viewer is not None)
        self._update_buttons()

    # -- layout -------------------------------------------------------------------------
    def _build_plate_row(self) -> None:
        self.plate_edit = QLineEdit(self)
        self.plate_edit.setPlaceholderText("Plate folder")
        self.plate_edit.setToolTip("The plate folder to check the pipeline against (ImageXpress or Opera Phenix)")
        self.browse_button = QPushButton("Browse...", self)
        self.plate_status = QLabel("", self)
        self.plate_status.setWordWrap(True)
        self.well_combo = QComboBox(self)
        self.well_combo.setToolTip("The well to tune the pipeline on")
        self.site_combo = QComboBox(self)
        self.site_combo.setToolTip("The site to tune the pipeline on")

    def _build_layout(self) -> None:
        self.add_button = QPushButton("Add step", self)
        self.add_button.setToolTip("Add the selected function as a new step after the selected one (or double-click it)")
        self.add_to_chain_button = QPushButton("Add to chain", self)
        self.add_to_chain_button.setToolTip("Append the selected function to the selected step's chain")
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the selected step (Delete); Ctrl+Z brings it back")
        self.duplicate_button = QPushButton("Duplicate", self)
        self.up_button = QPushButton("Up", self)
        self.down_button = QPushButton("Down", self)
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setToolTip("Undo the last edit (Ctrl+Z)")
        self.redo_button = QPushButton("Redo", self)
        self.redo_button.setToolTip("Redo the edit undone last (Ctrl+Shift+Z)")
        self.load_button = QPushButton("Load...", self)
        self.save_button = QPushButton("Save...", self)
        self.export_button = QPushButton("Export...", self)
        self.export_button.setToolTip("Export the pipeline as a runnable Python script")
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.setToolTip("Remove every step (Ctrl+Z brings them back)")
        self.run_plate_button = QPushButton("Run on plate...", self)
        self.run_plate_button.setToolTip("Run the pipeline on every well of the plate, with progress, cancel and the results")

        plate_row = QHBoxLayout()
        plate_row.addWidget(QLabel("Plate", self))
        plate_row.addWidget(self.plate_edit, 1)
        plate_row.addWidget(self.browse_button)
        sample_row = QHBoxLayout()
        sample_row.addWidget(QLabel("Tune on well", self))
        sample_row.addWidget(self.well_combo)
        sample_row.addWidget(QLabel("site", self))
        sample_row.addWidget(self.site_combo)
        sample_row.addWidget(self.plate_status, 1)
        self.plate_status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        catalogue_panel = QWidget(self)
        catalogue_layout = QVBoxLayout(catalogue_panel)
        catalogue_layout.setContentsMargins(0, 0, 0, 0)
        catalogue_layout.addWidget(QLabel("<b>Functions</b>", catalogue_panel))
        catalogue_layout.addWidget(self.catalogue, 1)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_button)
        add_row.addWidget(self.add_to_chain_button)
        catalogue_layout.addLayout(add_row)

        steps_panel = QWidget(self)
        steps_layout = QVBoxLayout(steps_panel)
        steps_layout.setContentsMargins(0, 0, 0, 0)
        steps_title = QLabel("<b>Steps</b> (drag to reorder, uncheck to disable)", steps_panel)
        steps_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        steps_title.setToolTip("Drag a step to reorder it; uncheck it to leave it out; Delete removes it")
        steps_layout.addWidget(steps_title)
        steps_layout.addWidget(self.step_list, 1)
        step_buttons = QHBoxLayout()
        for button in (self.up_button, self.down_button, self.duplicate_button, self.remove_button):
            step_buttons.addWidget(button)
        steps_layout.addLayout(step_buttons)

        top = QSplitter(Qt.Orientation.Horizontal, self)
        top.addWidget(catalogue_panel)
        top.addWidget(steps_panel)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 1)
        top.setChildrenCollapsible(False)

        problems_panel = QWidget(self)
        problems_layout = QVBoxLayout(problems_panel)
        problems_layout.setContentsMargins(0, 0, 0, 0)
        problems_layout.addWidget(self.problems_label)
        problems_layout.addWidget(self.problems, 1)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(top)
        splitter.addWidget(self.editor_scroll)
        splitter.addWidget(problems_panel)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 3)
        splitter.setStretchFactor(2, 1)
        splitter.setSizes([340, 300, 80])
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter

        self.tabs = QTabWidget(self)
        self.tabs.addTab(splitter, "Build")

        file_row = QHBoxLayout()
        for button in (self.undo_button, self.redo_button, self.load_button, self.save_button, self.export_button, self.clear_button):
            file_row.addWidget(button)
        file_row.addStretch(1)
        file_row.addWidget(self.run_plate_button)

        # Everything sits in a scroll area: the builder fits any dock height, and a label whose
        # text changes on every edit re-lays out the builder only, never napari's whole window.
        self.body = QWidget(self)
        layout = QVBoxLayout(self.body)
        layout.addLayout(plate_row)
        layout.addLayout(sample_row)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(file_row)
        layout.addWidget(self.status_label)
        self.body_layout = layout
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.body.setMinimumWidth(540)
        self.body.setMinimumHeight(600)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setWidget(self.body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)
        self.setMinimumWidth(560)

    def _edit_key(self, event: Any) -> Any:
        """``undo`` / ``redo`` for Ctrl+Z / Ctrl+Shift+Z (and the platform's own keys), else ``None``."""
        if event.matches(QKeySequence.StandardKey.Redo) or (
            event.key() == Qt.Key.Key_Z
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
            and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            return self.redo
        if event.matches(QKeySequence.StandardKey.Undo):
            return self.undo
        return None

    def event(self, event: Any) -> bool:  # noqa: D102 - Qt override
        # Claim Ctrl+Z / Ctrl+Shift+Z inside the builder before napari's window shortcuts see them;
        # a text field that has focus claims them first, for its own text.
        if event.type() == QEvent.Type.ShortcutOverride and self._edit_key(event) is not None:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        action = self._edit_key(event)
        if action is not None:
            action()
            event.accept()
            return
        super().keyPressEvent(event)

    def _connect(self) -> None:
        self.plate_edit.editingFinished.connect(self._on_plate_edited)
        self.browse_button.clicked.connect(self.browse_plate)
        self.well_combo.currentTextChanged.connect(self._on_sample_changed)
        self.site_combo.currentTextChanged.connect(self._on_sample_changed)
        self.catalogue.function_activated.connect(self.add_step)
        self.catalogue.current_function_changed.connect(lambda _name: self._update_buttons())
        self.add_button.clicked.connect(lambda: self.add_step(self.catalogue.current_function()))
        self.add_to_chain_button.clicked.connect(lambda: self.add_to_chain(self.catalogue.current_function()))
        self.remove_button.clicked.connect(self.remove_current_step)
        self.step_list.delete_requested.connect(lambda _step_id: self.remove_current_step())
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.duplicate_button.clicked.connect(self.duplicate_current_step)
        self.up_button.clicked.connect(lambda: self.step_list.move_current(-1))
        self.down_button.clicked.connect(lambda: self.step_list.move_current(1))
        self.load_button.clicked.connect(lambda: self.load_pipeline_file())
        self.save_button.clicked.connect(lambda: self.save_pipeline_file())
        self.export_button.clicked.connect(lambda: self.export_script_file())
        self.clear_button.clicked.connect(self.clear)
        self.run_plate_button.clicked.connect(lambda: self.open_plate_run())
        self.step_list.current_step_changed.connect(self._on_current_step_changed)
        self.problems.problem_activated.connect(self.go_to_diagnostic)
        self.model.changed.connect(self._on_model_changed)

    # -- plate -----------------------------------------------------------------------------
    def set_plate(self, path: str | os.PathLike[str]) -> Plate | None:
        """Open the plate folder at ``path`` and check the pipeline against it."""
        self.plate_edit.setText(str(path))
        try:
            plate = open_plate(path)
        except (OSError, PlateError, ValueError) as error:
            self.plate = None
            self.plate_status.setText(f"Cannot open the plate: {error}")
            self.plate_status.setToolTip(str(error))
            self.well_combo.clear()
            self.site_combo.clear()
            self.editor.set_plate_components({}, {})
            self.plate_changed.emit(None)
            self.schedule_check()
            return None
        self.plate = plate
        nouns = {"site": "site", "channel": "channel", "z_index": "Z plane", "timepoint": "timepoint"}
        counts = ", ".join(_plural(len(v), nouns.get(k, k)) for k, v in plate.components.items() if k != "well" and len(v) > 1)
        self.plate_status.setText(f"{plate.format_name}, {_plural(len(plate.wells), 'well')}" + (f", {counts}" if counts else ""))
        self.plate_status.setToolTip(str(plate.root))
        for combo, values in ((self.well_combo, plate.wells), (self.site_combo, plate.components["site"])):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(list(values))
            combo.blockSignals(False)
        self.editor.set_plate_components(plate.components, plate.channel_names)
        self.plate_changed.emit(plate)
        self._on_sample_changed()
        self.schedule_check()
        return plate

    def browse_plate(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a plate folder", self.plate_edit.text())
        if folder:
            self.set_plate(folder)

    def _on_plate_edited(self) -> None:
        text = self.plate_edit.text().strip()
        current = str(self.plate.root) if self.plate is not None else ""
        if text and os.path.abspath(os.path.expanduser(text)) != current:
            self.set_plate(text)

    @property
    def sample_well(self) -> str:
        return self.well_combo.currentText()

    @property
    def sample_site(self) -> str:
        return self.site_combo.currentText()

    def _on_sample_changed(self, *_: Any) -> None:
        if self.sample_well and self.sample_site:
            self.sample_changed.emit(self.sample_well, self.sample_site)

    # -- steps ------------------------------------------------------------------------------
    def add_step(self, function: str) -> str:
        """Add registry function ``function`` as a new step after the selected one (last when none) and select it."""
        if not function:
            return ""
        current = self.step_list.current_step_id()
        index = self.model.index_of(current) + 1 if current else None
        step = self.model.add_step(function, index=index)
        self.step_list.select_step(step.step_id)
        return step.step_id

    def add_to_chain(self, function: str) -> None:
        """Append ``function`` to the selected step's chain (to every chain of a per-value step)."""
        step_id = self.step_list.current_step_id()
        if not function or not step_id:
            return
        for key in list(self.model.step(step_id).chains):
            self.model.add_to_chain(step_id, function, key)

    def remove_current_step(self) -> None:
        step_id = self.step_list.current_step_id()
        if not step_id:
            return
        row = self.model.index_of(step_id)
        self.model.remove_step(step_id)
        if self.model.steps:
            self.step_list.select_step(self.model.steps[min(row, len(self.model.steps) - 1)].step_id)

    def undo(self) -> bool:
        """Take back the last edit (Ctrl+Z); the selection stays on the same step when it still exists."""
        return self._keeping_selection(self.model.undo)

    def redo(self) -> bool:
        """Do the undone edit again (Ctrl+Shift+Z)."""
        return self._keeping_selection(self.model.redo)

    def _keeping_selection(self, action: Any) -> bool:
        current = self.step_list.current_step_id()
        done = bool(action())
        ids = [s.step_id for s in self.model.steps]
        if current in ids:
            self.step_list.select_step(current)
        elif ids:
            self.step_list.select_step(ids[-1])
        self._update_buttons()
        return done

    def clear(self) -> None:
        """Remove every step and start a new pipeline (its name and description too; Ctrl+Z brings it back)."""
        self.model.clear()
        self.status_label.setText("Cleared the pipeline (Ctrl+Z brings it back).")

    def duplicate_current_step(self) -> None:
        step_id = self.step_list.current_step_id()
        if step_id:
            duplicate = self.model.duplicate_step(step_id)
            self.step_list.select_step(duplicate.step_id)

    def _on_current_step_changed(self, step_id: str) -> None:
        self.editor.show_step(step_id)
        self._mark_editor()
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_step = bool(self.step_list.current_step_id())
        has_function = bool(self.catalogue.current_function())
        self.add_button.setEnabled(has_function)
        self.add_to_chain_button.setEnabled(has_function and has_step)
        for button in (self.remove_button, self.duplicate_button, self.up_button, self.down_button):
            button.setEnabled(has_step)
        self.undo_button.setEnabled(self.model.can_undo)
        self.redo_button.setEnabled(self.model.can_redo)

    def _on_model_changed(self) -> None:
        self.step_list.refresh()
        self._update_buttons()
        self.schedule_check()

    # -- compile on edit ---------------------------------------------------------------------
    def schedule_check(self) -> None:
        """Analyse the pipeline once edits pause for ``CHECK_DELAY_MS``."""
        self._check_is_pending = True
        self._debounced_check()

    def _on_check_due(self) -> None:
        if self._check_is_pending:
            self.check_now()

    @property
    def check_pending(self) -> bool:
        return self._check_is_pending

    def check_now(self) -> list[Diagnostic]:
        """Analyse the enabled steps against the plate now and show the result."""
        self._check_is_pending = False
        self._debounced_check.cancel()
        started = time.perf_counter()
        try:
            pipeline = self.model.to_pipeline()
        except KeyError as error:
            analysis = Analysis((Diagnostic("error", "unknown-function", None, "", "func", str(error.args[0]), "", ("func",)),), ())
        else:
            analysis = plateflow.analyze(pipeline, self.plate)
        diagnostics = [*_invalid_text_diagnostics(self.model), *analysis.diagnostics]
        self.last_check_seconds = time.perf_counter() - started
        self.analysis = analysis
        self.step_list.set_analysis(analysis)
        self.editor.set_analysis(analysis)
        self._show_diagnostics(diagnostics)
        self.checked.emit(diagnostics)
        return diagnostics

    def _show_diagnostics(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        rows: dict[str, list[tuple[str, str]]] = {}
        marks: dict[str, list[tuple[tuple[Any, ...], str, str]]] = {}
        for diagnostic in diagnostics:
            step = self.model.step_for_pipeline_index(diagnostic.step_index)
            if step is None:
                continue
            text = _diagnostic_text(diagnostic, step)
            rows.setdefault(step.step_id, []).append((diagnostic.severity, text))
            marks.setdefault(step.step_id, []).append((tuple(diagnostic.path), diagnostic.severity, text))
        self._marks_by_step = marks
        self._check_rows = rows
        self._apply_row_marks()
        self._mark_editor()
        self.problems.set_diagnostics(diagnostics, self.model)
        errors = sum(d.is_error for d in diagnostics)
        warnings = len(diagnostics) - errors
        took = f"checked in {self.last_check_seconds * 1000:.1f} ms"
        against = f" against {self.plate.root.name}" if self.plate is not None else " without a plate"
        if diagnostics:
            summary = f"<b>Problems</b>: {_plural(errors, 'error')}, {_plural(warnings, 'warning')} ({took}{against})"
        else:
            summary = f"<b>Problems</b>: none ({took}{against})"
        self.problems_label.setText(summary)

    # -- errors of the tuning run ----------------------------------------------------------------
    def set_run_error(self, step_id: str, text: str) -> None:
        """Mark a step that raised while tuning (icon, colour, ``text`` in its tooltip) like a compiler error."""
        self._run_errors[step_id] = text
        self._apply_row_marks()

    def clear_run_errors(self, step_id: str | None = None) -> None:
        """Remove the tuning-run error of one step (all steps when ``step_id`` is ``None``)."""
        if step_id is None:
            if not self._run_errors:
                return
            self._run_errors.clear()
        elif self._run_errors.pop(step_id, None) is None:
            return
        self._apply_row_marks()

    @property
    def run_errors(self) -> dict[str, str]:
        return dict(self._run_errors)

    def _apply_row_marks(self) -> None:
        rows = {step_id: list(found) for step_id, found in self._check_rows.items()}
        for step_id, text in self._run_errors.items():
            rows.setdefault(step_id, []).append(("error", text))
        self.step_list.set_diagnostics(rows)

    # -- run on plate -------------------------------------------------------------------------
    def open_plate_run(self) -> Any:
        """Dock the "Run on plate" panel in the viewer (once) and return it."""
        if self.viewer is None:
            return None
        if self.plate_run is None:
            from ._plate_run import PlateRunWidget

            self.plate_run = PlateRunWidget(self, self.viewer)
            scroll = QScrollArea(self)
            scroll.setWidgetResizable(True)
            scroll.setWidget(self.plate_run)
            self.tabs.insertTab(1, scroll, "Run")
            self._run_tab = scroll
        self.tabs.setCurrentWidget(self._run_tab)
        return self.plate_run

    def _mark_editor(self) -> None:
        self.editor.mark(self._marks_by_step.get(self.editor.step_id, []))

    def go_to_diagnostic(self, diagnostic: Diagnostic) -> QWidget | None:
        """Select the diagnostic's step and focus the widget of its field (returned)."""
        step = self.model.step_for_pipeline_index(diagnostic.step_index)
        if step is None:
            return None
        self.step_list.select_step(step.step_id)
        self.tabs.setCurrentIndex(0)
        widget = self.editor.focus(diagnostic.path)
        if widget is not None:
            self.editor_scroll.ensureWidgetVisible(widget)
        return widget

    # -- pipeline files -----------------------------------------------------------------------
    def load_pipeline(self, pipeline: Pipeline | Sequence[Any]) -> None:
        """Replace the steps with those of a core pipeline and select the first."""
        if self.tuning is not None:
            self.tuning.visualizer.remove_all()  # the old steps' layers go: the loaded steps make their own
        self.model.load(pipeline)
        if self.model.steps:
            self.step_list.select_step(self.model.steps[0].step_id)

    def load_pipeline_file(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Load a pipeline file (asks for it when ``path`` is ``None``); ``False`` if it failed."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load a pipeline", "", _PIPELINE_FILTER)
            if not path:
                return False
        try:
            pipeline = load_pipeline(path)
        except PipelineFileError as error:
            self.status_label.setText(f"Could not load {Path(path).name}: {len(error.diagnostics)} problem(s), listed above.")
            self.problems.set_messages("error", [str(d) for d in error.diagnostics])
            self.problems_label.setText(f"<b>Problems in {Path(path).name}</b>")
            return False
        except OSError as error:
            self.status_label.setText(f"Could not read {path}: {error}")
            return False
        self.load_pipeline(pipeline)
        self.status_label.setText(f"Loaded {Path(path).name}: {len(pipeline)} step(s).")
        return True

    def save_pipeline_file(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Save every step, disabled ones included, to a pipeline file (asks where when ``path`` is ``None``)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save the pipeline", f"{self.model.name}.yaml", _PIPELINE_FILTER)
            if not path:
                return False
        try:
            written = save_pipeline(self.model.to_pipeline(include_disabled=True), path)
        except (UnregisteredFunctionError, KeyError, ValueError, OSError) as error:
            self.status_label.setText(f"Could not save: {error}")
            return False
        self.status_label.setText(f"Saved {Path(written).name}.")
        return True

    def export_script_file(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """Export the pipeline (disabled steps kept, marked ``enabled=False``) as a runnable Python script; returns its text."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export as a Python script", f"{self.model.name}.py", _SCRIPT_FILTER)
            if not path:
                return None
        try:
            text = export_script(self.model.to_pipeline(include_disabled=True), path)
        except (UnregisteredFunctionError, KeyError, ValueError, OSError) as error:
            self.status_label.setText(f"Could not export: {error}")
            return None
        self.status_label.setText(f"Exported {Path(path).name}.")
        return text
