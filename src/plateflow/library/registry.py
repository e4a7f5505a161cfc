"""The function registry: every bundled and plugin function under a stable name.

Names are ``<memory type>.<function>`` (``numpy.gaussian_filter``,
``torch.top_hat``). The registry lists every bundled function, including those
whose library is not installed or has no device here; :func:`info` says which
(``available`` and ``unavailable_reason``). Pipeline files name functions by
these names, and :func:`name_of` finds the name of a function when saving.

Third-party packages add functions through the ``plateflow.functions`` entry
point group. An entry point names either a module (its decorated functions,
those in ``__all__`` when it has one, are registered) or a callable that
returns functions (a list, or a dict of ``name: function``) or is itself a
decorated function. A function's category is its ``category`` attribute, or
``"other"``. A plugin that fails to load is reported as a
:class:`PluginWarning` naming it; the other functions stay available.

Loading the registry imports the bundled library modules, which import no
array library; torch, cupy and pyclesperanto load only when a function runs,
or (through the availability check) when :func:`info` is asked.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._text import did_you_mean
from ..memory.types import MEMORY_TYPES
from ..signatures import ParamInfo, describe_parameters, summary_line
from ..special_io import get_special_inputs, get_special_outputs, is_chain_breaker

__all__ = [
    "ENTRY_POINT_GROUP",
    "FunctionInfo",
    "PluginWarning",
    "names",
    "get",
    "info",
    "name_of",
    "categories",
    "register",
    "load_plugins",
    "format_function_table",
]

ENTRY_POINT_GROUP = "plateflow.functions"

#: Memory types with a bundled library module ``plateflow.library.<type>_functions``.
BUNDLED_MEMORY_TYPES: tuple[str, ...] = ("numpy", "torch", "pyclesperanto", "cupy")

DEFAULT_CATEGORY = "other"


class PluginWarning(UserWarning):
    """A ``plateflow.functions`` plugin could not be loaded or registered."""


@dataclass(frozen=True)
class FunctionInfo:
    """What the builder, the compiler and pipeline files need to know about one function."""

    name: str
    func: Callable[..., Any]
    category: str
    input_memory_type: str
    output_memory_type: str
    special_inputs: tuple[str, ...]
    special_outputs: tuple[str, ...]
    chain_breaker: bool
    params: tuple[ParamInfo, ...]
    summary: str
    doc: str
    available: bool
    unavailable_reason: str
    plugin: str | None = None

    @property
    def memory_type(self) -> str:
        """The input memory type: the badge the catalogue shows."""
        return self.input_memory_type


@dataclass(frozen=True)
class _Entry:
    func: Callable[..., Any]
    category: str
    plugin: str | None


class _Registry:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.names_by_func: dict[Callable[..., Any], str] = {}
        self.infos: dict[str, FunctionInfo] = {}
        self.loaded = False  # set only once every bundled function and plugin is in
        self.loading = False
        self.lock = threading.RLock()

    def ensure_loaded(self) -> None:
        if self.loaded:
            return
        # The loading thread holds the lock throughout, so other threads wait for the whole
        # registry instead of seeing part of it; a plugin that calls register() while it is
        # imported re-enters here on the loading thread and finds ``loading`` set.
        with self.lock:
            if self.loaded or self.loading:
                return
            self.loading = True
            try:
                for memory_type in BUNDLED_MEMORY_TYPES:
                    module = importlib.import_module(f"{__package__}.{memory_type}_functions")
                    for attr in module.__all__:
                        func = getattr(module, attr)
                        self.add(func, f"{memory_type}.{attr}", func.category, None)
                load_plugins()
                self.loaded = True
            finally:
                self.loading = False

    def add(self, func: Callable[..., Any], name: str, category: str, plugin: str | None) -> str:
        existing = self.entries.get(name)
        if existing is not None:
            if existing.func is func:
                return name
            raise ValueError(
                f"the name {name!r} is already registered for {_where(existing.func)}; "
                "register the new function under another name (register(func, name=...))"
            )
        self.entries[name] = _Entry(func, category, plugin)
        self.names_by_func.setdefault(func, name)
        return name


_REGISTRY = _Registry()


def _where(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _check_decorated(func: Any, what: str) -> None:
    if not callable(func):
        raise TypeError(f"{what}: expected a function, got {type(func).__name__} {func!r}")
    if not hasattr(func, "input_memory_type"):
        raise ValueError(
            f"{what}: {_where(func)} has no memory type; decorate it with one of "
            + ", ".join(f"@{t}" for t in MEMORY_TYPES)
            + " from plateflow.memory"
        )


def register(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    category: str | None = None,
    plugin: str | None = None,
) -> str:
    """Add a decorated function; returns its registry name.

    ``name`` defaults to ``<input memory type>.<function name>``; ``category``
    to the function's ``category`` attribute, or ``"other"``. Registering the
    same function under the same name again does nothing; another function
    under a taken name raises ``ValueError``.
    """
    _REGISTRY.ensure_loaded()
    return _register(func, name=name, category=category, plugin=plugin)


def _register(func: Callable[..., Any], *, name: str | None, category: str | None, plugin: str | None) -> str:
    _check_decorated(func, "register")
    if name is None:
        name = f"{func.input_memory_type}.{func.__name__}"  # type: ignore[attr-defined]
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"register: name {name!r} is not valid; use '<memory type>.<function>', e.g. 'numpy.my_filter'")
    chosen = category if category is not None else getattr(func, "category", DEFAULT_CATEGORY)
    with _REGISTRY.lock:
        return _REGISTRY.add(func, name, str(chosen), plugin)


def _plugin_functions(loaded: Any) -> list[tuple[str | None, Callable[..., Any]]]:
    """The ``(name or None, function)`` pairs an entry point provides."""
    if isinstance(loaded, types.ModuleType):
        attrs = getattr(loaded, "__all__", None)
        candidates = [getattr(loaded, a) for a in attrs] if attrs is not None else list(vars(loaded).values())
        return [(None, f) for f in candidates if callable(f) and hasattr(f, "input_memory_type")]
    if hasattr(loaded, "input_memory_type"):
        return [(None, loaded)]
    if callable(loaded):
        provided = loaded()
        if isinstance(provided, Mapping):
            return [(str(k), f) for k, f in provided.items()]
        if isinstance(provided, Iterable):
            return [(None, f) for f in provided]
        raise TypeError(f"returned {type(provided).__name__}; return a list of functions or a dict of name: function")
    raise TypeError(f"is a {type(loaded).__name__}; name a module or a callable returning functions")


def load_plugins() -> list[str]:
    """Register the functions of every ``plateflow.functions`` entry point; returns the new names.

    Runs when the registry first loads; call it again after installing a
    plugin into a running process. Each failing plugin gives a
    :class:`PluginWarning` naming it.
    """
    from importlib.metadata import entry_points

    added: list[str] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        label = f"{entry_point.name} ({entry_point.value})"
        # A plugin is third-party code: any error it raises is reported, with its name, as a warning.
        try:
            provided = _plugin_functions(entry_point.load())
            before = set(_REGISTRY.entries)
            for name, func in provided:
                registered = _register(func, name=name, category=None, plugin=entry_point.name)
                if registered not in before:
                    added.append(registered)
        except Exception as error:  # noqa: BLE001 - reported, not swallowed
            warnings.warn(
                f"plateflow plugin {label} failed to load: {type(error).__name__}: {error}",
                PluginWarning,
                stacklevel=2,
            )
    _REGISTRY.infos.clear()
    return added


def names(*, memory_type: str | None = None, category: str | None = None) -> list[str]:
    """Registry names, sorted; filtered by input memory type and/or category."""
    _REGISTRY.ensure_loaded()
    return sorted(
        name
        for name, entry in _REGISTRY.entries.items()
        if (memory_type is None or entry.func.input_memory_type == memory_type)  # type: ignore[attr-defined]
        and (category is None or entry.category == category)
    )


def categories() -> list[str]:
    _REGISTRY.ensure_loaded()
    return sorted({entry.category for entry in _REGISTRY.entries.values()})


def _unknown(name: object) -> KeyError:
    known = list(_REGISTRY.entries)
    suggestion = did_you_mean(str(name), known, limit=3)
    hint = f"; {suggestion}" if suggestion else "; `plateflow functions` lists them"
    return KeyError(f"no function named {name!r} in the registry{hint}")


def get(name: str) -> Callable[..., Any]:
    """The function registered as ``name``; ``KeyError`` with close names when there is none."""
    _REGISTRY.ensure_loaded()
    entry = _REGISTRY.entries.get(name)
    if entry is None:
        raise _unknown(name)
    return entry.func


def name_of(func: Callable[..., Any]) -> str | None:
    """The registry name of ``func``, or ``None`` when it is not registered."""
    _REGISTRY.ensure_loaded()
    try:
        return _REGISTRY.names_by_func.get(func)
    except TypeError:  # unhashable callables are never registered
        return None


def _library_status(memory_type: str) -> tuple[bool, str]:
    """``(usable here, why not)``; the probe itself is cached by :mod:`plateflow.memory.devices`."""
    from ..memory.devices import library_status

    status = library_status(memory_type)
    usable = status.installed and (status.runs_on_cpu or status.has_gpu)
    return (True, "") if usable else (False, status.reason)


def info(name: str) -> FunctionInfo:
    """Everything known about the function registered as ``name``."""
    _REGISTRY.ensure_loaded()
    cached = _REGISTRY.infos.get(name)
    if cached is not None:
        return cached
    entry = _REGISTRY.entries.get(name)
    if entry is None:
        raise _unknown(name)
    func = entry.func
    input_type = func.input_memory_type  # type: ignore[attr-defined]
    output_type = func.output_memory_type  # type: ignore[attr-defined]
    reasons = [r for t in dict.fromkeys((input_type, output_type)) for ok, r in [_library_status(t)] if not ok]
    result = FunctionInfo(
        name=name,
        func=func,
        category=entry.category,
        input_memory_type=input_type,
        output_memory_type=output_type,
        special_inputs=get_special_inputs(func),
        special_outputs=get_special_outputs(func),
        chain_breaker=is_chain_breaker(func),
        params=describe_parameters(func),
        summary=summary_line(func),
        doc=inspect.getdoc(func) or "",
        available=not reasons,
        unavailable_reason="; ".join(reasons),
        plugin=entry.plugin,
    )
    _REGISTRY.infos[name] = result
    return result


def format_function_table(
    selected: Iterable[str] | None = None, *, memory_type: str | None = None, category: str | None = None
) -> str:
    """A plain-text table of functions: name, memory type, category, availability, summary.

    ``selected`` defaults to every registered name; ``memory_type`` and
    ``category`` filter it.
    """
    chosen = names(memory_type=memory_type, category=category)
    if selected is not None:
        wanted = set(selected)
        chosen = [n for n in chosen if n in wanted]
    rows = [("NAME", "MEMORY TYPE", "CATEGORY", "AVAILABLE", "SUMMARY")]
    for name in chosen:
        item = info(name)
        availability = "yes" if item.available else f"no: {item.unavailable_reason}"
        memory = item.input_memory_type
        if item.output_memory_type != item.input_memory_type:
            memory = f"{memory}->{item.output_memory_type}"
        rows.append((name, memory, item.category, availability, item.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows
    ).rstrip() + "\n"
