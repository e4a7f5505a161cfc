"""Regenerate docs/images/pipeline-builder.png: napari with the Pipeline builder showing a diagnostic.

Run it with a display, or headless under Xvfb:

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python docs/make_screenshot.py

It opens the sample plate and the demo pipeline (as ``python -m plateflow.napari``
does), misspells the top-hat's ``radius`` as ``raduis`` so the compiler marks the
step, its form and the problems panel, and saves the whole window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "images" / "pipeline-builder.png"
WINDOW_SIZE = (1280, 960)


def settle(seconds: float) -> None:
    """Let napari draw the layers and the dock lay itself out."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)


def main() -> int:
    import napari
    from qtpy.QtWidgets import QWidget

    from plateflow.napari.__main__ import open_builder

    viewer = napari.Viewer(title="plateflow - Pipeline builder", show=True)
    widget = open_builder(viewer)
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    background = next(s for s in widget.model.steps if s.name == "Remove background")
    widget.model.rename_kwarg(background.step_id, None, 0, "radius", "raduis")
    widget.step_list.select_step(background.step_id)
    widget.check_now()
    settle(1.0)
    viewer.reset_view()
    for toast in viewer.window._qt_window.findChildren(QWidget):
        if type(toast).__name__ == "NapariQtNotification":  # the PyQt5 deprecation toast covers the canvas
            toast.close()
    settle(1.0)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    if not viewer.window._qt_window.grab().save(str(OUTPUT)):
        print(f"could not write {OUTPUT}", file=sys.stderr)
        return 1
    print(f"wrote {OUTPUT} ({len(widget.diagnostics)} diagnostic(s) shown)")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
