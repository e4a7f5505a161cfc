"""Function patterns: the four ways a step names its functions, in one normalized form.

1. a bare function ``f``;
2. ``(f, {"kw": value})``;
3. a list of 1/2, run in sequence on the same stack (a chain);
4. a dict ``{component_value: 1/2/3}`` keyed by values of the step's ``group_by``.

``normalize_pattern`` turns any of them into a :class:`NormalizedPattern`, whose
:class:`FunctionCall` items each know their *place* in the pattern, the
``field`` grammar used by diagnostics: ``""`` for a single function,
``func[i]`` for chain item i, ``func['k']`` for dict entry k, ``func['k'][i]``
nested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "FunctionCall",
    "NormalizedPattern",
    "PatternError",
    "PatternKind",
    "normalize_pattern",
    "function_field",
    "kwarg_field",
    "function_name",
]

PatternKind = Literal["function", "chain", "dict"]


class PatternError(ValueError):
    """A malformed function pattern; ``field`` names the part that is wrong."""

    def __init__(self, message: str, field: str = "func") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


def function_name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def function_field(place: str) -> str:
    """Field that points at the function itself at ``place``."""
    return place or "func"


def kwarg_field(place: str, name: str) -> str:
    """Field that points at keyword ``name`` of the function at ``place``."""
    return f"{place}.kwargs.{name}" if place else f"kwargs.{name}"


@dataclass(frozen=True)
class FunctionCall:
    """One function of a pattern with its keyword arguments and its place."""

    func: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    place: str = ""
    #: the place as a tuple: ``()``, ``("func", i)``, ``("func", k)`` or ``("func", k, i)``
    path: tuple[str | int, ...] = ()

    @property
    def name(self) -> str:
        return function_name(self.func)

    @property
    def field(self) -> str:
        return function_field(self.place)

    def kwarg_field(self, name: str) -> str:
        return kwarg_field(self.place, name)


@dataclass(frozen=True)
class NormalizedPattern:
    """A pattern as chains of calls; key ``None`` unless the pattern is a dict."""

    kind: PatternKind
    chains: Mapping[str | None, tuple[FunctionCall, ...]]

    @property
    def is_dict(self) -> bool:
        return self.kind == "dict"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in self.chains if k is not None)

    def calls(self) -> Iterator[FunctionCall]:
        for chain in self.chains.values():
            yield from chain

    def chain_for(self, key: str | None) -> tuple[FunctionCall, ...]:
        """The chain that runs for component value ``key`` (``None`` for non-dict patterns)."""
        if not self.is_dict:
            return self.chains[None]
        return self.chains[key]  # KeyError is the caller's to report

    def first_calls(self) -> list[FunctionCall]:
        return [chain[0] for chain in self.chains.values()]

    def last_calls(self) -> list[FunctionCall]:
        return [chain[-1] for chain in self.chains.values()]


def _single(item: Any, place: str, path: tuple[str | int, ...] = ()) -> FunctionCall:
    """Normalize pattern kinds 1 and 2 at ``place`` (``path``: the same place as a tuple)."""
    where = function_field(place)
    if isinstance(item, tuple):
        if len(item) != 2:
            raise PatternError(
                f"a (function, kwargs) tuple needs exactly 2 items, got {len(item)}", where
            )
        func, kwargs = item
        if not callable(func):
            raise PatternError(f"the first item of the tuple must be a function, got {type(func).__name__}", where)
        if not isinstance(kwargs, Mapping):
            raise PatternError(
                f"the second item of the tuple must be a dict of keyword arguments, got {type(kwargs).__name__}",
                where,
            )
        bad = [k for k in kwargs if not isinstance(k, str)]
        if bad:
            raise PatternError(f"keyword argument names must be strings, got {bad[0]!r}", where)
        return FunctionCall(func, MappingProxyType(dict(kwargs)), place, path)
    if isinstance(item, (dict, Mapping)):
        raise PatternError("a dict pattern cannot be nested inside another pattern", where)
    if isinstance(item, list):
        raise PatternError("a list (chain) cannot be nested inside another list", where)
    if not callable(item):
        raise PatternError(f"expected a function, got {type(item).__name__} {item!r}", where)
    return FunctionCall(item, MappingProxyType({}), place, path)


def _chain(items: Any, prefix: str, key: str | None = None) -> tuple[FunctionCall, ...]:
    """Normalize kinds 1-3 at ``prefix`` ("" at the top, "func['k']" in dict entry ``key``)."""
    base_path: tuple[str | int, ...] = ("func",) if key is None else ("func", key)
    if isinstance(items, list):
        if not items:
            raise PatternError("an empty list has no function to run", function_field(prefix))
        base = prefix or "func"
        return tuple(_single(item, f"{base}[{i}]", (*base_path, i)) for i, item in enumerate(items))
    return (_single(items, prefix, () if key is None else base_path),)


def normalize_pattern(pattern: Any) -> NormalizedPattern:
    """Normalize any of the four function patterns; raise :class:`PatternError` if malformed."""
    if pattern is None:
        raise PatternError("the step has no function", "func")
    if isinstance(pattern, Mapping):
        if not pattern:
            raise PatternError("an empty dict pattern has no function to run", "func")
        chains: dict[str | None, tuple[FunctionCall, ...]] = {}
        for key, value in pattern.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise PatternError(
                    f"dict pattern keys must be component values such as '1', got {key!r}", "func"
                )
            skey = str(key)
            if skey in chains:
                raise PatternError(f"dict pattern key {skey!r} appears twice", f"func[{skey!r}]")
            if isinstance(value, Mapping):
                raise PatternError("a dict pattern cannot be nested inside another dict", f"func[{skey!r}]")
            chains[skey] = _chain(value, f"func[{skey!r}]", skey)
        return NormalizedPattern("dict", MappingProxyType(chains))
    kind: PatternKind = "chain" if isinstance(pattern, list) else "function"
    return NormalizedPattern(kind, MappingProxyType({None: _chain(pattern, "")}))
