"""``python -m plateflow.napari``: napari with the sample plate, the Pipeline builder and the demo pipeline.

Options: ``--plate FOLDER`` opens another plate; ``--pipeline FILE`` loads a
pipeline file instead of the demo pipeline.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "open_builder"]


def open_builder(viewer, plate: str | Path | None = None, pipeline_file: str | Path | None = None):
    """Open the plate with the plateflow reader and dock the builder (demo or file pipeline) in ``viewer``.

    Returns the :class:`~plateflow.napari._widget.PipelineBuilderWidget`.
    """
    from plateflow.execution.demo import demo_pipeline
    from plateflow.plate import sample_plate_path

    from ._manifest import PLUGIN_NAME, ensure_plugin_registered

    ensure_plugin_registered()
    plate_path = Path(plate) if plate is not None else sample_plate_path()
    viewer.open(str(plate_path), plugin=PLUGIN_NAME)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, "Pipeline builder")
    if plate is not None:
        widget.set_plate(plate_path)
    if pipeline_file is not None:
        widget.load_pipeline_file(pipeline_file)
    else:
        widget.load_pipeline(demo_pipeline())
    widget.check_now()
    return widget


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plateflow.napari",
        description="Open napari with a plate's channels as layers and the plateflow Pipeline builder docked.",
    )
    parser.add_argument("--plate", help="plate folder (default: the bundled sample plate)")
    parser.add_argument("--pipeline", help="pipeline file to load (default: the demo pipeline)")
    args = parser.parse_args(argv)

    import napari

    viewer = napari.Viewer(title="plateflow")
    open_builder(viewer, args.plate, args.pipeline)
    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
