"""Cross-step data declarations: ``@special_outputs``, ``@special_inputs``, ``@chain_breaker``.

Like the memory decorators they only attach metadata and return the function
itself, so they compose with them in either order.

- ``@special_outputs("positions", ...)``: the function returns
  ``(stack, positions, ...)``, the extra values in the declared order.
  ``materialize=True`` (or a subset of the names) marks outputs that are results
  in their own right, such as measurement tables: they are written to the run's
  output folder (tables merged into one CSV per plate) whether or not a later
  step consumes them.
- ``@special_inputs("positions", ...)``: the function receives each name as a
  keyword argument, loaded from the step that produces it.
- ``@chain_breaker``: the step *after* the one running this function reads the
  plate's original input instead of this step's output.
"""

from __future__ import annotations

import keyword
from typing import Any, Callable, TypeVar

from ._callables import declared

__all__ = [
    "special_outputs",
    "special_inputs",
    "chain_breaker",
    "get_special_outputs",
    "get_special_inputs",
    "get_materialized_outputs",
    "is_chain_breaker",
]

F = TypeVar("F", bound=Callable[..., Any])


def _set(func: Any, decorator: str, **attributes: Any) -> None:
    if not callable(func):
        raise TypeError(f"@{decorator} needs a function, got {type(func).__name__} {func!r}")
    try:
        for name, value in attributes.items():
            setattr(func, name, value)
    except AttributeError:
        raise TypeError(f"@{decorator} cannot annotate {type(func).__name__} {func!r}; wrap it in a def") from None


def _check_names(decorator: str, names: tuple[object, ...]) -> tuple[str, ...]:
    if len(names) == 1 and callable(names[0]):
        raise TypeError(f"@{decorator} needs names: write @{decorator}(\"name\"), did you forget the parentheses?")
    if not names:
        raise ValueError(f"@{decorator} needs at least one name, e.g. @{decorator}(\"positions\")")
    checked: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"@{decorator}: {name!r} is not a valid name; use a Python identifier such as 'positions'")
        checked.append(name)
    if len(set(checked)) != len(checked):
        dupes = sorted({n for n in checked if checked.count(n) > 1})
        raise ValueError(f"@{decorator}: names repeated: {', '.join(dupes)}")
    return tuple(checked)


def special_outputs(*names: str, materialize: bool | tuple[str, ...] | list[str] = False) -> Callable[[F], F]:
    """Declare named values the function returns after its image stack.

    ``materialize``: ``True`` to save every one of them as a result of the run,
    or the names of those to save.
    """
    checked = _check_names("special_outputs", names)
    if isinstance(materialize, bool):
        saved = checked if materialize else ()
    else:
        saved = tuple(materialize)
        unknown = [n for n in saved if n not in checked]
        if unknown:
            raise ValueError(f"@special_outputs: materialize names {unknown} are not among the outputs {list(checked)}")

    def attach(func: F) -> F:
        _set(func, "special_outputs", special_outputs=checked, materialized_outputs=saved)
        return func

    return attach


def special_inputs(*names: str) -> Callable[[F], F]:
    """Declare named values the function takes as keyword arguments from an earlier step."""
    checked = _check_names("special_inputs", names)

    def attach(func: F) -> F:
        _set(func, "special_inputs", special_inputs=checked)
        return func

    return attach


def chain_breaker(func: F) -> F:
    """Mark a function whose step's successor reads the plate's original input."""
    _set(func, "chain_breaker", chain_breaker=True)
    return func


# ``declared`` looks through partials, bound methods, staticmethods and callable instances.
def get_special_outputs(func: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(declared(func, "special_outputs", ()) or ())


def get_special_inputs(func: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(declared(func, "special_inputs", ()) or ())


def get_materialized_outputs(func: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(declared(func, "materialized_outputs", ()) or ())


def is_chain_breaker(func: Callable[..., Any]) -> bool:
    return bool(declared(func, "chain_breaker", False))
