"""``MicroscopeHandler``: what every microscope format shares.

A handler knows its format's file names (``parse_path``, ``format_path``) and
metadata files (``read_metadata``). Grouping files into stacks is the same for
every format and lives here. ``open_plate`` binds one handler instance to its
plate, so ``plate.microscope_handler.auto_detect_patterns(...)`` answers from
the plate index without touching the disk again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .model import ImageFile, PatternGroup, group_files

if TYPE_CHECKING:
    from .index import Plate

__all__ = ["MicroscopeHandler", "PlateMetadata"]


@dataclass(frozen=True)
class PlateMetadata:
    """What a format's metadata files say about the plate (each item optional)."""

    pixel_size: float | None = None  # micrometres per pixel
    channel_names: Mapping[str, str] = field(default_factory=dict)


class MicroscopeHandler(ABC):
    """Base class for one microscope's file layout.

    Subclasses set ``name`` and ``file_pattern`` (a human-readable example shown
    in errors) and implement ``parse_path``, ``format_path``,
    ``is_metadata_file`` and ``read_metadata``.
    """

    name: ClassVar[str] = ""
    file_pattern: ClassVar[str] = ""

    def __init__(self, plate: "Plate | None" = None) -> None:
        self._plate = plate

    def __repr__(self) -> str:
        where = f" bound to {str(self._plate.root)!r}" if self._plate is not None else ""
        return f"{type(self).__name__}({self.name!r}{where})"

    # -- format-specific -------------------------------------------------
    @abstractmethod
    def parse_path(self, relpath: str) -> ImageFile | None:
        """The image's components from its path relative to the plate root; ``None`` if not an image of this format."""

    @abstractmethod
    def format_path(self, components: Mapping[str, str], like: ImageFile) -> str:
        """The relative path an image with ``components`` would have, in the style of ``like``."""

    def is_metadata_file(self, relpath: str) -> bool:
        """Whether ``relpath`` is one of this format's plate metadata files."""
        return False

    def read_metadata(self, root: Path, metadata_files: Sequence[str]) -> PlateMetadata:
        """Pixel size and channel names from the format's metadata files, where present."""
        return PlateMetadata()

    # -- shared ------------------------------------------------------------
    def bind(self, plate: "Plate") -> "MicroscopeHandler":
        self._plate = plate
        return self

    @property
    def plate(self) -> "Plate":
        if self._plate is None:
            raise RuntimeError(f"this {type(self).__name__} is not bound to a plate; use open_plate(path).microscope_handler")
        return self._plate

    def parse_paths(self, relpaths: Iterable[str]) -> list[ImageFile]:
        """Parse many paths, dropping those that are not images of this format."""
        parsed = (self.parse_path(p) for p in relpaths)
        return [f for f in parsed if f is not None]

    @staticmethod
    def group_files(
        files: Iterable[ImageFile],
        variable_components: Sequence[str] | str = ("site",),
        group_by: str | None = None,
    ) -> list[PatternGroup]:
        """Group ``files`` into stacks; see :func:`plateflow.plate.model.group_files`."""
        return group_files(files, variable_components, group_by)

    def auto_detect_patterns(
        self,
        well_filter: Iterable[str] | str | None = None,
        variable_components: Sequence[str] | str = ("site",),
        group_by: str | None = None,
    ) -> list[PatternGroup]:
        """The pattern groups of the bound plate, for all wells or those in ``well_filter``."""
        plate = self.plate
        if well_filter is None:
            wells: Sequence[str] = plate.wells
        else:
            requested = (well_filter,) if isinstance(well_filter, str) else tuple(well_filter)
            unknown = [w for w in requested if w not in plate._files_by_well]
            if unknown:
                raise ValueError(
                    f"well(s) {', '.join(map(repr, unknown))} not in the plate; "
                    f"plate wells: {', '.join(plate.wells[:24])}{' ...' if len(plate.wells) > 24 else ''}"
                )
            wanted = set(requested)
            wells = [w for w in plate.wells if w in wanted]  # plate order, whatever order was asked
        groups: list[PatternGroup] = []
        for well in wells:
            groups.extend(group_files(plate._files_by_well[well], variable_components, group_by))
        return groups
