"""The napari reader for plate folders (one image layer per channel) and plateflow output folders.

A plate folder (or its ``.HTD`` / ``Index.idx.xml`` file) opens as one layer
per channel, named from the plate metadata ("DAPI", "FITC", ...; "channel 3"
when unnamed), with a colormap that suits the stain (blue for nuclear stains,
green, magenta, red ...), additive blending and the pixel size as the Y/X
scale in micrometres.

Every image of the plate is in its channel's layer: wells, sites, Z planes and
timepoints are stacked as extra dimensions (those with more than one value;
the axis labels name them), read lazily one image at a time through dask, so
opening a large plate reads one file per channel, for the contrast limits.

A run's output folder (it holds ``plateflow-manifest.json``) opens in its
input plate's frame, so its layers sit on the plate's own: the same well,
site and Z sliders (a Z projection shows at every Z). Label outputs come as
Labels layers; TIFF and OME-Zarr outputs open the same way. The reader claims
nothing else: other folders, OME-Zarr stores included, are left to the other
readers (napari-ome-zarr opens a plateflow store's fields, labels included).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plateflow.plate import HANDLERS, Plate, open_plate

__all__ = ["napari_get_reader", "read_plate", "read_outputs", "plate_layer_data", "channel_colormap", "looks_like_plate"]

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
    """The npe2 reader hook, claiming only what plateflow made or can open, else ``None``.

    A plateflow output folder (or its ``plateflow-manifest.json``) opens with
    :func:`read_outputs`, in its input plate's frame; a plate folder (or its
    ``.HTD`` / ``Index.idx.xml`` file) with :func:`read_plate`. Any other folder
    (an OME-Zarr store, a folder of TIFFs) is left to the other readers.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    outputs = _output_folder(path)
    if outputs is not None:
        return lambda _: read_outputs(outputs)
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
    with quiet_tifffile():  # the plate reads its first image's header for the shape and dtype
        return plate_layer_data(open_plate(folder, allow_ragged=True))


_TIFFFILE_QUIET = threading.Lock()
_tifffile_readers = 0


@contextlib.contextmanager
def quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's logger while we read: a damaged file's log lines would come before our
    own error, which names the file. Readers on several threads share one silencing."""
    global _tifffile_readers
    logger = logging.getLogger("tifffile")
    with _TIFFFILE_QUIET:
        if _tifffile_readers == 0:
            quiet_tifffile.previous_level = logger.level  # type: ignore[attr-defined]
            logger.setLevel(logging.CRITICAL + 1)
        _tifffile_readers += 1
    try:
        yield
    finally:
        with _TIFFFILE_QUIET:
            _tifffile_readers -= 1
            if _tifffile_readers == 0:
                logger.setLevel(quiet_tifffile.previous_level)  # type: ignore[attr-defined]


def _read_image(plate: Plate, relpath: str | None, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    import tifffile

    if relpath is None:  # a hole in a ragged plate
        return np.zeros(shape, dtype=dtype)
    path = plate.path_of(relpath)
    try:
        with quiet_tifffile():
            image = tifffile.imread(path)
    except Exception as error:  # tifffile and its codecs raise many kinds (zlib.error, struct.error ...): name the file
        raise ValueError(f"cannot read the plate image {path}: {error}") from error
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


# -- a run's output folder, in its input plate's frame -----------------------------

MANIFEST_NAME = "plateflow-manifest.json"


def _output_folder(path: str | os.PathLike[str]) -> Path | None:
    """The run output folder at ``path`` (the folder, or its manifest file), else ``None``."""
    candidate = Path(path)
    if candidate.is_file() and candidate.name == MANIFEST_NAME:
        return candidate.parent
    if candidate.is_dir() and (candidate / MANIFEST_NAME).is_file():
        return candidate
    return None


def _is_label_dtype(dtype: np.dtype) -> bool:
    # As the zarr store decides: signed integers and 32/64-bit unsigned integers are label images.
    dtype = np.dtype(dtype)
    return dtype.kind in "bi" or (dtype.kind == "u" and dtype.itemsize >= 4)


def read_outputs(path: str | os.PathLike[str]) -> list[tuple]:
    """Layer data for a plateflow run's output folder, placed in its input plate's frame.

    The outputs sit on the plate's own layers: the same well/site/Z sliders
    (a Z projection shows at every Z). Label outputs (integer label images)
    come as Labels layers. TIFF outputs and OME-Zarr outputs (the
    ``<plate>.zarr`` store of a ``--format zarr`` run) both open this way.
    """
    folder = _output_folder(path)
    if folder is None:
        raise ValueError(f"{os.fspath(path)} is not a plateflow output folder (it has no {MANIFEST_NAME})")
    with quiet_tifffile():
        return _read_outputs(folder)


def _read_outputs(folder: Path) -> list[tuple]:
    from ._frame import PlateFrame

    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    plate_root = Path(str(manifest.get("plate", "")))
    if not plate_root.is_dir():
        raise ValueError(f"the input plate {plate_root} of {folder} is not there any more; its frame (wells, sites, Z) is needed to place the outputs")
    plate = open_plate(plate_root, allow_ragged=True)
    frame = PlateFrame.from_plate(plate)
    names = dict(plate.channel_names)
    order = list(plate.components["channel"])
    stores = sorted(folder.glob("*.zarr"))
    if manifest.get("output_format") == "zarr" and stores:
        return _zarr_output_layers(stores[0], frame, names, order)
    return _tiff_output_layers(folder, frame, names, order)


def _tiff_output_layers(folder: Path, frame: Any, names: Mapping[str, str], order: Sequence[str]) -> list[tuple]:
    from ._frame import frame_layer_data

    outputs = open_plate(folder, allow_ragged=True)
    layers = []
    for data, options in frame_layer_data(outputs, frame, channel_names=names, channel_order=order):
        if _is_label_dtype(data.dtype):
            kept = {k: v for k, v in options.items() if k in ("scale", "translate", "axis_labels", "units", "metadata")}
            layers.append((data, {**kept, "name": f"{options['name']} labels"}, "labels"))
        else:
            sample = np.asarray(data[(0,) * (data.ndim - 2)])
            layers.append((data, {**options, "blending": "additive", "contrast_limits": _contrast_limits(sample)}, "image"))
    return layers


def _zarr_output_layers(store: Path, frame: Any, names: Mapping[str, str], order: Sequence[str]) -> list[tuple]:
    """One layer per image channel and per label image of the store, in ``frame``."""
    import dask.array as da
    import zarr

    from plateflow.vfs import FileManager

    backend = FileManager().backend("zarr")
    plate_layout = backend.layout(store)  # type: ignore[attr-defined]
    wells = {}
    for well in plate_layout.wells:
        try:
            wells[well] = (backend.well_layout(store, well), backend.well_labels(store, well))  # type: ignore[attr-defined]
        except FileNotFoundError:
            continue  # a well the run did not write
    if not wells:
        raise ValueError(f"{store} holds no well yet: the run wrote no outputs")
    image_channels = [c for c in plate_layout.channels if any(c in layout.channels for layout, _ in wells.values())]
    label_channels = [c for c in plate_layout.channels if any(c in labels for _, labels in wells.values())]
    axes = frame.axes
    axis_values = [frame.values[c] for c in axes]
    any_layout = next(iter(wells.values()))[0]
    shape_yx = tuple(any_layout.image_shape)

    def read_plane(well: str, site: str, z: str, t: str, channel: str, labels: bool) -> np.ndarray | None:
        if well not in wells or site not in plate_layout.sites:
            return None
        layout, label_names = wells[well]
        if labels and channel not in label_names or not labels and channel not in layout.channels:
            return None
        z_values = layout.z_indices
        z_at = z_values.index(z) if z in z_values else (0 if len(z_values) == 1 else None)  # a projection shows at every Z
        if z_at is None:
            return None
        r = well.rstrip("0123456789")
        base = f"{store}/{r}/{int(well[len(r):])}/{plate_layout.sites.index(site)}"
        if labels:
            return np.asarray(zarr.open_array(f"{base}/labels/{label_names[channel]}/0", mode="r")[plate_layout.timepoints.index(t), 0, z_at])
        return np.asarray(zarr.open_array(f"{base}/0", mode="r")[plate_layout.timepoints.index(t), layout.channels.index(channel), z_at])

    def layer(channel: str, labels: bool, dtype: np.dtype) -> Any:
        def read_block(block_info: dict | None = None) -> np.ndarray:
            location = block_info[None]["chunk-location"] if block_info else (0,) * len(axes)
            position = {c: v[i] for c, v, i in zip(axes, axis_values, location[: len(axes)])}
            well = position.get("well", frame.values["well"][0])
            plane = read_plane(well, position.get("site", frame.values["site"][0]), position.get("z_index", frame.values["z_index"][0]),
                               position.get("timepoint", frame.values["timepoint"][0]), channel, labels)
            plane = np.zeros(shape_yx, dtype) if plane is None or plane.shape != shape_yx else plane.astype(dtype, copy=False)
            return plane.reshape((1,) * len(axes) + shape_yx)

        chunks = tuple((1,) * len(v) for v in axis_values) + tuple((n,) for n in shape_yx)
        return da.map_blocks(read_block, dtype=dtype, chunks=chunks, meta=np.empty((0,) * len(chunks), dtype=dtype))

    common: dict[str, Any] = {"scale": frame.scale(), "axis_labels": frame.axis_labels, "metadata": {"plateflow_outputs": str(store)}}
    if frame.pixel_size:
        common["units"] = ("pixel",) * len(axes) + ("micrometer", "micrometer")
    layers: list[tuple] = []
    for channel in image_channels:
        name = names.get(channel) or f"channel {channel}"
        dtype = np.dtype(next(layout.dtype for layout, _ in wells.values() if channel in layout.channels))
        well, (layout, _) = next((w, v) for w, v in wells.items() if channel in v[0].channels)
        field = json.loads((store / well.rstrip("0123456789") / str(int(well[len(well.rstrip('0123456789')):])) / "0" / "zarr.json").read_text())
        window = field["attributes"]["ome"]["omero"]["channels"][layout.channels.index(channel)]["window"]
        position = order.index(channel) if channel in order else len(order)
        options = {**common, "name": f"{name} (outputs)", "colormap": channel_colormap(name, position), "blending": "additive",
                   "contrast_limits": (float(window["start"]), float(window["end"]))}
        layers.append((layer(channel, False, dtype), options, "image"))
    for channel in label_channels:
        name = names.get(channel) or f"channel {channel}"
        dtype = np.dtype(json.loads((store / _first_labels_field(wells, channel) / "zarr.json").read_text())["data_type"])
        layers.append((layer(channel, True, dtype), {**common, "name": f"{name} labels"}, "labels"))
    return layers


def _first_labels_field(wells: Mapping[str, Any], channel: str) -> str:
    for well, (_, labels) in wells.items():
        if channel in labels:
            r = well.rstrip("0123456789")
            return f"{r}/{int(well[len(r):])}/0/labels/{labels[channel]}/0"
    raise KeyError(channel)
