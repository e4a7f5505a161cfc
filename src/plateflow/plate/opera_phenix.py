"""PerkinElmer / Revvity Opera Phenix and Operetta plates (Harmony export).

File names::

    r<row>c<col>f<field>p<plane>-ch<channel>sk<timepoint>fk<n>fl<n>.tiff

usually in an ``Images/`` folder next to ``Index.idx.xml`` (Harmony 4.9+) or
``Index.xml`` (older exports). Rows and columns are 1-based numbers, so
``r01c01`` is well ``A01``; ``f`` is the field (site), ``p`` the Z plane,
``sk`` the timepoint. The index XML lists per channel (in ``<Maps><Map><Entry
ChannelID=..>`` and/or on each ``<Image>``) a ``ChannelName`` and an
``ImageResolutionX`` in metres.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from .handler import MicroscopeHandler, PlateMetadata
from .model import ImageFile, well_id, well_position

__all__ = ["OperaPhenixHandler", "parse_phenix_index"]

_NAME = re.compile(
    r"^r(?P<row>\d{1,3})c(?P<col>\d{1,3})f(?P<field>\d+)p(?P<plane>\d+)"
    r"-ch(?P<channel>\d+)sk(?P<sk>\d+)fk(?P<fk>\d+)fl(?P<fl>\d+)\.tiff?$",
    re.IGNORECASE,
)
_INDEX_NAMES = ("index.idx.xml", "index.xml")
_UNITS_TO_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "nm": 1e-3}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_phenix_index(path: Path) -> PlateMetadata:
    """Channel names and pixel size (micrometres) from a Harmony ``Index.idx.xml`` / ``Index.xml``."""
    names: dict[str, str] = {}
    pixel_size = None
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not a readable Harmony index XML ({exc})") from None
    for element in tree.getroot().iter():
        children = {_local(child.tag): child for child in element}
        channel = element.get("ChannelID")
        if channel is None and "ChannelID" in children:
            channel = (children["ChannelID"].text or "").strip()
        if not channel or not channel.isdigit():
            continue
        name_el = children.get("ChannelName")
        name_text = (name_el.text or "").strip() if name_el is not None else ""
        if name_text:
            names.setdefault(str(int(channel)), name_text)
        res_el = children.get("ImageResolutionX")
        res_text = (res_el.text or "").strip() if res_el is not None else ""
        if pixel_size is None and res_el is not None and res_text:
            factor = _UNITS_TO_UM.get(res_el.get("Unit", "m"), None)
            if factor is not None:
                try:
                    pixel_size = float(res_text) * factor
                except ValueError:
                    raise ValueError(f"{path}: ImageResolutionX is {res_text!r}, not a number (the pixel size in "
                                     f"{res_el.get('Unit', 'm')})") from None
    return PlateMetadata(pixel_size=pixel_size, channel_names=dict(sorted(names.items(), key=lambda kv: int(kv[0]))))


class OperaPhenixHandler(MicroscopeHandler):
    """Opera Phenix / Operetta: ``Images/r01c01f01p01-ch1sk1fk1fl1.tiff`` with ``Index.idx.xml``."""

    name = "OperaPhenix"
    file_pattern = "r01c01f01p01-ch1sk1fk1fl1.tiff (in Images/, with Index.idx.xml or Index.xml)"

    def parse_path(self, relpath: str) -> ImageFile | None:
        relpath = relpath.replace("\\", "/")
        match = _NAME.match(relpath.rsplit("/", 1)[-1])
        if match is None:
            return None
        return ImageFile(
            path=relpath,
            well=well_id(int(match.group("row")), int(match.group("col"))),
            site=str(int(match.group("field"))),
            channel=str(int(match.group("channel"))),
            z_index=str(int(match.group("plane"))),
            timepoint=str(int(match.group("sk"))),
        )

    def format_path(self, components: Mapping[str, str], like: ImageFile) -> str:
        folder, _, filename = like.path.rpartition("/")
        match = _NAME.match(filename)
        if match is None:
            raise ValueError(f"{like.path!r} is not an Opera Phenix image name")
        row, col = well_position(components["well"])
        name = (
            f"r{row:02d}c{col:02d}f{int(components['site']):02d}p{int(components['z_index']):02d}"
            f"-ch{components['channel']}sk{components['timepoint']}fk{match.group('fk')}fl{match.group('fl')}"
            f"{filename[match.end('fl'):]}"
        )
        return f"{folder}/{name}" if folder else name

    def is_metadata_file(self, relpath: str) -> bool:
        parts = relpath.split("/")
        return parts[-1].lower() in _INDEX_NAMES and len(parts) <= 2

    def read_metadata(self, root: Path, metadata_files: Sequence[str]) -> PlateMetadata:
        found = [f for f in metadata_files if self.is_metadata_file(f)]
        if not found:
            return PlateMetadata()
        # Index.idx.xml is the newer, fuller index; prefer it, and the shallowest copy.
        found.sort(key=lambda f: (f.count("/"), f.rsplit("/", 1)[-1].lower() != "index.idx.xml"))
        return parse_phenix_index(root / found[0])
