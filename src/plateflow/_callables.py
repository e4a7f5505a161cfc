"""Callables of every kind, seen through to the function that declares things.

A step's function may be a plain function, a ``functools.partial`` of a
decorated function, a bound method, a staticmethod, or an instance of a class
with a ``__call__``. The decorators attach their metadata
(``input_memory_type``, ``special_inputs``, ...) to whatever object they
decorated, so reading it means looking through the wrappers:
:func:`declared` does that, :func:`hint_source` finds the function whose
annotations describe the parameters, and :func:`readable_name` names any of
them in words a user recognises.

The lowest layer: it imports nothing from plateflow.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["declared", "metadata_sources", "hint_source", "readable_name", "is_callable_instance", "signature_of"]

_MISSING = object()


def is_callable_instance(func: Any) -> bool:
    """An object called through its class's ``__call__`` (not a function, method, partial or class)."""
    return (
        callable(func)
        and not isinstance(func, (type, functools.partial, staticmethod, classmethod))
        and not inspect.isroutine(func)
    )


def _inner(func: Any) -> Any:
    """The next object inside a wrapper, or ``None``."""
    if isinstance(func, functools.partial):
        return func.func
    if isinstance(func, (staticmethod, classmethod)) or inspect.ismethod(func):
        return func.__func__
    if is_callable_instance(func):
        return getattr(type(func), "__call__", None)
    return None


def _staticmethod_owner(func: Any) -> Any:
    """The ``staticmethod`` object a plain function was taken from (``Class.method``), if any.

    ``@numpy`` written above ``@staticmethod`` decorates the staticmethod object, and
    ``Class.method`` hands out the bare function: the metadata is on the class's entry.
    """
    qualname = getattr(func, "__qualname__", "")
    if not inspect.isfunction(func) or "." not in qualname or "<locals>" in qualname:
        return None
    owner: Any = sys.modules.get(getattr(func, "__module__", "") or "")
    parts = qualname.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    entry = getattr(owner, "__dict__", {}).get(parts[-1])
    return entry if isinstance(entry, (staticmethod, classmethod)) and entry.__func__ is func else None


def metadata_sources(func: Any) -> Iterator[Any]:
    """``func`` and each object it wraps, outermost first."""
    seen: set[int] = set()
    current = func
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        owner = _staticmethod_owner(current)
        if owner is not None and id(owner) not in seen:
            seen.add(id(owner))
            yield owner
        current = _inner(current)


def declared(func: Any, attribute: str, default: Any = None) -> Any:
    """The value a decorator attached as ``attribute`` to ``func`` or to what it wraps."""
    if inspect.isfunction(func):  # the common case, kept fast: the check runs on every edit
        value = func.__dict__.get(attribute, _MISSING)
        if value is not _MISSING:
            return value
        if "." not in func.__qualname__ or "<locals>" in func.__qualname__:
            return default  # no staticmethod entry of a class to look in
    for source in metadata_sources(func):
        try:
            value = getattr(source, attribute, _MISSING)
        except Exception:  # an object whose __getattr__ fails is simply not a source
            continue
        if value is not _MISSING:
            return value
    return default


def hint_source(func: Any) -> Callable[..., Any] | None:
    """The plain function whose annotations and ``__globals__`` describe ``func``'s parameters."""
    for source in metadata_sources(func):
        if inspect.isfunction(source):
            return source
    return None


def _plain_name(func: object) -> str | None:
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if not isinstance(qualname, str) or not qualname:
        return None
    # "test_x.<locals>.blur" names where it was defined, not what it is
    return qualname.rsplit("<locals>.", 1)[-1]


def readable_name(func: Any) -> str:
    """``blur``, ``Normalizer.apply``, ``Normalizer`` (an instance), ``blur`` for a partial of blur."""
    if isinstance(func, functools.partial):
        return readable_name(func.func)
    if isinstance(func, (staticmethod, classmethod)):
        return readable_name(func.__func__)
    if inspect.ismethod(func):
        return _plain_name(func.__func__) or str(type(func).__name__)
    if is_callable_instance(func):
        return _plain_name(type(func)) or type(func).__name__
    return _plain_name(func) or type(func).__name__


def signature_of(func: Any) -> inspect.Signature:
    """``inspect.signature(func)``, remembered for hashable callables (the check asks on every edit)."""
    try:
        hash(func)
    except TypeError:
        return inspect.signature(func)
    return _cached_signature(func)


@functools.lru_cache(maxsize=4096)
def _cached_signature(func: Any) -> inspect.Signature:
    return inspect.signature(func)
