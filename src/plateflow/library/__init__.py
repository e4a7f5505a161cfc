"""The bundled functions for every memory type, and the function registry.

``plateflow.library.numpy_functions`` has every operation of
:mod:`plateflow.library.specs` and :mod:`plateflow.library.specs_assay`
(filters, background removal, projections, thresholds, morphology, nuclei and
cell segmentation, per-object measurements); ``torch_functions``,
``pyclesperanto_functions`` and ``cupy_functions`` have the filters, top-hat
and bottom-hat, projections, thresholds and labelling. :mod:`plateflow.library.registry`
names them all ``<memory type>.<function>``. :mod:`plateflow.library.profiles`
summarizes the measurement tables a run writes, per well and per plate.
"""

from __future__ import annotations

from .registry import (
    FunctionInfo,
    PluginWarning,
    categories,
    format_function_table,
    get,
    info,
    load_plugins,
    name_of,
    names,
    register,
)

__all__ = [
    "FunctionInfo",
    "PluginWarning",
    "categories",
    "format_function_table",
    "get",
    "info",
    "load_plugins",
    "name_of",
    "names",
    "register",
]
