"""What every storage backend implements, and the errors they share."""

from __future__ import annotations

import fnmatch
import os
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "StorageBackend",
    "StorageError",
    "ProtectedPathError",
    "CorruptFileError",
    "array_memory_type",
    "to_numpy",
    "match_name",
    "posix",
]


class StorageError(OSError):
    """A VFS operation failed; the message names the path."""


class ProtectedPathError(PermissionError):
    """A write or delete was aimed at a read-only root (such as the input plate)."""


class CorruptFileError(StorageError, ValueError):
    """A file exists but cannot be decoded (empty, truncated, or not in its format)."""


@runtime_checkable
class StorageBackend(Protocol):
    """A place to keep step outputs: ``save`` / ``load`` / ``exists`` / ``list`` / ``delete``.

    ``is_local`` is true when paths are real filesystem paths, so that
    ``FileManager`` can refuse writes under its protected roots.
    """

    name: ClassVar[str]
    is_local: ClassVar[bool]

    def save(self, data: Any, path: str, **options: Any) -> None: ...

    def load(self, path: str, **options: Any) -> Any: ...

    def exists(self, path: str, **options: Any) -> bool: ...

    def list(self, path: str, *, pattern: str | None = None, recursive: bool = True) -> list[str]: ...

    def delete(self, path: str) -> None: ...


def array_memory_type(data: Any) -> str | None:
    """The memory type of an array (``"numpy"``, ``"torch"``, ...), or ``None`` for anything else."""
    if isinstance(data, np.ndarray):
        return "numpy"
    if not (hasattr(data, "shape") and hasattr(data, "dtype")):
        return None
    from ...memory.conversion import detect_memory_type

    try:
        return detect_memory_type(data)
    except TypeError:
        return None


def to_numpy(data: Any) -> Any:
    """Arrays of any memory type as numpy; other objects unchanged."""
    source = array_memory_type(data)
    if source is None or source == "numpy":
        return data
    from ...memory import convert

    return convert(data, source, "numpy")


def posix(path: str | os.PathLike[str]) -> str:
    return os.fspath(path).replace("\\", "/")


def match_name(relpath: str, pattern: str | None) -> bool:
    """Whether the file name (last part of ``relpath``) matches a glob ``pattern``."""
    return pattern is None or fnmatch.fnmatchcase(relpath.rsplit("/", 1)[-1], pattern)


def is_label_plane(data: Any) -> bool:
    """Whether a plane is a label image or a mask rather than intensities.

    Labels: boolean masks, signed integers (``int32`` label images, as the
    segmentation functions return), ``uint32`` and ``uint64``; a ``uint8``
    plane holding only 0 and 1 is a mask. ``uint8``/``uint16`` intensities and
    floating-point images are images.
    """
    array = np.asarray(data)
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind in "bi":
        return True
    if kind == "u":
        return size >= 4 or (size == 1 and array.size > 0 and int(array.max()) <= 1)
    return False
