"""The virtual file system: ``FileManager`` and its memory, disk and zarr backends.

Steps never pass data to each other directly: each saves its output through a
``FileManager`` and the next step loads it. Middle steps usually keep outputs
in memory; the first step reads the plate from disk and the last writes disk
(TIFF mirroring the plate) or one OME-Zarr plate store.
"""

from __future__ import annotations

from .backends import (
    DISK_FORMATS,
    CorruptFileError,
    DiskBackend,
    MemoryBackend,
    ProtectedPathError,
    StorageBackend,
    StorageError,
    ZarrBackend,
    ZarrPlateLayout,
    create_plate_metadata,
    create_plate_store,
    create_well_arrays,
)
from .backends.zarr_store import split_store_path
from .filemanager import BACKEND_TYPES, FileManager, register_backend

__all__ = [
    "FileManager",
    "StorageBackend",
    "MemoryBackend",
    "DiskBackend",
    "ZarrBackend",
    "ZarrPlateLayout",
    "create_plate_store",
    "create_plate_metadata",
    "create_well_arrays",
    "split_store_path",
    "register_backend",
    "BACKEND_TYPES",
    "DISK_FORMATS",
    "StorageError",
    "ProtectedPathError",
    "CorruptFileError",
]
