"""Errors raised while opening and indexing a plate."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PlateError", "PlateFormatError", "RaggedPlateError"]


class PlateError(ValueError):
    """Base class for problems with a plate folder."""


class PlateFormatError(PlateError):
    """The folder is not a plate in any known format, or its files contradict each other."""


class RaggedPlateError(PlateError):
    """Some images of the plate's full (site, channel, z_index, timepoint) grid are missing.

    Attributes:
        missing: every missing file, as POSIX paths relative to the plate root.
    """

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing: tuple[str, ...] = tuple(missing)
