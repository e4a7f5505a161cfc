"""Storage backends: memory, disk and zarr, each a small class implementing ``StorageBackend``."""

from __future__ import annotations

from .base import CorruptFileError, ProtectedPathError, StorageBackend, StorageError
from .disk import DISK_FORMATS, DiskBackend
from .memory import MemoryBackend
from .zarr_store import ZarrBackend, ZarrPlateLayout, create_plate_metadata, create_plate_store, create_well_arrays

__all__ = [
    "StorageBackend",
    "StorageError",
    "ProtectedPathError",
    "CorruptFileError",
    "MemoryBackend",
    "DiskBackend",
    "DISK_FORMATS",
    "ZarrBackend",
    "ZarrPlateLayout",
    "create_plate_store",
    "create_plate_metadata",
    "create_well_arrays",
]
