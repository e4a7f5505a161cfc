"""Regenerate the screenshots in docs/images: napari with the Pipeline builder, as a user sees it.

Run it with a display, or headless under Xvfb:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshot.py

It opens the sample plate and the demo pipeline (as ``python -m plateflow.napari``
does) in a 1600 x 1000 window and saves:

- ``builder.png``: the builder with the demo pipeline, the first step's form;
- ``builder-tuning.png``: tuning on well A02, site 2: the labels and points of the
  last step over the plate's own DAPI and FITC images of that well and site;
- ``marked-field.png``: the top-hat's ``radius`` misspelled ``raduis``: the compiler's
  error on the step row, on the keyword's row in the form, and in the problems list;
- ``plate-results.png``: the run on every well, with the plate map coloured by the
  nucleus count.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
WINDOW_SIZE = (1600, 1000)


def settle(seconds: float) -> None:
    """Let napari draw the layers and the dock lay itself out."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the builder did not finish in time")
        settle(0.1)


def close_toasts(window) -> None:
    from qtpy.QtWidgets import QWidget

    for toast in window.findChildren(QWidget):
        if type(toast).__name__ == "NapariQtNotification":  # the PyQt5 deprecation toast covers the canvas
            toast.close()


def save(viewer, name: str) -> Path:
    window = viewer.window._qt_window
    close_toasts(window)
    settle(0.5)
    path = IMAGES / name
    window.grab().save(str(path))
    print(f"wrote {path}")
    return path


def main() -> int:
    import napari

    from plateflow.napari.__main__ import open_builder

    IMAGES.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="plateflow - Pipeline builder", show=True)
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    builder = open_builder(viewer)
    controller = builder.tuning.controller

    def idle() -> bool:
        return not builder.check_pending and not controller.pending and not controller.is_running

    wait_until(idle)
    builder.step_list.select_step(builder.model.steps[0].step_id)
    viewer.reset_view()
    save(viewer, "builder.png")

    # Tuning over the right image: well A02, site 2, the labels over that site's nuclei.
    builder.well_combo.setCurrentText("A02")
    builder.site_combo.setCurrentText("2")
    wait_until(idle)
    builder.step_list.select_step(builder.model.steps[-1].step_id)
    labels = viewer.layers["4 Count nuclei"]
    labels.opacity = 0.45
    viewer.layers.selection.active = labels
    viewer.reset_view()
    viewer.camera.zoom *= 1.6
    save(viewer, "builder-tuning.png")

    # A marked field: a misspelled keyword.
    background = next(s for s in builder.model.steps if s.name == "Remove background")
    builder.model.rename_kwarg(background.step_id, None, 0, "radius", "raduis")
    builder.step_list.select_step(background.step_id)
    builder.check_now()
    settle(0.5)
    builder.editor_scroll.ensureWidgetVisible(builder.editor.widget_for(("kwargs", "raduis")))
    save(viewer, "marked-field.png")
    builder.undo()
    wait_until(idle)

    # The plate run and its results.
    panel = builder.open_plate_run()
    out = Path(tempfile.mkdtemp(prefix="plateflow-screenshot-")) / "out"
    finished = []
    panel.run_finished.connect(finished.append)
    panel.start_run(out=out, workers=2)
    wait_until(lambda: bool(finished), timeout=300)
    panel.load_well_layers("A02")
    wait_until(idle)
    save(viewer, "plate-results.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
