"""The memory backend: any Python object, kept in a process-local dict.

Paths are virtual and normalised (``posixpath.normpath``); folders exist
implicitly as prefixes of stored paths. Objects are stored as given (no copy,
no conversion), so keeping a step's output in memory costs nothing.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, ClassVar

from ..._naming import natural_sorted
from .base import match_name, posix

__all__ = ["MemoryBackend"]


def _norm(path: str | os.PathLike[str]) -> str:
    text = posix(path)
    if not text:
        raise ValueError("empty path")
    return posixpath.normpath(text)


class MemoryBackend:
    """Objects keyed by virtual path, with folder-like listing."""

    name: ClassVar[str] = "memory"
    is_local: ClassVar[bool] = False

    def __init__(self) -> None:
        self._store: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._store)

    def save(self, data: Any, path: str, **options: Any) -> None:
        options.pop("components", None)  # positions only matter to the zarr backend
        if options:
            raise TypeError(f"the memory backend takes no options; got {', '.join(sorted(options))}")
        self._store[_norm(path)] = data

    def load(self, path: str, **options: Any) -> Any:
        options.pop("components", None)
        key = _norm(path)
        try:
            return self._store[key]
        except KeyError:
            raise FileNotFoundError(f"nothing saved in memory at {key}") from None

    def exists(self, path: str, **options: Any) -> bool:
        key = _norm(path)
        if key in self._store:
            return True
        prefix = key.rstrip("/") + "/"
        return any(k.startswith(prefix) for k in self._store)

    def list(self, path: str, *, pattern: str | None = None, recursive: bool = True) -> list[str]:
        key = _norm(path)
        prefix = "" if key == "." else key.rstrip("/") + "/"
        found = []
        for k in self._store:
            if not k.startswith(prefix):
                continue
            rel = k[len(prefix):]
            if (recursive or "/" not in rel) and match_name(rel, pattern):
                found.append(rel)
        if not found and not self.exists(key) and key != ".":
            raise FileNotFoundError(f"no folder in memory at {key}")
        return natural_sorted(found)

    def delete(self, path: str) -> None:
        key = _norm(path)
        prefix = key.rstrip("/") + "/"
        doomed = [k for k in self._store if k == key or k.startswith(prefix)]
        if not doomed:
            raise FileNotFoundError(f"nothing saved in memory at {key}")
        for k in doomed:
            del self._store[k]

    def clear(self) -> None:
        """Forget everything (end of a well)."""
        self._store.clear()
