"""The napari plugin: the Pipeline builder dock widget (with live per-step layers and the
run on the plate), the plate reader and the sample plate.

Qt, napari and magicgui are imported only by the modules that need them, so
``plateflow.napari._model`` (the editable pipeline behind the widget) works
without a display.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "PipelineBuilderWidget",
    "PipelineModel",
    "PlateRunWidget",
    "PlateMapWidget",
    "StepVisualizer",
    "make_sample_plate",
    "napari_get_reader",
    "read_plate",
]

_LAZY = {
    "PipelineBuilderWidget": "._widget",
    "PipelineModel": "._model",
    "PlateRunWidget": "._plate_run",
    "PlateMapWidget": "._plate_map",
    "StepVisualizer": "._visualizer",
    "make_sample_plate": "._sample_data",
    "napari_get_reader": "._reader",
    "read_plate": "._reader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
