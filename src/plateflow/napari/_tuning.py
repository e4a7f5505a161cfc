"""The builder's tuning panel: live per-step layers of the sample site while the pipeline is edited.

It connects the builder (its model, its checks and its sample well/site) to a
:class:`~plateflow.napari._runner.SampleRunController` and a
:class:`~plateflow.napari._visualizer.StepVisualizer`:

- every edit, a new sample site, a new plate or a toggle here schedules a run
  (debounced); a run starts only when the builder's check finds no error
  (a pending check is done first: it takes about a millisecond);
- each output reaches the visualizer on the main thread;
- a step that raises is marked on its row in the step list like a compiler
  error (icon, colour, message in the tooltip), the status line says what
  failed, and **Show traceback** opens the full traceback.

Controls: *Live preview* (off: nothing runs), *All steps* (show all
intermediate steps: every step gets layers, not only the steps marked to be
shown and the last one) and *Selected step* (the selected step's
``visualize`` flag).

Every layer is in the plate's frame (see ``_frame``): the plate's own images
are added under the step layers, and choosing another well or site to tune
on moves the viewer's sliders there; the canvas names the well and site the
sliders stand on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plateflow.execution.sample import SampleStepFailure, SampleStepOutput

from ._reader import plate_layer_data
from ._runner import SampleRequest, SampleRunController
from ._style import SEVERITY_COLOURS
from ._visualizer import StepVisualizer

if TYPE_CHECKING:
    from ._widget import PipelineBuilderWidget

__all__ = ["TuningPanel", "TracebackDialog"]


def _errors_text(count: int) -> str:
    if count == 1:
        return "The pipeline has 1 error (listed under Problems); fix it to see the steps."
    return f"The pipeline has {count} errors (listed under Problems); fix them to see the steps."


def _display_failure(output: SampleStepOutput, error: Exception) -> SampleStepFailure:
    """A failure record for an output that could not be shown as layers."""
    import traceback

    return SampleStepFailure(
        step_index=output.step_index,
        step_id=output.step_id,
        step_name=output.step_name,
        step_count=output.step_count,
        well=output.well,
        site=output.site,
        function="",
        message=f"its output cannot be shown: {type(error).__name__}: {error}",
        traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)),
    )


class TracebackDialog(QDialog):
    """The message and full traceback of a step that raised, selectable for copying."""

    def __init__(self, failure: SampleStepFailure, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Step {failure.step_index + 1} failed" if failure.step_index >= 0 else "The tuning run failed")
        self.message_label = QLabel(failure.format() if failure.step_index >= 0 else failure.message, self)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setPlainText(failure.traceback)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message_label)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)
        self.resize(760, 420)


class TuningPanel(QWidget):
    """Live preview controls and status, inside the Pipeline builder."""

    def __init__(self, builder: "PipelineBuilderWidget", viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.builder = builder
        self.viewer = viewer
        self.failure: SampleStepFailure | None = None
        self.traceback_dialog: TracebackDialog | None = None
        self._requesting = False
        self._run_failed = False
        self._run_started_at = 0.0
        self._computed = 0
        self._reused = 0
        self.last_run_seconds = 0.0

        self.live_check = QCheckBox("Live preview", self)
        self.live_check.setChecked(True)
        self.live_check.setToolTip("Run the pipeline on the chosen well and site after every edit and show the steps as layers")
        self.show_all_check = QCheckBox("All steps", self)
        self.show_all_check.setToolTip(
            "Show all intermediate steps: a layer for every step, not only the last step and the steps marked to be "
            "shown (the intermediate images start hidden: switch on the ones to look at)"
        )
        self.show_step_check = QCheckBox("Selected step", self)
        self.show_step_check.setToolTip("Give the selected step its own layers while tuning (its 'visualize' flag)")
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        self.traceback_button = QPushButton("Show traceback", self)
        self.traceback_button.setEnabled(False)
        self.traceback_button.setToolTip("The full traceback of the step that failed")

        toggles = QHBoxLayout()
        toggles.addWidget(QLabel("<b>Tune</b>", self))
        toggles.addWidget(self.live_check)
        toggles.addWidget(self.show_all_check)
        toggles.addWidget(self.show_step_check)
        toggles.addStretch(1)
        status = QHBoxLayout()
        status.addWidget(self.status_label, 1)
        status.addWidget(self.traceback_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(toggles)
        layout.addLayout(status)

        self.visualizer = StepVisualizer(viewer, place_tables=self._place_tables)
        self.controller = SampleRunController(self._request, self, prepare=self.visualizer.prepare)
        self._connect()
        self._on_plate_changed(builder.plate)
        self._on_current_step_changed(builder.step_list.current_step_id())

    def _connect(self) -> None:
        builder = self.builder
        builder.model.changed.connect(self._on_edit)
        builder.checked.connect(self._on_checked)
        builder.sample_changed.connect(self._on_edit)
        builder.sample_changed.connect(self.move_to_sample)
        position_text = self._update_position_text
        dims_events = self.viewer.dims.events.current_step
        dims_events.connect(position_text)
        builder.plate_changed.connect(self._on_plate_changed)
        builder.step_list.current_step_changed.connect(self._on_current_step_changed)
        self.live_check.toggled.connect(self._on_live_toggled)
        self.show_all_check.toggled.connect(self._on_show_all_toggled)
        self.show_step_check.toggled.connect(self._on_show_step_toggled)
        self.traceback_button.clicked.connect(self.show_traceback)
        self.controller.run_started.connect(self._on_run_started)
        self.controller.output_ready.connect(self._on_output)
        self.controller.step_failed.connect(self._on_failure)
        self.controller.run_finished.connect(self._on_run_finished)
        self.controller.not_run.connect(self._on_not_run)
        self.controller.up_to_date.connect(self._on_up_to_date)
        # Closing the viewer deletes the builder: stop the worker without touching Qt objects.
        controller, visualizer = self.controller, self.visualizer

        def shut_down(*_: Any) -> None:
            visualizer.closed = True
            dims_events.disconnect(position_text)
            controller.shutdown()

        builder.destroyed.connect(shut_down)
        self._shut_down = shut_down

    # -- requests -----------------------------------------------------------------------
    def _request(self) -> SampleRequest | str:
        builder = self.builder
        if not self.live_check.isChecked():
            return "Live preview is off."
        if builder.plate is None:
            return "No plate to tune on."
        if not builder.sample_well or not builder.sample_site:
            return "Choose a well and a site to tune on."
        step_ids = tuple(step.step_id for step in builder.model.enabled_steps())
        if not step_ids:
            self.visualizer.remove_all()  # no step, no step layers (the plate's own images stay)
            return "Add a step to see its output."
        if builder.check_pending:
            self._requesting = True
            try:
                builder.check_now()
            finally:
                self._requesting = False
        errors = [d for d in builder.diagnostics if d.is_error]
        if errors:
            return _errors_text(len(errors))
        try:
            pipeline = builder.model.to_pipeline()
        except KeyError as error:
            return str(error.args[0])
        return SampleRequest(pipeline, builder.sample_well, builder.sample_site, step_ids, (self.visualizer.show_all,))

    def schedule(self) -> None:
        if self.live_check.isChecked():
            self.controller.schedule()

    def _on_edit(self, *_: Any) -> None:
        self.schedule()

    def _on_checked(self, diagnostics: list) -> None:
        if self._requesting:
            return
        if not self.builder.model.enabled_steps():
            self.schedule()  # the request says there is nothing to show, and clears the step layers
            return
        if any(d.is_error for d in diagnostics):
            self.controller.cancel()
            errors = sum(d.is_error for d in diagnostics)
            self._set_status(_errors_text(errors))
            return
        self.schedule()

    def _place_tables(self, view: QWidget) -> None:
        """The tuning run's tables as the builder's "Tables" tab (not one more dock to fit on the screen)."""
        self.builder.tabs.addTab(view, "Tables")

    def _on_plate_changed(self, plate: Any) -> None:
        self.visualizer.set_plate(plate)
        self.controller.set_plate(plate)
        self.builder.clear_run_errors()
        if plate is not None:
            self._show_plate_layers(plate)
        self.move_to_sample()
        self.schedule()

    def _show_plate_layers(self, plate: Any) -> None:
        """The plate's own images under the step layers (unless the viewer shows them already)."""
        root = str(plate.root)
        if any(layer.metadata.get("plateflow_plate") == root for layer in self.viewer.layers):
            return
        for position, (data, kwargs, _kind) in enumerate(plate_layer_data(plate)):
            layer = self.viewer.add_image(data, **kwargs)
            self.viewer.layers.move(self.viewer.layers.index(layer), position)

    def move_to_sample(self, *_: Any) -> None:
        """Put the viewer's well and site sliders on the well and site being tuned."""
        frame = self.visualizer.frame
        builder = self.builder
        if frame is None or not builder.sample_well or not builder.sample_site:
            return
        frame.move_viewer(self.viewer, {"well": builder.sample_well, "site": builder.sample_site})
        self._update_position_text()

    def _update_position_text(self, *_: Any) -> None:
        """Name the well and site the sliders stand on (napari's sliders show only indices)."""
        frame = self.visualizer.frame
        overlay = self.viewer.canvas.overlays["text"]
        if frame is None or self.viewer.dims.ndim != len(frame.axes) + 2:
            overlay.visible = False
            return
        point = self.viewer.dims.point
        parts = []
        for axis, component in enumerate(frame.axes):
            values = frame.values[component]
            index = min(max(int(round(point[axis])), 0), len(values) - 1)
            label = "Z" if component == "z_index" else component
            parts.append(f"{label} {values[index]}")
        overlay.text = ", ".join(parts)
        overlay.position = "top_left"
        overlay.color = "white"
        overlay.font_size = 12
        overlay.visible = True

    def _on_live_toggled(self, on: bool) -> None:
        if on:
            self.controller.schedule()
        else:
            self.controller.cancel()
            self._set_status("Live preview is off.")

    def _on_show_all_toggled(self, on: bool) -> None:
        self.visualizer.show_all = on
        self.schedule()

    def _on_current_step_changed(self, step_id: str) -> None:
        self.show_step_check.blockSignals(True)
        self.show_step_check.setEnabled(bool(step_id))
        self.show_step_check.setChecked(bool(step_id) and self.builder.model.step(step_id).visualize)
        self.show_step_check.blockSignals(False)

    def _on_show_step_toggled(self, on: bool) -> None:
        step_id = self.builder.step_list.current_step_id()
        if step_id:
            self.builder.model.set_step_option(step_id, "visualize", on)

    # -- run events ---------------------------------------------------------------------
    def _on_run_started(self, request: SampleRequest) -> None:
        self._run_started_at = time.perf_counter()
        self._computed = self._reused = 0
        self._run_failed = False
        self.visualizer.begin_run()
        self.visualizer.forget_steps_except(request.step_ids)  # layers of steps that are gone (Clear, Load)
        self._set_status(f"Running on well {request.well}, site {request.site}...")

    def _on_output(self, request: SampleRequest, output: SampleStepOutput) -> None:
        step_id = request.step_ids[output.step_index]
        try:
            self.visualizer.show(output, step_id, self.controller.prepared(output))
        except Exception as error:  # a layer napari refuses must not end the session: report it like a failure
            self._on_failure(request, _display_failure(output, error))
            return
        self.builder.clear_run_errors(step_id)
        if output.reused:
            # No status line per reused step: each new text repaints the whole window (the GL canvas
            # included), a stall of tens of ms for a step that took none; the run's summary counts them.
            self._reused += 1
            return
        self._computed += 1
        self._set_status(
            f"Step {output.step_index + 1}/{output.step_count} {output.step_name!r} ({output.seconds * 1000:.0f} ms) "
            f"on well {request.well}, site {request.site}"
        )

    def _on_failure(self, request: SampleRequest, failure: SampleStepFailure) -> None:
        self.failure = failure
        self._run_failed = True
        if 0 <= failure.step_index < len(request.step_ids):
            self.builder.set_run_error(request.step_ids[failure.step_index], f"run error: {failure.format()}")
            text = f"Step {failure.step_index + 1} {failure.step_name!r} failed on well {failure.well}, site {failure.site}: {failure.message}"
        else:
            text = f"The tuning run failed: {failure.message}"
        self.traceback_button.setEnabled(True)
        self._set_status(text, "error")

    def _on_run_finished(self, request: SampleRequest, completed: bool) -> None:
        self.last_run_seconds = time.perf_counter() - self._run_started_at
        if completed and not self._run_failed:
            self.visualizer.end_run(True)
            self.builder.clear_run_errors()
            self.failure = None
            self.traceback_button.setEnabled(False)
            self._set_status(
                f"Well {request.well}, site {request.site}: {self._computed} step(s) computed, {self._reused} reused "
                f"in {self.last_run_seconds * 1000:.0f} ms."
            )

    def _on_up_to_date(self, request: SampleRequest) -> None:
        if self.failure is None:
            self._set_status(f"Well {request.well}, site {request.site}: the layers show the pipeline as it is.")

    def _on_not_run(self, message: str) -> None:
        self._set_status(message, "warning" if "error" in message else "")

    def _set_status(self, text: str, severity: str = "") -> None:
        colour = SEVERITY_COLOURS.get(severity)
        style = f"color: {colour};" if colour else ""
        if self.status_label.styleSheet() != style:  # a new style sheet repolishes: only when it changes
            self.status_label.setStyleSheet(style)
        if self.status_label.text() != text:
            self.status_label.setText(text)
            self.status_label.setToolTip(text)

    def show_traceback(self) -> TracebackDialog | None:
        """Open the traceback of the last failure (returned, already shown)."""
        if self.failure is None:
            return None
        if self.traceback_dialog is not None:
            self.traceback_dialog.close()
        self.traceback_dialog = TracebackDialog(self.failure, self)
        self.traceback_dialog.show()
        return self.traceback_dialog

    def shutdown(self) -> None:
        """Stop the tuning runs (the builder calls this when it closes)."""
        self._shut_down()
