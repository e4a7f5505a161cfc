"""Molecular Devices ImageXpress / MetaXpress plates.

File names, as MetaXpress writes them::

    [<plate>_]<well>[_s<site>][_w<wave>][_thumb][<GUID> | {GUID} | _[GUID] | _<uuid>].tif|TIF

inside optional ``TimePoint_<t>/`` and ``ZStep_<z>/`` folders. There is no
``_s`` when the plate has one site and no ``_w`` when it has one wavelength
(both are then ``"1"``). Some exports put the Z plane in the name (``_z<z>``)
instead of a folder; both are read. ``_thumb`` files are thumbnails, not data.

The ``.HTD`` file at the plate root is a comma-separated list of quoted keys
(``"HTSInfoFile", Version 1.0`` first); ``"WaveName<w>"`` gives channel names.
The HTD has no pixel size; MetaXpress keeps it in each TIFF's MetaSeries
header (``spatial-calibration-x``), which the plate reads from its one header.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from .handler import MicroscopeHandler, PlateMetadata
from .model import ImageFile, well_id

__all__ = ["ImageXpressHandler", "parse_htd"]

_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_NAME = re.compile(
    r"^(?:(?P<prefix>.+?)_)?"
    r"(?P<well>[A-Z]{1,2}\d{1,3})"
    r"(?:_s(?P<site>\d+))?"
    r"(?:_w(?P<channel>\d+))?"
    r"(?:_z(?P<z>\d+))?"
    rf"(?P<suffix>_?[\[{{]?{_GUID}[\]}}]?|_[0-9A-Fa-f]{{32}})?"
    r"(?P<ext>\.(?i:tiff?))$"
)
_TIMEPOINT_DIR = re.compile(r"^TimePoint_(\d+)$", re.IGNORECASE)
_ZSTEP_DIR = re.compile(r"^ZStep_(\d+)$", re.IGNORECASE)


def _num(text: str) -> str:
    return str(int(text))


def parse_htd(text: str) -> dict[str, list[str]]:
    """Parse HTD text into ``{key: [values]}``; raises ``ValueError`` if it is not an HTD file."""
    rows = [row for row in csv.reader(text.splitlines(), skipinitialspace=True) if row]
    if not rows or rows[0][0].strip().lstrip("\ufeff") != "HTSInfoFile":
        raise ValueError('not an HTD file: the first line must start with "HTSInfoFile"')
    return {row[0].strip(): [v.strip() for v in row[1:]] for row in rows}


class ImageXpressHandler(MicroscopeHandler):
    """ImageXpress / MetaXpress: ``A01_s1_w1.tif`` in ``TimePoint_N/`` and ``ZStep_N/`` folders."""

    name = "ImageXpress"
    file_pattern = "A01_s1_w1.tif (optionally in TimePoint_1/ and ZStep_1/ folders, with an .HTD file)"

    def parse_path(self, relpath: str) -> ImageFile | None:
        parts = relpath.replace("\\", "/").split("/")
        filename = parts[-1]
        if "_thumb" in filename.lower():
            return None
        match = _NAME.match(filename)
        if match is None:
            return None
        timepoint = z_index = None
        for folder in parts[:-1]:
            if (m := _TIMEPOINT_DIR.match(folder)) is not None:
                timepoint = _num(m.group(1))
            elif (m := _ZSTEP_DIR.match(folder)) is not None:
                z_index = _num(m.group(1))
        if match.group("z") is not None:
            z_index = _num(match.group("z"))
        return ImageFile(
            path="/".join(parts),
            well=well_id(match.group("well")),
            site=_num(match.group("site") or "1"),
            channel=_num(match.group("channel") or "1"),
            z_index=z_index or "1",
            timepoint=timepoint or "1",
        )

    def format_path(self, components: Mapping[str, str], like: ImageFile) -> str:
        parts = like.path.split("/")
        match = _NAME.match(parts[-1])
        if match is None:
            raise ValueError(f"{like.path!r} is not an ImageXpress image name")
        folders = []
        for folder in parts[:-1]:
            if _TIMEPOINT_DIR.match(folder):
                folder = f"TimePoint_{components['timepoint']}"
            elif _ZSTEP_DIR.match(folder):
                folder = f"ZStep_{components['z_index']}"
            folders.append(folder)
        name = f"{match.group('prefix')}_" if match.group("prefix") else ""
        name += components["well"]
        if match.group("site") is not None:
            name += f"_s{components['site']}"
        if match.group("channel") is not None:
            name += f"_w{components['channel']}"
        if match.group("z") is not None:
            name += f"_z{components['z_index']}"
        # A GUID suffix is unique to each file, so a missing file's name is given without one.
        return "/".join([*folders, name + match.group("ext")])

    def is_metadata_file(self, relpath: str) -> bool:
        return "/" not in relpath and relpath.lower().endswith(".htd")

    def read_metadata(self, root: Path, metadata_files: Sequence[str]) -> PlateMetadata:
        htds = [f for f in metadata_files if self.is_metadata_file(f)]
        if not htds:
            return PlateMetadata()
        raw = (root / htds[0]).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Real HTD files can hold Windows-1252 bytes in "Description".
            text = raw.decode("latin-1")
        try:
            htd = parse_htd(text)
        except ValueError as exc:
            # The HTD only names the channels: without it the images still say everything else.
            warnings.warn(f"{root / htds[0]}: {exc}; its channel names are not used", UserWarning, stacklevel=2)
            return PlateMetadata()
        names = {}
        for key, values in htd.items():
            m = re.fullmatch(r"WaveName(\d+)", key)
            if m and values and values[0]:
                names[_num(m.group(1))] = values[0]
        return PlateMetadata(pixel_size=None, channel_names=dict(sorted(names.items(), key=lambda kv: int(kv[0]))))
