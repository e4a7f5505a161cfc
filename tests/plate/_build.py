"""Small synthetic plate folders for format tests (tiny TIFFs, or empty placeholders)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile


def write_tiff(path: Path, value: int = 0, shape: tuple[int, int] = (8, 10), dtype: str = "uint16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full(shape, value, dtype=dtype), photometric="minisblack")


def make_files(root: Path, relpaths: Iterable[str], *, tiff: bool = True) -> list[str]:
    """Create each file: a tiny TIFF whose pixels hold its index, or an empty placeholder."""
    created = []
    for i, rel in enumerate(relpaths):
        path = root / rel
        if tiff and rel.lower().endswith((".tif", ".tiff")):
            write_tiff(path, value=i)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        created.append(rel)
    return created


HTD = """"HTSInfoFile", Version 1.0\r
"Description", "test plate"\r
"TimePoints", 1\r
"ZSeries", FALSE\r
"XWells", 12\r
"YWells", 8\r
"Sites", TRUE\r
"XSites", 2\r
"YSites", 1\r
"Waves", TRUE\r
"NWavelengths", 2\r
"WaveName1", "DAPI"\r
"WaveCollect1", 1\r
"WaveName2", "FITC"\r
"WaveCollect2", 1\r
"EndFile"\r
"""


def imagexpress_names(wells=("A01", "B02"), sites=(1, 2), channels=(1, 2), zs=None, timepoints=None) -> list[str]:
    names = []
    for t in timepoints or [None]:
        for z in zs or [None]:
            folder = ""
            if t is not None:
                folder += f"TimePoint_{t}/"
            if z is not None:
                folder += f"ZStep_{z}/"
            for well in wells:
                for s in sites:
                    for c in channels:
                        names.append(f"{folder}{well}_s{s}_w{c}.tif")
    return names


def phenix_index_xml(channel_names: dict[int, str], resolution_m: float, *, maps: bool = True, per_image: bool = False,
                     images: Iterable[str] = ()) -> str:
    """A Harmony-style index: channel entries under Maps and/or on each Image, in the HarmonyV5 namespace."""
    entries = "".join(
        f'<Entry ChannelID="{ch}"><ChannelName>{name}</ChannelName><ImageType>Signal</ImageType>'
        f'<ImageResolutionX Unit="m">{resolution_m!r}</ImageResolutionX>'
        f'<ImageResolutionY Unit="m">{resolution_m!r}</ImageResolutionY><ImageSizeX>10</ImageSizeX>'
        f'<ImageSizeY>8</ImageSizeY></Entry>'
        for ch, name in channel_names.items()
    )
    image_xml = ""
    for url in images:
        ch = int(url.split("-ch")[1].split("sk")[0])
        extra = (
            f'<ChannelName>{channel_names[ch]}</ChannelName>'
            f'<ImageResolutionX Unit="m">{resolution_m!r}</ImageResolutionX>'
            if per_image else ""
        )
        image_xml += (
            f'<Image Version="1"><id>{url}</id><State>Ok</State><URL>{url}</URL><Row>1</Row><Col>1</Col>'
            f'<FieldID>1</FieldID><PlaneID>1</PlaneID><TimepointID>0</TimepointID><ChannelID>{ch}</ChannelID>{extra}</Image>'
        )
    maps_xml = f"<Maps><Map>{entries}</Map></Maps>" if maps else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<EvaluationInputData Version="1" xmlns="http://www.perkinelmer.com/PEHH/HarmonyV5">'
        "<User>someone</User><InstrumentType>Phenix</InstrumentType>"
        "<Plates><Plate><PlateID>P1</PlateID><Name>P1</Name><PlateRows>16</PlateRows><PlateColumns>24</PlateColumns></Plate></Plates>"
        f"{maps_xml}<Images>{image_xml}</Images></EvaluationInputData>"
    )
