"""The napari reader for plate folders: one image layer per channel.

A plate folder (or its ``.HTD`` / ``Index.idx.xml`` file) opens as one layer
per channel, named from the plate metadata ("DAPI", "FITC", ...; "channel 3"
when unnamed), with a colormap that suits the stain (blue for nuclear stains,
green, magenta, red ...), additive blending and the pixel size as the Y/X
scale in micrometres.

Every image of the plate is in its channel's layer: wells, sites, Z planes and
timepoints are stacked as extra dimensions (those with more than one value;
the axis labels name them), read lazily one image at a time through dask, so
opening a large plate reads one file per channel, for the contrast limits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plateflow.plate import HANDLERS, Plate, open_plate

__all__ = ["napari_get_reader", "read_plate", "plate_layer_data", "channel_colormap", "looks_like_plate"]

#: The components stacked as extra dimensions, outermost first (those with one value are left out).
STACKED_COMPONENTS: tuple[str, ...] = ("timepoint", "well", "site", "z_index")

# Stain names (lower case, spaces and dashes removed) -> colormap, checked in this order.
_STAIN_COLORMAPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("dapi", "hoechst", "nuclei", "nuclear", "draq5", "405"), "blue"),
    (("fitc", "gfp", "egfp", "alexa488", "af488", "488", "calcein"), "green"),
    (("texasred", "mcherry", "rfp", "tritc", "cy3", "alexa555", "alexa568", "alexa594", "555", "561", "568", "594", "phalloidin"), "magenta"),
    (("cy5", "alexa647", "af647", "640", "647"), "red"),
)
#: Colormaps for channels whose name says nothing, by channel order.
_ORDER_COLORMAPS: tuple[str, ...] = ("blue", "green", "magenta", "red", "yellow", "cyan", "gray")

_SCAN_DEPTH = 2
_SCAN_ENTRIES = 400


def channel_colormap(name: str, position: int) -> str:
    """A napari colormap name for a channel called ``name``, the ``position``-th (0-based) channel."""
    flat = name.lower().replace(" ", "").replace("-", "").replace("_", "")
    for stains, colormap in _STAIN_COLORMAPS:
        if any(stain in flat for stain in stains):
            return colormap
    return _ORDER_COLORMAPS[position % len(_ORDER_COLORMAPS)]


def looks_like_plate(path: str | os.PathLike[str]) -> bool:
    """A quick look (no full scan): a plate metadata file or a plate image within two folder levels."""
    root = Path(path)
    if not root.is_dir():
        return False
    handlers = [handler() for handler in HANDLERS.values()]
    pending: list[tuple[Path, str, int]] = [(root, "", 0)]
    seen = 0
    while pending:
        folder, prefix, depth = pending.pop(0)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > _SCAN_ENTRIES:
                return False
            relpath = prefix + entry.name
            if entry.is_dir():
                if depth + 1 <= _SCAN_DEPTH:
                    pending.append((Path(entry.path), relpath + "/", depth + 1))
                continue
            if any(h.is_metadata_file(relpath) or h.parse_path(relpath) is not None for h in handlers):
                return True
    return False


def _plate_folder(path: str | os.PathLike[str]) -> Path | None:
    candidate = Path(path)
    if candidate.is_file() and candidate.suffix.lower() in (".htd", ".xml"):
        # The metadata file of a plate: open its folder (an Opera index may sit in Images/).
        for folder in (candidate.parent, candidate.parent.parent):
            if looks_like_plate(folder):
                return folder
        return None
    return candidate if looks_like_plate(candidate) else None


def napari_get_reader(path: str | Sequence[str]) -> Callable[[Any], list[tuple]] | None:
    """The npe2 reader hook: ``read_plate`` for a plate folder (or its metadata file), else ``None``."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    folder = _plate_folder(path)
    if folder is None:
        return None

    def read(_: Any) -> list[tuple]:
        return read_plate(folder)

    return read


def read_plate(path: str | os.PathLike[str] | Sequence[str]) -> list[tuple]:
    """Layer data (one image layer per channel) for the plate folder at ``path``."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    folder = _plate_folder(path) or Path(path)
    return plate_layer_data(open_plate(folder, allow_ragged=True))


def _read_image(plate: Plate, relpath: str | None, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    import tifffile

    if relpath is None:  # a hole in a ragged plate
        return np.zeros(shape, dtype=dtype)
    image = tifffile.imread(plate.path_of(relpath))
    return np.asarray(image, dtype=dtype).reshape(shape)


def _contrast_limits(image: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(image, (0.1, 99.9))
    if high <= low:
        high = low + 1
    return float(low), float(high)


def plate_layer_data(
    plate: Plate,
    *,
    channel_names: Mapping[str, str] | None = None,
    channel_order: Sequence[str] | None = None,
    pixel_size: float | None = None,
) -> list[tuple]:
    """``(data, kwargs, "image")`` per channel of an opened plate; see the module doc for the layout.

    ``channel_names``, ``channel_order`` (for the colormaps) and ``pixel_size``
    replace what ``plate`` says, e.g. to show a run's output folder (which has
    no metadata file) with the input plate's names and scale.
    """
    import dask.array as da

    components = plate.components
    stacked = [c for c in STACKED_COMPONENTS if len(components[c]) > 1]
    shape_yx = tuple(plate.image_shape)
    dtype = np.dtype(plate.dtype)
    if pixel_size is None:
        pixel_size = plate.pixel_size
    names = dict(plate.channel_names) if channel_names is None else dict(channel_names)
    order = list(components["channel"]) if channel_order is None else list(channel_order)
    by_key = {(f.channel, *(getattr(f, c) for c in stacked)): f.path for f in plate.files}
    first = {c: components[c][0] for c in STACKED_COMPONENTS}
    layers = []
    for channel in components["channel"]:
        position = order.index(channel) if channel in order else len(order)
        values = [components[c] for c in stacked]

        def read_block(block_info: dict | None = None, *, _channel: str = channel, _values: list = values) -> np.ndarray:
            location = block_info[None]["chunk-location"]
            key = (_channel, *(v[i] for v, i in zip(_values, location[: len(_values)])))
            image = _read_image(plate, by_key.get(key), shape_yx, dtype)
            return image.reshape((1,) * len(_values) + shape_yx)

        chunks = tuple((1,) * len(v) for v in values) + tuple((n,) for n in shape_yx)
        data = da.map_blocks(read_block, dtype=dtype, chunks=chunks, meta=np.empty((0,) * len(chunks), dtype=dtype))
        sample_key = (channel, *(first[c] for c in stacked))
        sample = _read_image(plate, by_key.get(sample_key), shape_yx, dtype)
        name = names.get(channel) or f"channel {channel}"
        scale_yx = (pixel_size, pixel_size) if pixel_size else (1.0, 1.0)
        kwargs: dict[str, Any] = {
            "name": name,
            "colormap": channel_colormap(name, position),
            "blending": "additive",
            "contrast_limits": _contrast_limits(sample),
            "scale": (1.0,) * len(stacked) + scale_yx,
            "axis_labels": (*stacked, "y", "x"),
            "metadata": {
                "plateflow_plate": str(plate.root),
                "plateflow_channel": channel,
                "plateflow_axes": {c: list(components[c]) for c in stacked},
            },
        }
        if pixel_size:
            kwargs["units"] = ("pixel",) * len(stacked) + ("micrometer", "micrometer")
        layers.append((data, kwargs, "image"))
    return layers
