"""Run on plate: the builder's pipeline on every well (or the chosen ones), in the background.

The panel takes the output folder, the wells (empty: all) and the number of
wells run at once. **Run on plate** checks the pipeline, then runs
:func:`~plateflow.napari._runner.run_plate` (one ``plateflow.run`` call,
progress per finished well) in a napari ``thread_worker``, with a progress bar
here and in napari's activity dock. **Cancel** stops the run through
``plateflow.run``'s cancel hook: no more wells start and wells in worker
processes are stopped; a later run with resume finishes them.

When the run ends, the results open: the output folder (its path, and
*Open outputs as layers* for every well), the merged measurement tables, and
a plate map coloured by a measurement; clicking a well there opens that
well's outputs as layers (the plate reader on the output folder, restricted
to the well, with the input plate's channel names, colormaps and scale).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plateflow._tables import read_table
from plateflow.compiler import CompileError
from plateflow.execution.sample import CancelToken
from plateflow.patterns import PatternError, function_name, normalize_pattern
from plateflow.plate import PlateError, open_plate

from ._plate_map import PlateMapWidget
from ._frame import PlateFrame, frame_layer_data
from ._runner import PlateRunError, PlateRunProgress, run_plate
from ._table import TableView
from ._visualizer import is_label_output

if TYPE_CHECKING:
    from ._widget import PipelineBuilderWidget

__all__ = ["PlateRunWidget", "default_output_folder"]


def default_output_folder(plate_root: Path) -> Path:
    """``<plate folder>-plateflow`` beside the plate (never inside it)."""
    return plate_root.parent / f"{plate_root.name}-plateflow"


def _last_step_functions(pipeline: Any) -> tuple[str, ...]:
    from plateflow.library import registry

    steps = list(pipeline)
    if not steps:
        return ()
    try:
        calls = normalize_pattern(steps[-1].func).calls()
    except PatternError:
        return ()
    return tuple(registry.name_of(call.func) or function_name(call.func) for call in calls)


class PlateRunWidget(QWidget):
    """Runs the builder's pipeline on the plate and shows the results.

    Signals:
        run_finished(object): the final :class:`PlateRunProgress` (also after a cancel).
        well_layers_loaded(str, list): a well's output layers were added or updated.
    """

    run_finished = Signal(object)
    well_layers_loaded = Signal(str, list)

    def __init__(self, builder: "PipelineBuilderWidget", viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.builder = builder
        self.viewer = viewer
        self.worker: Any = None
        self.token: CancelToken | None = None
        self.result: PlateRunProgress | None = None
        self.error = ""
        self.closed = False
        self._progress: Any = None
        self._pipeline: Any = None
        self._source_plate: Any = None
        self._output_plate: Any = None
        self._well_layers: dict[tuple[str, str], Any] = {}

        self.out_edit = QLineEdit(self)
        self.out_edit.setPlaceholderText("Output folder")
        self.out_edit.setToolTip("Where the outputs, the tables and the manifest go (never inside the plate)")
        self.browse_button = QPushButton("Browse...", self)
        self.wells_edit = QLineEdit(self)
        self.wells_edit.setPlaceholderText("all wells (or A01,B02,...)")
        self.workers_spin = QSpinBox(self)
        self.workers_spin.setRange(1, max(1, os.cpu_count() or 1))
        self.workers_spin.setValue(1)
        self.workers_spin.setToolTip("Wells run at once (processes)")
        self.run_button = QPushButton("Run on plate", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop the run: no more wells start, wells in worker processes stop (resume finishes them)")
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setFormat("%v / %m wells")
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        self.output_label = QLabel("", self)
        self.output_label.setWordWrap(True)
        self.open_button = QPushButton("Open outputs as layers", self)
        self.open_button.setEnabled(False)
        self.plate_map = PlateMapWidget(self)
        self.tables = TableView(self)
        self.results_tabs = QTabWidget(self)
        self.results_tabs.addTab(self.plate_map, "Plate map")
        self.results_tabs.addTab(self.tables, "Tables")

        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("Output", self))
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_button)
        wells_row = QHBoxLayout()
        wells_row.addWidget(QLabel("Wells", self))
        wells_row.addWidget(self.wells_edit, 1)
        wells_row.addWidget(QLabel("at once", self))
        wells_row.addWidget(self.workers_spin)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress_bar, 1)
        result_row = QHBoxLayout()
        result_row.addWidget(self.output_label, 1)
        result_row.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addLayout(out_row)
        layout.addLayout(wells_row)
        layout.addLayout(run_row)
        layout.addWidget(self.status_label)
        layout.addLayout(result_row)
        layout.addWidget(self.results_tabs, 1)

        self.browse_button.clicked.connect(self.browse_output)
        self.run_button.clicked.connect(lambda: self.start_run())
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(lambda: self.open_output_layers())
        self.plate_map.well_clicked.connect(lambda well: self.load_well_layers(well))
        builder.plate_changed.connect(self._on_plate_changed)
        self._on_plate_changed(builder.plate)

        token_holder = self

        def shut_down(*_: Any) -> None:
            token_holder.closed = True
            if token_holder.token is not None:
                token_holder.token.cancel()
            if token_holder.worker is not None:
                token_holder.worker.quit()

        self.destroyed.connect(shut_down)

    # -- set-up -------------------------------------------------------------------------
    def _on_plate_changed(self, plate: Any) -> None:
        if plate is None:
            return
        self.plate_map.set_plate(plate)
        if not self.out_edit.text() or self.worker is None:
            self.out_edit.setText(str(default_output_folder(Path(plate.root))))

    def browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the output folder", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    @property
    def is_running(self) -> bool:
        return self.worker is not None

    def chosen_wells(self) -> list[str]:
        plate = self.builder.plate
        text = self.wells_edit.text().strip()
        if plate is None:
            return []
        if not text:
            return list(plate.wells)
        return [w.strip().upper() for w in text.replace(";", ",").split(",") if w.strip()]

    # -- running ------------------------------------------------------------------------
    def start_run(self, out: str | os.PathLike[str] | None = None, wells: list[str] | None = None, workers: int | None = None) -> bool:
        """Start the run (arguments override the fields); ``False`` with the reason in the status line."""
        if self.worker is not None:
            self._set_status("A run is already in progress.")
            return False
        builder = self.builder
        plate = builder.plate
        if plate is None:
            self._set_status("Open a plate first.")
            return False
        if out is not None:
            self.out_edit.setText(str(out))
        if wells is not None:
            self.wells_edit.setText(",".join(wells))
        if workers is not None:
            self.workers_spin.setValue(workers)
        out_text = self.out_edit.text().strip()
        if not out_text:
            self._set_status("Choose an output folder.")
            return False
        diagnostics = builder.check_now()
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            self._set_status(f"The pipeline has {len(errors)} error(s); fix them before running the plate.")
            return False
        chosen = self.chosen_wells()
        unknown = [w for w in chosen if w not in plate.wells]
        if unknown or not chosen:
            self._set_status(f"Unknown well(s): {', '.join(unknown)}; the plate has {', '.join(plate.wells)}." if unknown else "No wells to run.")
            return False
        from napari.qt.threading import thread_worker
        from napari.utils import progress

        self._pipeline = builder.model.to_pipeline()
        self._source_plate = plate
        self._output_plate = None
        self.result = None
        self.error = ""
        self.token = CancelToken()
        out_path = Path(os.path.abspath(os.path.expanduser(out_text)))
        # ignore_errors: _on_error puts the error in the status line; it is not re-raised in the event loop.
        self.worker = thread_worker(run_plate, start_thread=False, ignore_errors=True)(
            self._pipeline, plate, out_path, chosen, workers=self.workers_spin.value(), cancel=self.token
        )
        self.worker.yielded.connect(self._on_progress)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self._progress = progress(total=len(chosen), desc="plateflow: run on plate")
        self.progress_bar.setRange(0, len(chosen))
        self.progress_bar.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.open_button.setEnabled(False)
        self._set_status(f"Running {len(chosen)} well(s) into {out_path}...")
        self.worker.start()
        return True

    def cancel(self) -> None:
        """Stop the run: no more wells start; wells in worker processes are stopped."""
        if self.token is not None and self.worker is not None:
            self.token.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling: no more wells start (a later run with resume finishes the plate)...")

    def _on_progress(self, state: PlateRunProgress) -> None:
        if self.closed or self.worker is None:
            return  # the run has ended (_on_finished ran): nothing of it changes the panel any more
        self.result = state
        self.progress_bar.setValue(state.done)
        failed = f", {len(state.failed)} failed" if state.failed else ""
        self._set_status(f"{state.done} of {state.total} well(s) done{failed} ({state.seconds:.1f} s).")
        # Last: napari's progress bar may process events, so the run's end can be handled inside
        # this call; nothing after it may overwrite what the end put in the status line.
        if self._progress is not None:
            self._progress.update(state.done - self._progress.n)

    def _on_error(self, error: Exception) -> None:
        if self.closed:
            return
        if isinstance(error, CompileError):
            self.error = f"The pipeline does not compile for this plate: {error}"
        elif isinstance(error, PlateRunError):
            self.error = f"The run failed: {error}"
        else:
            self.error = f"The run failed: {type(error).__name__}: {error}"
        self._set_status(self.error)

    def _on_finished(self) -> None:
        if self.closed:
            return
        self.worker = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        state = self.result
        if state is None:
            self.run_finished.emit(None)
            return
        self.show_results(state)
        if self.error:  # the run raised after some wells finished: say so, not "running"
            lines = [self.error, f"{len(state.succeeded)} of {state.total} well(s) done before it stopped."]
        else:
            lines = [state.summary()]
        for well, failure in state.failed.items():
            lines.append(f"{well} failed at {failure.format()}")
        self._set_status("\n".join(lines))
        self.run_finished.emit(state)

    # -- results ------------------------------------------------------------------------
    def show_results(self, state: PlateRunProgress) -> None:
        """Show the output folder, the tables and the plate map of a run."""
        self.output_label.setText(f"Outputs: {state.outputs}")
        self.output_label.setToolTip(str(state.outputs))
        self.open_button.setEnabled(True)
        # The cells as written: the table view shows a plate's CSV as any spreadsheet would.
        tables = {name: read_table(path, parse_numbers=False) for name, path in state.tables.items() if Path(path).is_file()}
        self.tables.set_tables(tables)
        self.plate_map.set_tables(tables)

    def _open_output_plate(self) -> Any:
        if self._output_plate is None and self.result is not None:
            self._output_plate = open_plate(self.result.outputs, allow_ragged=True)
        return self._output_plate

    def _layers_in_frame(self, plate: Any, well: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
        """The outputs in the input plate's frame, so they sit on the plate's own images and tuning layers."""
        source = self._source_plate if self._source_plate is not None else self.builder.plate
        return frame_layer_data(
            plate,
            PlateFrame.from_plate(source),
            channel_names=dict(source.channel_names),
            channel_order=list(source.components["channel"]),
            well=well,
        )

    def _add_output_layer(self, data: Any, options: dict[str, Any], name: str) -> Any:
        functions = _last_step_functions(self._pipeline) if self._pipeline is not None else ()
        if is_label_output(functions, data.dtype):
            kept = {k: v for k, v in options.items() if k in ("scale", "translate", "axis_labels", "units", "metadata")}
            return self.viewer.add_labels(data, name=name, **kept)
        return self.viewer.add_image(data, **dict(options, name=name, blending="additive"))

    def open_output_layers(self) -> list[Any]:
        """Every well's outputs as lazy layers, in the plate's frame (label outputs as Labels layers)."""
        try:
            plate = self._open_output_plate()
            if plate is None:
                return []
            found = self._layers_in_frame(plate)
        except (OSError, PlateError, ValueError) as error:
            self._set_status(f"Cannot open the outputs: {error}")
            return []
        return [self._add_output_layer(data, options, f"{options['name']} (plate outputs)") for data, options in found]

    def load_well_layers(self, well: str) -> list[Any]:
        """One well's outputs as layers at that well's place (updated in place when the well was opened before)."""
        try:
            plate = self._open_output_plate()
            if plate is None:
                return []
            found = self._layers_in_frame(plate.subset(well=well), well=well)
        except (OSError, PlateError, ValueError) as error:
            self._set_status(f"Cannot open the outputs of well {well}: {error}")
            return []
        layers = []
        for data, options in found:
            channel = options["metadata"]["plateflow_channel"]
            array = np.asarray(data)
            key = (well, channel)
            layer = self._well_layers.get(key)
            if layer is not None and layer in self.viewer.layers and layer.ndim == array.ndim:
                layer.data = array
            else:
                layer = self._add_output_layer(array, options, f"{well} {options['name']} (output)")
            self._well_layers[key] = layer
            layers.append(layer)
        self._set_status(f"Opened the outputs of well {well} ({len(layers)} layer(s)).")
        self.well_layers_loaded.emit(well, layers)
        return layers

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)
