"""Plates: microscope handlers, the plate index, and a sample plate with ground truth.

``open_plate(path)`` detects the format (ImageXpress / MetaXpress, Opera Phenix /
Operetta) and indexes the folder once; ``plate.microscope_handler`` groups the
indexed images into the stacks a step receives.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import PlateError, PlateFormatError, RaggedPlateError
from .handler import MicroscopeHandler, PlateMetadata
from .imagexpress import ImageXpressHandler
from .index import HANDLERS, Plate, as_plate, open_plate
from .model import ImageFile, PatternGroup, group_files, natural_key, natural_sorted, well_id, well_position
from .opera_phenix import OperaPhenixHandler

__all__ = [
    "open_plate",
    "as_plate",
    "Plate",
    "ImageFile",
    "PatternGroup",
    "MicroscopeHandler",
    "ImageXpressHandler",
    "OperaPhenixHandler",
    "PlateMetadata",
    "HANDLERS",
    "PlateError",
    "PlateFormatError",
    "RaggedPlateError",
    "group_files",
    "natural_key",
    "natural_sorted",
    "well_id",
    "well_position",
    "generate_sample_plate",
    "sample_plate_path",
]

# The sample generator needs scipy/scikit-image; load it only when asked for.
_LAZY = {"generate_sample_plate": ".sample", "sample_plate_path": ".sample"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
