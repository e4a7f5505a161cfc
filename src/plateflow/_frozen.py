"""Deep immutability for compiled plans and contexts.

``freeze(value)`` returns a read-only twin of ``value``: dicts become
``FrozenDict``, lists and tuples become tuples, sets frozensets, numpy arrays
read-only copies. Anything else is kept as is (functions, strings, numbers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["FrozenDict", "FrozenError", "freeze", "thaw"]


class FrozenError(TypeError):
    """Raised on any attempt to change a frozen plan or context."""


class FrozenDict(Mapping[Any, Any]):
    """A read-only mapping; item assignment and deletion raise ``FrozenError``."""

    __slots__ = ("_data", "_hash")
    _data: dict[Any, Any]
    _hash: int | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_data", dict(*args, **kwargs))
        object.__setattr__(self, "_hash", None)

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(frozenset(self._data.items())))
        assert self._hash is not None  # set just above
        return self._hash

    def __setitem__(self, key: Any, value: Any) -> None:
        raise FrozenError(f"cannot set {key!r}: this mapping is frozen (compiled plans are read-only)")

    def __delitem__(self, key: Any) -> None:
        raise FrozenError(f"cannot delete {key!r}: this mapping is frozen (compiled plans are read-only)")

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenError("a FrozenDict cannot be changed")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self._data,))

    def __or__(self, other: Mapping[Any, Any]) -> "FrozenDict":
        return FrozenDict({**self._data, **other})


def freeze(value: Any) -> Any:
    """Return a deeply immutable version of ``value``."""
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        frozen = tuple(freeze(v) for v in value)
        # Keep named tuples and other tuple subclasses as they are when already immutable.
        return type(value)(*frozen) if hasattr(value, "_fields") else frozen
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        if value.flags.writeable:
            value = value.copy()
            value.flags.writeable = False
        return value
    return value


def thaw(value: Any) -> Any:
    """Plain mutable copy of a frozen value (for display and serialisation)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return [thaw(v) for v in value]
    if isinstance(value, frozenset):
        return {thaw(v) for v in value}
    return value
