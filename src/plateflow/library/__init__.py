"""The bundled functions for every memory type, and the function registry.

``plateflow.library.numpy_functions`` has every operation of
:mod:`plateflow.library.specs`; ``torch_functions``, ``pyclesperanto_functions``
and ``cupy_functions`` have the filters, top-hat, projections, Otsu threshold
and labelling. :mod:`plateflow.library.registry` names them all
``<memory type>.<function>``.
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
