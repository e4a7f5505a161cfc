"""Open a plate folder: detect its format and index every image once.

``open_plate(path)`` walks the folder once (``os.scandir``, recursively), asks
each known handler how many of the names it understands, keeps the best, and
builds a :class:`Plate`: the files by well, the sorted values of every
component, and what is missing or ignored. The image shape, dtype and pixel
size come from one file's TIFF header, read on first use.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from .._frozen import FrozenDict
from .errors import PlateFormatError, RaggedPlateError
from .handler import MicroscopeHandler, PlateMetadata
from .imagexpress import ImageXpressHandler
from .model import COMPONENTS, ImageFile, natural_key, natural_sorted
from .opera_phenix import OperaPhenixHandler

__all__ = ["Plate", "open_plate", "HANDLERS", "scan_files"]

#: Known formats, tried in this order when several understand the same number of names.
HANDLERS: dict[str, type[MicroscopeHandler]] = {
    ImageXpressHandler.name: ImageXpressHandler,
    OperaPhenixHandler.name: OperaPhenixHandler,
}

_SAMPLE_NAMES = 8
_MISSING_SHOWN = 20


def scan_files(root: Path) -> list[str]:
    """Every file under ``root`` as a POSIX path relative to it, in one recursive walk.

    Folder symlinks are followed once; a link back to a folder already seen is skipped.
    """
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        folder, prefix = stack.pop()
        st = os.stat(folder)  # a folder that cannot be read fails the scan, naming it, as scandir would
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir():
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file():
                    found.append(rel)
    return found


@dataclass(frozen=True, eq=False)
class Plate:
    """An indexed plate.

    Attributes:
        root: the plate folder, as given (absolute).
        wells: well ids (``"A01"``), naturally sorted.
        components: for each component, its values in the plate, naturally sorted.
        microscope_handler: the format's handler, bound to this plate.
        files: every image, sorted by well, site, channel, z_index, timepoint.
        format_name: the handler's name (``"ImageXpress"``, ``"OperaPhenix"``).
        ignored_files: files that are not images of the format (thumbnails, tables, stray files).
        metadata_files: the format's metadata files found (``.HTD``, ``Index.idx.xml``).
        missing_files: images of the full grid that are absent (only with ``allow_ragged=True``).
    """

    root: Path
    wells: tuple[str, ...]
    components: Mapping[str, tuple[str, ...]]
    microscope_handler: MicroscopeHandler
    files: tuple[ImageFile, ...]
    format_name: str
    ignored_files: tuple[str, ...] = ()
    metadata_files: tuple[str, ...] = ()
    missing_files: tuple[str, ...] = ()
    _files_by_well: Mapping[str, tuple[ImageFile, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_well: dict[str, list[ImageFile]] = {}
        for f in self.files:
            by_well.setdefault(f.well, []).append(f)
        object.__setattr__(self, "_files_by_well", FrozenDict({w: tuple(fs) for w, fs in by_well.items()}))

    def __repr__(self) -> str:
        return (
            f"Plate({str(self.root)!r}, format={self.format_name!r}, wells={len(self.wells)}, "
            f"files={len(self.files)}, components={{{', '.join(f'{k}: {len(v)}' for k, v in self.components.items())}}})"
        )

    def files_for_well(self, well: str) -> tuple[ImageFile, ...]:
        """The images of one well, in plate order."""
        try:
            return self._files_by_well[well]
        except KeyError:
            raise ValueError(f"well {well!r} is not in the plate; plate wells: {', '.join(self.wells[:24])}"
                             f"{' ...' if len(self.wells) > 24 else ''}") from None

    def subset(self, **values: str | Iterable[str]) -> "Plate":
        """A view of this plate restricted to some component values, e.g. ``subset(well="A01", site="2")``.

        The view shares the index (no rescan) and the folder; its ``components``
        list only what remains. Useful to tune on one site or to run a few wells.
        """
        wanted: dict[str, set[str]] = {}
        for name, value in values.items():
            if name not in COMPONENTS:
                raise ValueError(f"{name!r} is not a plate component; components are: {', '.join(COMPONENTS)}")
            chosen = {value} if isinstance(value, str) else {str(v) for v in value}
            unknown = sorted(chosen - set(self.components[name]), key=natural_key)
            if unknown:
                raise ValueError(f"{name} {', '.join(unknown)} not in the plate; values: {', '.join(self.components[name])}")
            wanted[name] = chosen
        def selected(image: ImageFile | None) -> bool:
            return image is not None and all(getattr(image, n) in allowed for n, allowed in wanted.items())

        files = tuple(f for f in self.files if selected(f))
        present = {n: {getattr(f, n) for f in files} for n in COMPONENTS}
        components = {n: tuple(v for v in self.components[n] if v in present[n]) for n in COMPONENTS}
        handler = type(self.microscope_handler)()
        # A missing file is absent from ``files`` by definition: select it by its own components.
        missing = tuple(p for p in self.missing_files if selected(handler.parse_path(p)))
        view = replace(
            self,
            wells=components["well"],
            components=FrozenDict(components),
            microscope_handler=handler,
            files=files,
            missing_files=missing,
        )
        # Metadata and header do not change with the selection: share what was read.
        for cached in ("_header", "_metadata"):
            if cached in self.__dict__:
                view.__dict__[cached] = self.__dict__[cached]
        handler.bind(view)
        return view

    def path_of(self, image: ImageFile | str) -> Path:
        """Absolute path of an image (an ``ImageFile`` or a relative path)."""
        return self.root / (image.path if isinstance(image, ImageFile) else image)

    @cached_property
    def _header(self) -> tuple[tuple[int, int], np.dtype, float | None]:
        # One damaged image must not stop the whole plate (its own well fails when it is read),
        # so fall back to the first image of the next well.
        firsts = [files[0] for files in self._files_by_well.values() if files]
        first_error: PlateFormatError | None = None
        for image in firsts:
            try:
                return _read_header(self.path_of(image))
            except PlateFormatError as error:
                first_error = first_error or error
        if first_error is None:
            raise PlateFormatError(f"the plate in {self.root} has no images to read a header from")
        raise PlateFormatError(f"{first_error} (and the first image of every other well could not be read either)")

    @cached_property
    def _metadata(self) -> PlateMetadata:
        return self.microscope_handler.read_metadata(self.root, self.metadata_files)

    @property
    def image_shape(self) -> tuple[int, int]:
        """(Y, X) of one image, from the first image's TIFF header."""
        return self._header[0]

    @property
    def dtype(self) -> np.dtype:
        """Pixel dtype, from the first image's TIFF header."""
        return self._header[1]

    @property
    def pixel_size(self) -> float | None:
        """Micrometres per pixel, from the format's metadata or the TIFF header; ``None`` if neither says."""
        meta = self._metadata.pixel_size
        return meta if meta is not None else self._header[2]

    @property
    def channel_names(self) -> Mapping[str, str]:
        """Channel value -> name, where the metadata names them."""
        return FrozenDict(self._metadata.channel_names)


def _read_header(path: Path) -> tuple[tuple[int, int], np.dtype, float | None]:
    import tifffile

    try:
        if path.stat().st_size == 0:
            raise PlateFormatError(f"cannot read the image header of {path}: the file is empty (0 bytes)")
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            shape = page.shape
            dtype = np.dtype(page.dtype)
            pixel_size = None
            if tif.is_metaseries:
                info = (tif.metaseries_metadata or {}).get("PlaneInfo", {})
                units = str(info.get("spatial-calibration-units", "")).lower()
                if units in ("um", "µm", "micron", "microns") and info.get("spatial-calibration-x"):
                    pixel_size = float(info["spatial-calibration-x"])
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
        if isinstance(exc, PlateFormatError):
            raise
        raise PlateFormatError(f"cannot read the image header of {path}: {exc}") from exc
    # RGB pages are (Y, X, S); grey pages are (Y, X).
    yx = shape[:2] if len(shape) == 3 and shape[-1] in (3, 4) else shape[-2:]
    return (int(yx[0]), int(yx[1])), dtype, pixel_size


def _detect(relpaths: list[str]) -> tuple[MicroscopeHandler, list[ImageFile]]:
    best: tuple[int, int, int] | None = None
    chosen: tuple[MicroscopeHandler, list[ImageFile]] | None = None
    for order, cls in enumerate(HANDLERS.values()):
        handler = cls()
        parsed = handler.parse_paths(relpaths)
        has_meta = any(handler.is_metadata_file(p) for p in relpaths)
        score = (len(parsed), int(has_meta), -order)
        if parsed and (best is None or score > best):
            best, chosen = score, (handler, parsed)
    if chosen is None:
        raise PlateFormatError(_no_format_message(relpaths))
    return chosen


def _no_format_message(relpaths: list[str]) -> str:
    looked = "; ".join(f"{cls.name}: {cls.file_pattern}" for cls in HANDLERS.values())
    if not relpaths:
        return f"no files found; looked for these plate formats: {looked}"
    sample = natural_sorted(relpaths)[:_SAMPLE_NAMES]
    more = f" (and {len(relpaths) - len(sample)} more)" if len(relpaths) > len(sample) else ""
    return (
        f"no image matches a known plate format; looked for: {looked}. "
        f"Files found: {', '.join(sample)}{more}"
    )


def _find_missing(handler: MicroscopeHandler, files: list[ImageFile], components: Mapping[str, tuple[str, ...]]) -> list[str]:
    by_well: dict[str, set[tuple[str, ...]]] = {}
    like: dict[str, ImageFile] = {}
    for f in files:
        by_well.setdefault(f.well, set()).add((f.site, f.channel, f.z_index, f.timepoint))
        like.setdefault(f.well, f)
    grid = list(itertools.product(*(components[c] for c in COMPONENTS[1:])))
    missing = []
    for well, present in by_well.items():
        if len(present) == len(grid):
            continue
        for key in grid:
            if key not in present:
                values = dict(zip(COMPONENTS, (well, *key)))
                missing.append(handler.format_path(values, like[well]))
    return natural_sorted(missing)


def as_plate(plate: "Plate | str | os.PathLike[str]") -> Plate:
    """``plate`` itself when it is already an opened plate, else ``open_plate(plate)``.

    Every API that takes "a Plate or a plate folder" goes through here.
    """
    if isinstance(plate, (str, os.PathLike)) or not hasattr(plate, "microscope_handler"):
        return open_plate(plate)  # type: ignore[arg-type]  # not a plate: open_plate names what is wrong with it
    return plate  # a Plate, or a duck-typed stand-in for one


def open_plate(
    path: str | os.PathLike[str],
    *,
    microscope: str | None = None,
    allow_ragged: bool = False,
) -> Plate:
    """Detect a plate folder's format and index its images, once.

    Args:
        path: the plate folder (a symlink to one works).
        microscope: force a format (``"ImageXpress"``, ``"OperaPhenix"``) instead of detecting it.
        allow_ragged: open a plate whose (site, channel, z_index, timepoint) grid has holes;
            the holes are listed in ``plate.missing_files``. Otherwise they raise ``RaggedPlateError``.

    Raises:
        FileNotFoundError / NotADirectoryError: ``path`` is not a folder.
        PlateFormatError: no known format matches (the message lists the formats and a
            sample of the names found), or two files claim the same image.
        RaggedPlateError: images are missing (``error.missing`` lists them).
    """
    if microscope is not None and microscope not in HANDLERS:
        raise ValueError(f"microscope={microscope!r} is not valid; choose one of: {', '.join(HANDLERS)}")
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if not root.exists():
        raise FileNotFoundError(f"plate folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a plate folder (it is a file): {root}")

    relpaths = scan_files(root)
    if microscope is None:
        handler, parsed = _detect(relpaths)
    else:
        handler = HANDLERS[microscope]()
        parsed = handler.parse_paths(relpaths)
        if not parsed:
            raise PlateFormatError(f"no {microscope} images in {root}; expected names like {handler.file_pattern}. "
                                   + _no_format_message(relpaths).split(". ", 1)[-1])

    image_paths = {f.path for f in parsed}
    metadata_files = tuple(natural_sorted(p for p in relpaths if p not in image_paths and handler.is_metadata_file(p)))
    meta_set = set(metadata_files)
    ignored = tuple(natural_sorted(p for p in relpaths if p not in image_paths and p not in meta_set))

    files = sorted(parsed, key=ImageFile.sort_key)
    duplicates = [
        (a.path, b.path) for a, b in zip(files, files[1:])
        if (a.well, a.site, a.channel, a.z_index, a.timepoint) == (b.well, b.site, b.channel, b.z_index, b.timepoint)
    ]
    if duplicates:
        shown = "; ".join(f"{a} and {b}" for a, b in duplicates[:10])
        raise PlateFormatError(f"{len(duplicates)} image(s) are present twice in {root} (same well, site, channel, "
                               f"z_index and timepoint): {shown}")

    components = {name: tuple(sorted({getattr(f, name) for f in files}, key=natural_key)) for name in COMPONENTS}
    missing = _find_missing(handler, files, components)
    if missing and not allow_ragged:
        shown = ", ".join(missing[:_MISSING_SHOWN])
        more = f" (and {len(missing) - _MISSING_SHOWN} more)" if len(missing) > _MISSING_SHOWN else ""
        raise RaggedPlateError(
            f"the plate in {root} is ragged: {len(missing)} image(s) of its site x channel x z_index x timepoint "
            f"grid are missing: {shown}{more}. Pass allow_ragged=True to open it anyway.",
            missing,
        )

    plate = Plate(
        root=root,
        wells=components["well"],
        components=FrozenDict(components),
        microscope_handler=handler,
        files=tuple(files),
        format_name=handler.name,
        ignored_files=ignored,
        metadata_files=metadata_files,
        missing_files=tuple(missing),
    )
    handler.bind(plate)
    return plate

