"""``FileManager``: one entry point to every storage backend.

``save(data, path, backend)`` / ``load(path, backend)`` / ``exists`` / ``list``
/ ``delete``, with backends ``"memory"``, ``"disk"`` and ``"zarr"``. Arrays of
any memory type are saved (converted to numpy for disk and zarr); ``load``
returns numpy unless ``memory_type`` asks for another library.

Protected roots (the opened input plate) can be read but never written or
deleted under, whatever the backend: the check resolves symlinks, so a link
into the plate is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .backends.base import ProtectedPathError, StorageBackend, array_memory_type, to_numpy
from .backends.disk import DiskBackend, folder_identities, protected_ancestor, protected_inside
from .backends.memory import MemoryBackend
from .backends.zarr_store import ZarrBackend

__all__ = ["FileManager", "BACKEND_TYPES", "register_backend"]

#: Backend name -> factory; ``FileManager`` makes one instance of each.
BACKEND_TYPES: dict[str, Callable[[], StorageBackend]] = {
    "memory": MemoryBackend,
    "disk": DiskBackend,
    "zarr": ZarrBackend,
}


def register_backend(name: str, factory: Callable[[], StorageBackend]) -> None:
    """Add a backend for every ``FileManager`` created afterwards."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backend name {name!r} is not valid; use a non-empty string")
    BACKEND_TYPES[name] = factory


def _real(path: str | os.PathLike[str]) -> Path:
    # realpath resolves the existing part of a path and keeps the rest, so it works before a file exists.
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


class FileManager:
    """Saves and loads step data through named backends.

    Args:
        read_only_roots: folders that must never be written or deleted under
            (``protect`` adds more later).
    """

    def __init__(self, read_only_roots: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.backends: dict[str, StorageBackend] = {name: factory() for name, factory in BACKEND_TYPES.items()}
        self._protected: list[Path] = []
        self._identities: dict[tuple[int, int], Path] = {}  # (st_dev, st_ino) -> root: catches mounts and links
        for root in read_only_roots:
            self.protect(root)

    def __repr__(self) -> str:
        return f"FileManager(backends={list(self.backends)}, read_only_roots={[str(p) for p in self._protected]})"

    @property
    def read_only_roots(self) -> tuple[Path, ...]:
        return tuple(self._protected)

    def protect(self, root: str | os.PathLike[str]) -> None:
        """Refuse every write and delete under ``root`` from now on."""
        real = _real(root)
        if real not in self._protected:
            self._protected.append(real)
        # Every folder of the root, by identity: a mount or link of any of them is the root too.
        self._identities.update(folder_identities(real))

    def is_protected(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is a protected root or inside one (symlinks resolved)."""
        return bool(self._roots_covering(path))

    def _roots_covering(self, path: str | os.PathLike[str], *, or_inside: bool = False) -> list[Path]:
        real = _real(path)
        return [
            root for root in self._protected
            if real == root or root in real.parents or (or_inside and real in root.parents)
        ]

    def backend(self, name: str) -> StorageBackend:
        try:
            return self.backends[name]
        except KeyError:
            raise ValueError(f"backend={name!r} is not valid; choose one of: {', '.join(self.backends)}") from None

    def _check_writable(self, backend: StorageBackend, path: str | os.PathLike[str], action: str) -> None:
        if not backend.is_local:
            return
        # Deleting a folder that holds a protected root would delete the root too.
        roots = self._roots_covering(path, or_inside=action == "delete")
        if not roots and self._identities:
            by_identity = (protected_inside if action == "delete" and os.path.isdir(path) else protected_ancestor)(path, self._identities)
            roots = [by_identity] if by_identity is not None else []
        if roots:
            raise ProtectedPathError(
                f"refusing to {action} {os.fspath(path)}: the read-only root {roots[0]} (the input plate or "
                "another protected folder) must not change; write outputs to another folder"
            )

    def save(self, data: Any, path: str | os.PathLike[str], backend: str, **options: Any) -> None:
        """Store ``data`` at ``path``; disk and zarr take arrays of any memory type (stored as numpy)."""
        store = self.backend(backend)
        self._check_writable(store, path, "write")
        if store.is_local:
            data = to_numpy(data)
        store.save(data, os.fspath(path), **options)

    def load(self, path: str | os.PathLike[str], backend: str, *, memory_type: str | None = "numpy", **options: Any) -> Any:
        """Read ``path``; arrays come back as ``memory_type`` (``None`` keeps what the backend holds)."""
        data = self.backend(backend).load(os.fspath(path), **options)
        if memory_type is None:
            return data
        from ..memory.types import validate_memory_type

        target = validate_memory_type(memory_type)
        source = array_memory_type(data)
        if source is None or source == target:
            return data
        from ..memory import convert

        return convert(data, source, target)

    def exists(self, path: str | os.PathLike[str], backend: str, **options: Any) -> bool:
        return self.backend(backend).exists(os.fspath(path), **options)

    def list(self, path: str | os.PathLike[str], backend: str, *, pattern: str | None = None, recursive: bool = True) -> list[str]:
        """Entries under ``path``, relative to it, naturally sorted; ``pattern`` globs the file name."""
        return self.backend(backend).list(os.fspath(path), pattern=pattern, recursive=recursive)

    def delete(self, path: str | os.PathLike[str], backend: str) -> None:
        store = self.backend(backend)
        self._check_writable(store, path, "delete")
        store.delete(os.fspath(path))
