"""The zarr backend: one OME-Zarr HCS plate store (NGFF 0.5, zarr format 3).

Layout of a store::

    <name>.zarr/                 plate metadata ("ome": {"plate": ...}), plateflow layout
      <row>/<column>/            one group per well ("A/1" is well A01), "ome": {"well": ...}
        <field>/                 one image per site (field 0 is the layout's first site)
          0                      the (t, c, z, y, x) array of the image channels; one chunk per plane
          labels/                NGFF labels: "ome": {"labels": ["DAPI", ...]}
            <name>/0             one (t, 1, z, y, x) label image per labelled channel

Image channels and label images hold only what the pipeline wrote: a channel
whose planes are labels (integer label images, masks) becomes a label image
under each field, named after the channel, and is not an image channel. Each
image channel gets a colour from its name (DAPI blue, FITC green, ...) and a
display window from the data, so a viewer opens it with sensible contrast.

A store is made in two parts, so that no two processes ever write the same
metadata file except the plate's list of wells, which is updated under a file
lock and rewritten atomically:

1. ``create_plate_metadata(store_path, layout)``: the plate group with its NGFF
   plate attributes (rows, columns, field count), from what is known before any
   well runs. Its list of wells starts empty: a well is listed once its arrays
   exist, so the store is a valid NGFF plate at every moment, also when a run
   covers only some wells or some wells fail. ``plateflow.run`` calls it once,
   in the parent, before the workers start.
2. ``write_well(store_path, well, planes)`` (or its lower half,
   ``create_well_arrays``): the well group, its fields, arrays and label
   images, once the well's last step has shown what it makes. Only the process
   running that well calls it, and it writes only inside that well's group
   (and adds the well to the plate's list).

``create_plate_store(store_path, layout)`` does both for every well when the
whole layout is known up front. After that, writers only fill chunks: each
plane is its own chunk, so processes writing different wells (or different
planes) never touch the same file.

Path convention: ``<anything>.zarr[/<relative image path>]``. The store is the
path up to and including the first part that ends in ``.zarr``. The position of
a plane comes from the ``components`` option (well, site, channel, z_index,
timepoint as strings); when it is left out, the relative image path after the
store is parsed with the layout's microscope handler, so the same relative
path that names an output file on disk (``TimePoint_1/ZStep_2/A01_s1_w1.tif``)
names its plane in the store. A component with one value in the layout may be
omitted. ``save`` takes a 2-D plane, or a 3-D stack along the one component
(channel, z_index or timepoint) left unset. ``load`` returns the plane, or the
stack over the components left unset, in (t, c, z) order. ``list`` returns the
field image groups (``"A/1/0"``) of the wells that have arrays, relative to the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..._frozen import FrozenDict
from ..._naming import COMPONENTS, natural_sorted, well_id
from ..._text import install_hint
from .base import is_label_plane, match_name, posix

__all__ = [
    "ZarrBackend",
    "ZarrPlateLayout",
    "create_plate_store",
    "create_plate_metadata",
    "create_well_arrays",
    "write_well",
    "is_label_plane",
    "channel_color",
    "split_store_path",
    "ZARR_COMPRESSORS",
    "NGFF_VERSION",
]

NGFF_VERSION = "0.5"
ZARR_COMPRESSORS = ("zstd", "blosc", "none")
_AXES = ("t", "c", "z", "y", "x")
_PLANE_COMPONENTS = ("timepoint", "channel", "z_index")  # array axes 0, 1, 2
_LAYOUT_KEY = "plateflow"
_ARRAY_FIELDS = ("z_indices", "image_shape", "dtype")  # known only once a well has run
_WELLS_LOCK = ".plateflow-wells.lock"  # inside the store; zarr readers only read zarr.json files


def _strings(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name}={values!r} is not valid; give a non-empty sequence of values such as ('1', '2')")
    out = tuple(str(v) for v in values)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={values!r} repeats a value")
    return out


@dataclass(frozen=True)
class ZarrPlateLayout:
    """Everything needed to create an OME-Zarr plate store.

    The plate-level fields are known before any well runs; ``z_indices``,
    ``image_shape`` and ``dtype`` (the arrays' part) may be left ``None`` when
    only the plate metadata is created, and are then given per well to
    :func:`create_well_arrays`.

    Attributes:
        wells: well ids (``"A01"``).
        sites: site values; site ``sites[i]`` is field ``i`` of each well.
        channels, timepoints: component values, in array order.
        z_indices: Z values in array order, or ``None`` (set per well).
        image_shape: (Y, X) of a plane, or ``None`` (set per well).
        dtype: numpy dtype name of the arrays, or ``None`` (set per well).
        channel_names: channel value -> name, for the viewer.
        pixel_size: micrometres per pixel, or ``None``.
        microscope: the plate's handler name, used to read positions from relative image paths.
        name: plate name in the metadata.
        compressor: ``"zstd"``, ``"blosc"`` or ``"none"``.
    """

    wells: tuple[str, ...]
    sites: tuple[str, ...]
    channels: tuple[str, ...]
    _: KW_ONLY
    z_indices: tuple[str, ...] | None = None
    timepoints: tuple[str, ...] = ("1",)
    image_shape: tuple[int, int] | None = None
    dtype: str | None = None
    channel_names: Mapping[str, str] = field(default_factory=FrozenDict)
    pixel_size: float | None = None
    microscope: str | None = None
    name: str | None = None
    compressor: str = "zstd"

    def __post_init__(self) -> None:
        # Normalise in place: a frozen dataclass is set through object.__setattr__.
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        try:
            set_("wells", tuple(well_id(w) for w in _strings("wells", self.wells)))
        except ValueError as exc:
            raise ValueError(f"wells: {exc}") from None
        for name in ("sites", "channels", "timepoints"):
            set_(name, _strings(name, getattr(self, name)))
        if self.z_indices is not None:
            set_("z_indices", _strings("z_indices", self.z_indices))
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
                raise ValueError(f"image_shape={self.image_shape!r} is not valid; use (Y, X) with positive whole numbers")
            set_("image_shape", (int(shape[0]), int(shape[1])))
        if self.dtype is not None:
            try:
                set_("dtype", np.dtype(self.dtype).name)
            except TypeError:
                raise ValueError(f"dtype={self.dtype!r} is not a numpy dtype") from None
        if self.compressor not in ZARR_COMPRESSORS:
            raise ValueError(f"compressor={self.compressor!r} is not valid; choose one of: {', '.join(ZARR_COMPRESSORS)}")
        set_("channel_names", FrozenDict({str(k): str(v) for k, v in dict(self.channel_names).items()}))
        if self.pixel_size is not None:
            set_("pixel_size", float(self.pixel_size))

    @property
    def has_arrays(self) -> bool:
        """Whether the arrays' part (Z values, plane shape, dtype) is set."""
        return all(getattr(self, name) is not None for name in _ARRAY_FIELDS)

    def plate_part(self) -> "ZarrPlateLayout":
        """This layout without the arrays' part: what the plate metadata records."""
        return replace(self, z_indices=None, image_shape=None, dtype=None)

    def with_arrays(self, z_indices: Sequence[str], image_shape: Sequence[int], dtype: Any) -> "ZarrPlateLayout":
        """This layout with the arrays' part set (validated)."""
        return replace(self, z_indices=tuple(str(z) for z in z_indices), image_shape=tuple(image_shape), dtype=str(np.dtype(dtype)))  # type: ignore[arg-type]

    @classmethod
    def from_plate(cls, plate: Any, **overrides: Any) -> "ZarrPlateLayout":
        """The layout of an opened ``Plate`` (override any field by keyword)."""
        values = dict(
            wells=plate.wells,
            sites=plate.components["site"],
            channels=plate.components["channel"],
            z_indices=plate.components["z_index"],
            timepoints=plate.components["timepoint"],
            image_shape=plate.image_shape,
            dtype=str(plate.dtype),
            channel_names=dict(plate.channel_names),
            pixel_size=plate.pixel_size,
            microscope=plate.format_name,
            name=Path(plate.root).name,
        )
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists and dicts only)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_"}
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        out["channel_names"] = dict(self.channel_names)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ZarrPlateLayout":
        known = {f.name for f in fields(cls) if f.name != "_"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown layout key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def index_of(self, component: str, value: str) -> int:
        values = {"site": self.sites, "channel": self.channels, "z_index": self.z_indices, "timepoint": self.timepoints}[component]
        if values is None:
            raise ValueError(f"the layout has no {component} values yet (its arrays are not created)")
        try:
            return values.index(str(value))
        except ValueError:
            raise ValueError(f"{component}={value!r} is not in the store's layout; valid values: {', '.join(values)}") from None


def split_store_path(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """``(store, relative path inside it)`` for a ``<store>.zarr/<rest>`` path."""
    parts = posix(path).split("/")
    for i, part in enumerate(parts):
        if part.endswith(".zarr"):
            store = "/".join(parts[: i + 1]) or "/"
            return Path(store), "/".join(p for p in parts[i + 1:] if p)
    raise ValueError(f"{os.fspath(path)!r} is not a zarr path; zarr paths look like <store>.zarr/<relative image path>")


def _split_well(well: str) -> tuple[str, str]:
    letters = well.rstrip("0123456789")
    return letters, str(int(well[len(letters):]))


def _compressors(name: str) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    return {"zstd": ZstdCodec(level=3), "blosc": BloscCodec(), "none": None}[name]




# -- what the store shows: label planes, colours, display windows ----------------


# Colour by dye or filter name, as microscopes name their channels (first match wins).
_NAMED_COLORS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("dapi", "hoechst", "bfp", "405", "blue"), "0000FF"),
    (("cy5", "647", "farred", "draq5", "cy7", "750"), "FF00FF"),
    (("fitc", "gfp", "488", "alexa488", "green", "yfp", "cfp", "calcein"), "00FF00"),
    (("tritc", "cy3", "rfp", "mcherry", "texasred", "568", "594", "555", "546", "dsred", "phalloidin", "red"), "FF0000"),
)
# Channels whose name says nothing: distinct colours that add up well on black.
_DEFAULT_COLORS = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")


def channel_color(name: str, index: int, count: int) -> str:
    """The display colour (``"RRGGBB"``) of channel ``index`` of ``count``, from its name.

    DAPI/Hoechst blue, FITC/GFP green, Cy3/TRITC/Texas Red red, Cy5 magenta;
    an unknown name gets a distinct default colour (white when it is the only channel).
    """
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for words, color in _NAMED_COLORS:
        if any(word in key for word in words):
            return color
    return "FFFFFF" if count == 1 else _DEFAULT_COLORS[index % len(_DEFAULT_COLORS)]


def _window(values: Sequence[np.ndarray] | None, dtype: np.dtype) -> dict[str, float]:
    """Display window: ``start``/``end`` the 0.1 and 99.9 percentiles of the data, ``min``/``max`` its range."""
    data = np.concatenate([np.ravel(v) for v in values]) if values else np.empty(0, dtype)
    if data.dtype.kind == "f":
        data = data[np.isfinite(data)]
    if data.size == 0:
        # Nothing written yet: the dtype's range, as a viewer would guess it.
        top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
        return {"min": 0.0, "max": top, "start": 0.0, "end": top}
    low, high = float(data.min()), float(data.max())
    start, end = (float(v) for v in np.percentile(data, [0.1, 99.9]))
    if end <= start:
        start, end = low, (high if high > low else low + 1.0)
    return {"min": low, "max": high, "start": start, "end": end}


def _label_name(channel_name: str, taken: set[str]) -> str:
    """A label image name from its channel's name: letters, digits, '-' and '_' only, unique."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", channel_name).strip("_") or "labels"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


@dataclass(frozen=True)
class _WellArrays:
    """What a well's arrays hold, as recorded in its group (the arrays' part of its layout)."""

    z_indices: tuple[str, ...]
    image_shape: tuple[int, int]
    dtype: str
    channels: tuple[str, ...]               # image channels, in array order
    labels: Mapping[str, str]               # labelled channel -> label image name
    label_dtype: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "z_indices": list(self.z_indices), "image_shape": list(self.image_shape), "dtype": self.dtype,
            "channels": list(self.channels), "labels": dict(self.labels), "label_dtype": self.label_dtype,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], plate: "ZarrPlateLayout") -> "_WellArrays":
        return cls(
            tuple(str(z) for z in data["z_indices"]),
            (int(data["image_shape"][0]), int(data["image_shape"][1])),
            str(data["dtype"]),
            tuple(str(c) for c in data.get("channels", plate.channels)),  # stores before labels: every channel an image
            FrozenDict({str(k): str(v) for k, v in dict(data.get("labels", {})).items()}),
            data.get("label_dtype"),
        )


# -- NGFF metadata through ome-zarr's writer ---------------------------------------


_OME_ZARR_MISSING = (
    "OME-Zarr output needs the ome-zarr package, which writes the NGFF metadata: "
    f"{install_hint('ome-zarr', 'ome-zarr')} (or write TIFF output, the default)"
)


def _ngff_format() -> Any:
    try:
        from ome_zarr.format import FormatV05
    except ImportError:
        raise ImportError(_OME_ZARR_MISSING) from None
    return FormatV05()


def _ome_writer() -> Any:
    """``ome_zarr.writer``, imported without its import-time DeprecationWarning (a default argument of its own)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import ome_zarr.writer
        except ImportError:
            raise ImportError(_OME_ZARR_MISSING) from None
    return ome_zarr.writer


def _axes(layout: ZarrPlateLayout) -> tuple[list[dict[str, str]], list[float]]:
    space_unit = {"unit": "micrometer"} if layout.pixel_size else {}
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", **space_unit},
        {"name": "y", "type": "space", **space_unit},
        {"name": "x", "type": "space", **space_unit},
    ]
    return axes, [1.0, 1.0, 1.0, layout.pixel_size or 1.0, layout.pixel_size or 1.0]


def _omero(layout: ZarrPlateLayout, channels: Sequence[str], windows: Sequence[dict[str, float]]) -> dict[str, Any]:
    out = []
    for i, (channel, window) in enumerate(zip(channels, windows)):
        label = layout.channel_names.get(channel, f"channel {channel}")
        out.append({"label": label, "color": channel_color(label, i, len(channels)), "active": True, "window": window})
    return {"channels": out, "rdefs": {"model": "color"}}


def _write_multiscales(group: Any, layout: ZarrPlateLayout, name: str, omero: dict[str, Any] | None = None) -> None:
    write_multiscales_metadata = _ome_writer().write_multiscales_metadata
    axes, scale = _axes(layout)
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}]
    metadata = {"metadata": {"omero": omero}} if omero is not None else {}
    write_multiscales_metadata(group, datasets, fmt=_ngff_format(), axes=axes, name=name, **metadata)


def _plate_rows_columns(layout: ZarrPlateLayout) -> tuple[list[str], list[str]]:
    # Rows in plate order (A ... Z, AA ... AF), not alphabetical: rowIndex places the well on the plate.
    rows = sorted({_split_well(w)[0] for w in layout.wells}, key=lambda row: (len(row), row))
    columns = natural_sorted({_split_well(w)[1] for w in layout.wells})
    return rows, columns


def _write_plate_attrs(root: Any, layout: ZarrPlateLayout, store: Path, listed: set[str]) -> None:
    """The NGFF plate attributes, listing the wells of ``listed`` (well ids) in plate order."""
    write_plate_metadata = _ome_writer().write_plate_metadata
    rows, columns = _plate_rows_columns(layout)
    name = layout.name or store.stem
    wells = ["/".join(_split_well(w)) for w in layout.wells if w in listed]
    acquisitions = [{"id": 0, "name": name}]
    if wells:
        write_plate_metadata(root, rows, columns, wells, fmt=_ngff_format(), acquisitions=acquisitions,
                             field_count=len(layout.sites), name=name)
        return
    # ome-zarr refuses an empty well list, which NGFF allows (a plate none of whose wells has run yet).
    plate = {
        "columns": [{"name": c} for c in columns], "rows": [{"name": r} for r in rows], "wells": [],
        "name": name, "field_count": len(layout.sites), "acquisitions": acquisitions, "version": NGFF_VERSION,
    }
    root.attrs["ome"] = {"version": NGFF_VERSION, "plate": plate}


def _ome_attrs(group: Any) -> dict[str, Any]:
    """A copy of a group's NGFF ("ome") attributes."""
    ome = group.attrs.asdict().get("ome", {})
    return dict(ome) if isinstance(ome, Mapping) else {}


def _open_array(path: Path) -> Any:
    import zarr

    # Every written plane is stored, all-zero ones too, so a written plane is told from one never written.
    return zarr.open_array(str(path), mode="r+", zarr_format=3).with_config({"write_empty_chunks": True})


@contextlib.contextmanager
def _plate_wells_lock(store: Path) -> Iterator[None]:
    """Exclusive lock on the plate's list of wells, across processes (flock) and threads."""
    try:
        import fcntl
    except ImportError:  # not POSIX: threads of this process are still kept apart
        fcntl = None  # type: ignore[assignment]
    with _THREAD_LOCK, open(store / _WELLS_LOCK, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_THREAD_LOCK = threading.RLock()


def _list_well(store: Path, well: str, listed: bool) -> None:
    """Add ``well`` to (or remove it from) the plate's NGFF list of wells; the file is replaced atomically."""
    import zarr

    path = "/".join(_split_well(well))
    with _plate_wells_lock(store):
        root = zarr.open_group(str(store), mode="r+", zarr_format=3)
        plate: dict[str, Any] = _ome_attrs(root).get("plate", {})
        current = {w["path"] for w in plate.get("wells", [])}
        if (path in current) == listed:
            return
        layout = _read_layout(store)
        wanted = {w for w in layout.wells if "/".join(_split_well(w)) in current}
        wanted = wanted | {well} if listed else wanted - {well}
        _write_plate_attrs(root, layout, store, wanted)


def _check_store_path(store_path: str | os.PathLike[str]) -> Path:
    store = Path(store_path)
    if not store.name.endswith(".zarr"):
        raise ValueError(f"store path {store} must end in .zarr")
    return store


def create_plate_metadata(store_path: str | os.PathLike[str], layout: ZarrPlateLayout | Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Create the plate group and its NGFF plate metadata, listing no well yet.

    Wells are added to the plate's list by :func:`create_well_arrays` once their
    arrays exist. The store is built beside its place and renamed into it, so no
    reader ever sees half of it. Calling it again for a store with the same
    plate-level layout is a no-op (so a second process racing to create it is
    harmless); a different one raises ``FileExistsError`` unless ``overwrite=True``.
    """
    import zarr

    if not isinstance(layout, ZarrPlateLayout):
        layout = ZarrPlateLayout.from_dict(layout)
    store = _check_store_path(store_path)
    if store.exists():
        if overwrite:
            shutil.rmtree(store)
        else:
            return _same_plate_or_raise(store, layout)
    store.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{store.name}.", suffix=".part", dir=store.parent))
    try:
        root = zarr.open_group(str(staging), mode="w", zarr_format=3)
        _write_plate_attrs(root, layout, store, set())
        root.attrs[_LAYOUT_KEY] = {"layout": layout.to_dict()}
        try:
            os.rename(staging, store)
        except OSError:
            # Another process created the store first (rename onto a non-empty folder fails).
            if not (store / "zarr.json").is_file():
                raise
            return _same_plate_or_raise(store, layout)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return store


def _same_plate_or_raise(store: Path, layout: ZarrPlateLayout) -> Path:
    existing = _read_layout(store)
    if existing.plate_part() == layout.plate_part():
        return store
    raise FileExistsError(f"{store} exists with a different plate layout; pass overwrite=True to replace it")


def _well_arrays_of(plate: ZarrPlateLayout, *, z_indices: Sequence[str], image_shape: Sequence[int], dtype: Any,
                    channels: Sequence[str] | None, labels: Mapping[str, str] | Sequence[str] | None,
                    label_dtype: Any) -> _WellArrays:
    """Validate the arrays' part of one well against the plate layout."""
    full = plate.with_arrays(z_indices, image_shape, dtype)
    assert full.z_indices is not None and full.image_shape is not None and full.dtype is not None
    if labels is None:
        label_map: dict[str, str] = {}
    elif isinstance(labels, Mapping):
        label_map = {str(k): str(v) for k, v in labels.items()}
    else:
        taken: set[str] = set()
        label_map = {str(c): _label_name(plate.channel_names.get(str(c), f"channel {c}"), taken) for c in labels}
    # A labelled channel may also be an image channel: the image its labels were made from.
    image_channels = tuple(str(c) for c in channels) if channels is not None else tuple(c for c in plate.channels if c not in label_map)
    unknown = [c for c in (*image_channels, *label_map) if c not in plate.channels]
    if unknown:
        raise ValueError(f"channel(s) {', '.join(unknown)} are not in the store's layout; valid channels: {', '.join(plate.channels)}")
    if not image_channels:
        raise ValueError("a well needs at least one image channel; label images are shown over an image")
    bad_names = [n for n in label_map.values() if not re.fullmatch(r"[A-Za-z0-9_-]+", n)]
    if bad_names or len(set(label_map.values())) != len(label_map):
        raise ValueError(f"label image names must be unique and use letters, digits, '-' and '_' only; got {list(label_map.values())}")
    label_dtype_name = None
    if label_map:
        label_dtype_name = np.dtype(label_dtype if label_dtype is not None else "int32").name
        if np.dtype(label_dtype_name).kind not in "iu":
            raise ValueError(f"label_dtype={label_dtype!r} is not an integer dtype; label images hold integers")
    ordered = tuple(c for c in plate.channels if c in image_channels)  # array order follows the plate
    return _WellArrays(full.z_indices, full.image_shape, full.dtype, ordered, FrozenDict(label_map), label_dtype_name)


def create_well_arrays(
    store_path: str | os.PathLike[str],
    well: str,
    *,
    z_indices: Sequence[str],
    image_shape: Sequence[int],
    dtype: Any,
    channels: Sequence[str] | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    label_dtype: Any = None,
    overwrite: bool = True,
) -> ZarrPlateLayout:
    """Create the arrays of every field of ``well`` and list the well in the plate; return its layout.

    Each field gets a ``(t, c, z, y, x)`` image array of the image ``channels``
    (default: every channel of the plate that is not a label channel) and, for
    each labelled channel, a ``(t, 1, z, y, x)`` NGFF label image under
    ``labels/<name>``. ``labels`` maps channel -> label image name, or lists
    channels (named after the channel's name, ``"DAPI"``). Writes only inside
    the well's own group, then adds the well to the plate's list of wells
    (under a lock). With ``overwrite`` (the default) an existing group of the
    well is replaced, which is what a well that runs again wants; otherwise a
    different existing layout raises ``FileExistsError`` and the same one is a
    no-op. The returned layout's ``channels`` are the image channels.
    """
    import zarr

    store = _check_store_path(store_path)
    plate = _read_layout(store)
    well = well_id(well)
    if well not in plate.wells:
        raise ValueError(f"well {well!r} is not in the store's layout; valid wells: {', '.join(plate.wells)}")
    arrays = _well_arrays_of(plate, z_indices=z_indices, image_shape=image_shape, dtype=dtype,
                             channels=channels, labels=labels, label_dtype=label_dtype)
    layout = replace(plate, z_indices=arrays.z_indices, image_shape=arrays.image_shape, dtype=arrays.dtype, channels=arrays.channels)
    r, c = _split_well(well)
    well_path = store / r / c
    existing = _read_well_arrays(well_path, plate)
    if existing is not None and not overwrite:
        if existing == arrays:
            return layout
        raise FileExistsError(f"well {well} of {store} has arrays of another layout ({existing.to_dict()}); pass overwrite=True to replace them")
    if well_path.exists():
        # Unlisted first: the plate never lists a well whose group is being replaced.
        _list_well(store, well, listed=False)
        shutil.rmtree(well_path)

    writer = _ome_writer()
    write_label_metadata, write_well_metadata = writer.write_label_metadata, writer.write_well_metadata
    fmt = _ngff_format()
    ny, nx = arrays.image_shape
    t, z = len(plate.timepoints), len(arrays.z_indices)
    compressors = _compressors(plate.compressor)
    with _plate_wells_lock(store):
        # Under the plate lock: workers making two wells of one row at once would both try to create the row group.
        well_group = zarr.open_group(str(store), mode="r+", zarr_format=3).require_group(r).require_group(c)
    write_well_metadata(well_group, [{"path": str(i), "acquisition": 0} for i in range(len(plate.sites))], fmt=fmt)
    image_dtype = np.dtype(arrays.dtype)
    for i, site in enumerate(plate.sites):
        image = well_group.create_group(str(i))
        image.create_array("0", shape=(t, len(arrays.channels), z, ny, nx), chunks=(1, 1, 1, ny, nx), dtype=image_dtype,
                           fill_value=0, compressors=compressors, dimension_names=list(_AXES))
        windows = [_window(None, image_dtype)] * len(arrays.channels)
        _write_multiscales(image, layout, f"{well} site {site}", _omero(layout, arrays.channels, windows))
        if arrays.labels:
            labels_group = image.create_group("labels")
            for channel, name in arrays.labels.items():
                label_image = labels_group.create_group(name)
                label_image.create_array("0", shape=(t, 1, z, ny, nx), chunks=(1, 1, 1, ny, nx), dtype=np.dtype(arrays.label_dtype),
                                         fill_value=0, compressors=compressors, dimension_names=list(_AXES))
                _write_multiscales(label_image, layout, f"{well} site {site}: {name}")
                write_label_metadata(labels_group, name, fmt=fmt, source={"image": "../../"})
            # ome-zarr 0.18 leaves "version" out of the labels group's "ome" attributes, which NGFF 0.5 requires.
            labels_group.attrs["ome"] = {"version": NGFF_VERSION, **_ome_attrs(labels_group)}
    # Recorded last, then listed: a well whose arrays are only partly made reads as having none.
    well_group.attrs[_LAYOUT_KEY] = {"arrays": arrays.to_dict()}
    _list_well(store, well, listed=True)
    return layout


def write_well(
    store_path: str | os.PathLike[str],
    well: str,
    planes: Sequence[tuple[Mapping[str, Any], Any]],
    *,
    sources: Sequence[tuple[Mapping[str, Any], Any]] = (),
    label_channels: Sequence[str] | None = None,
) -> ZarrPlateLayout:
    """Create ``well``'s arrays from the planes its last step made, write them, and set display windows.

    ``planes`` are ``(components, 2-D array)`` pairs (components: site,
    channel, z_index, timepoint; one-valued ones may be left out). A channel
    all of whose planes are labels (:func:`is_label_plane`, or listed in
    ``label_channels``) becomes a label image, the others image channels;
    channels with no plane are left out. A label image is shown over its
    image: ``sources`` gives the planes the labels were made from (the last
    step's input), which fill the image channel of a labelled channel that has
    no image plane of its own; without them, that channel's image is the
    label mask (labels > 0). Returns the well's layout.
    """
    import zarr

    store = _check_store_path(store_path)
    plate = _read_layout(store)
    well = well_id(well)

    def position(components: Mapping[str, Any]) -> tuple[str, str, str, str]:
        values = {k: str(v) for k, v in components.items() if v is not None and k != "well"}
        for name, choices in (("site", plate.sites), ("channel", plate.channels), ("timepoint", plate.timepoints)):
            if name not in values and len(choices) == 1:
                values[name] = choices[0]
        values.setdefault("z_index", "1")
        missing = [n for n in ("site", "channel") if n not in values]
        if missing:
            raise ValueError(f"well {well}: a plane's components must give {', '.join(missing)}; got {dict(components)}")
        return values["site"], values["channel"], values["z_index"], values["timepoint"] if "timepoint" in values else plate.timepoints[0]

    def arrays_of(pairs: Sequence[tuple[Mapping[str, Any], Any]]) -> dict[tuple[str, str, str, str], np.ndarray]:
        return {position(components): np.asarray(data) for components, data in pairs}

    given, source_planes = arrays_of(planes), arrays_of(sources)
    if not given:
        raise ValueError(f"well {well}: no planes to write")
    shapes = {data.shape for data in given.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"well {well}: planes of shapes {sorted(shapes)}; one zarr array holds 2-D planes of one shape")
    by_channel: dict[str, list[np.ndarray]] = {}
    for (_, channel, _, _), data in given.items():
        by_channel.setdefault(channel, []).append(data)
    forced = {str(c) for c in label_channels or ()}
    label_set = {c for c, datas in by_channel.items() if c in forced or all(is_label_plane(d) for d in datas)}
    image_planes = {key: data for key, data in given.items() if key[1] not in label_set}
    label_planes = {key: (data.astype(np.uint8) if data.dtype == bool else data) for key, data in given.items() if key[1] in label_set}
    for key, data in label_planes.items():
        # A labelled channel has no image plane of its own: show the labels over what they were made from.
        source = source_planes.get(key)
        image_planes[key] = source if source is not None and source.shape == data.shape else (data > 0).astype(np.uint8)
    image_dtype = np.result_type(*[d.dtype for d in image_planes.values()])
    if image_dtype == bool:
        image_dtype = np.dtype(np.uint8)
    label_dtype = np.result_type(*[d.dtype for d in label_planes.values()]) if label_planes else None
    taken: set[str] = set()
    labels = {c: _label_name(plate.channel_names.get(c, f"channel {c}"), taken) for c in plate.channels if c in label_set}
    channels = [c for c in plate.channels if any(k[1] == c for k in image_planes)]
    z_indices = natural_sorted({k[2] for k in (*image_planes, *label_planes)})
    layout = create_well_arrays(store, well, z_indices=z_indices, image_shape=shapes.pop(), dtype=image_dtype,
                                channels=channels, labels=labels, label_dtype=label_dtype)
    assert layout.z_indices is not None
    r, c = _split_well(well)
    well_path = store / r / c
    windows: dict[tuple[str, str], list[np.ndarray]] = {}
    for (site, channel, z, t), data in image_planes.items():
        field_index = plate.index_of("site", site)
        array = _open_array(well_path / str(field_index) / "0")
        array[plate.index_of("timepoint", t), layout.channels.index(channel), layout.z_indices.index(z)] = data.astype(image_dtype, copy=False)
        windows.setdefault((site, channel), []).append(data)
    for (site, channel, z, t), data in label_planes.items():
        array = _open_array(well_path / str(plate.index_of("site", site)) / "labels" / labels[channel] / "0")
        array[plate.index_of("timepoint", t), 0, layout.z_indices.index(z)] = data.astype(label_dtype, copy=False)
    for i, site in enumerate(plate.sites):
        image = zarr.open_group(str(well_path / str(i)), mode="r+", zarr_format=3)
        ome = _ome_attrs(image)
        ome["omero"] = _omero(layout, layout.channels, [_window(windows.get((site, ch)), np.dtype(image_dtype)) for ch in layout.channels])
        image.attrs["ome"] = ome
    return layout


def create_plate_store(store_path: str | os.PathLike[str], layout: ZarrPlateLayout | Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Create the whole store at once: the plate metadata and the arrays of every well.

    ``layout`` must give the arrays' part (``z_indices``, ``image_shape``,
    ``dtype``). Calling it again with the same layout is a no-op; a different
    layout raises ``FileExistsError`` unless ``overwrite=True``.
    """
    if not isinstance(layout, ZarrPlateLayout):
        layout = ZarrPlateLayout.from_dict(layout)
    if not layout.has_arrays:
        missing = [name for name in _ARRAY_FIELDS if getattr(layout, name) is None]
        raise ValueError(f"create_plate_store needs the whole layout; {', '.join(missing)} not set "
                         "(use create_plate_metadata, then create_well_arrays per well)")
    store = _check_store_path(store_path)
    if store.exists() and not overwrite:
        if _read_layout(store) == layout and all(
            _read_well_arrays(store.joinpath(*_split_well(w)), layout) is not None for w in layout.wells
        ):
            return store
        raise FileExistsError(f"{store} exists with a different layout; pass overwrite=True to replace it")
    create_plate_metadata(store, layout, overwrite=overwrite)
    assert layout.z_indices is not None and layout.image_shape is not None and layout.dtype is not None
    for well in layout.wells:
        create_well_arrays(store, well, z_indices=layout.z_indices, image_shape=layout.image_shape, dtype=layout.dtype, channels=layout.channels)
    return store


def _read_layout(store: Path) -> ZarrPlateLayout:
    meta_file = store / "zarr.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return ZarrPlateLayout.from_dict(meta["attributes"][_LAYOUT_KEY]["layout"])
    except FileNotFoundError:
        raise FileNotFoundError(f"no zarr plate store at {store} (create it with create_plate_store, or create_plate_metadata and create_well_arrays)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{store} is not a plateflow plate store (no layout in its metadata: {exc})") from None


def _read_well_arrays(well_path: Path, plate: ZarrPlateLayout) -> _WellArrays | None:
    """The arrays' part recorded in a well group, or ``None`` when its arrays are not (all) there."""
    try:
        meta = json.loads((well_path / "zarr.json").read_text(encoding="utf-8"))
        arrays = meta.get("attributes", {}).get(_LAYOUT_KEY, {}).get("arrays")
        return _WellArrays.from_dict(arrays, plate) if isinstance(arrays, dict) else None
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        # Unreadable metadata (a truncated or overwritten zarr.json): the well reads as not written.
        return None


@dataclass(frozen=True)
class _Place:
    """Where one position of a store lives: its array (relative to the store) and the index in it."""

    array: str
    index: tuple[Any, ...]
    free: tuple[str, ...]       # plane components left unset (a stack over them)
    expected: tuple[int, ...]   # the shape a write must have
    dtype: str


class ZarrBackend:
    """Planes in OME-Zarr plate stores; see the module docstring for the path convention."""

    name: ClassVar[str] = "zarr"
    is_local: ClassVar[bool] = True

    def __init__(self) -> None:
        self._layouts: dict[str, tuple[tuple[int, int], ZarrPlateLayout]] = {}
        self._wells: dict[str, tuple[tuple[int, int], tuple[ZarrPlateLayout, _WellArrays | None]]] = {}
        self._arrays: dict[str, Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _stamp(meta: Path) -> tuple[int, int]:
        # zarr rewrites metadata through a new file, so the inode changes even within one mtime tick.
        st = meta.stat()
        return st.st_mtime_ns, st.st_ino

    def _forget(self, prefix: str) -> None:
        with self._lock:
            self._layouts = {k: v for k, v in self._layouts.items() if k != prefix and not k.startswith(prefix + "/")}
            self._wells = {k: v for k, v in self._wells.items() if k != prefix and not k.startswith(prefix + "/")}
            self._arrays = {k: v for k, v in self._arrays.items() if not k.startswith(prefix + "/")}

    def layout(self, store: str | os.PathLike[str]) -> ZarrPlateLayout:
        """The plate-level layout of a store (read once, re-read if the store was re-created)."""
        store_path = Path(store)
        if not str(store_path).endswith(".zarr"):
            store_path = split_store_path(store_path)[0]
        key = os.fspath(store_path)
        try:
            stamp = self._stamp(store_path / "zarr.json")
        except FileNotFoundError:
            raise FileNotFoundError(f"no zarr plate store at {store_path} (create it with create_plate_store, or create_plate_metadata and create_well_arrays)") from None
        with self._lock:
            cached = self._layouts.get(key)
        if cached is None or cached[0] != stamp:
            layout = _read_layout(store_path)
            # The plate file also changes when a well is listed; only a new layout invalidates the cached arrays.
            if cached is not None and cached[1] != layout:
                self._forget(key)
            cached = (stamp, layout)
            with self._lock:
                self._layouts[key] = cached
        return cached[1]

    def _well(self, store: str | os.PathLike[str], well: str) -> tuple[ZarrPlateLayout, _WellArrays | None]:
        plate = self.layout(store)
        store_path = Path(store) if str(store).endswith(".zarr") else split_store_path(store)[0]
        well = well_id(well)
        if well not in plate.wells:
            raise ValueError(f"well {well!r} is not in the store's layout; valid wells: {', '.join(plate.wells)}")
        r, c = _split_well(well)
        well_path = store_path / r / c
        key = os.fspath(well_path)
        try:
            stamp = self._stamp(well_path / "zarr.json")
        except FileNotFoundError:
            if plate.has_arrays:
                return plate, None
            raise FileNotFoundError(f"well {well} has no arrays in {store_path} yet (create them with create_well_arrays)") from None
        with self._lock:
            cached = self._wells.get(key)
        if cached is None or cached[0] != stamp:
            arrays = _read_well_arrays(well_path, plate)
            if arrays is None:
                if not plate.has_arrays:
                    raise FileNotFoundError(f"well {well} has no arrays in {store_path} yet (create them with create_well_arrays)")
                value: tuple[ZarrPlateLayout, _WellArrays | None] = (plate, None)
            else:
                value = (replace(plate, z_indices=arrays.z_indices, image_shape=arrays.image_shape, dtype=arrays.dtype, channels=arrays.channels), arrays)
            with self._lock:
                self._arrays = {k: v for k, v in self._arrays.items() if not k.startswith(key + "/")}
                self._wells[key] = cached = (stamp, value)
        return cached[1]

    def well_layout(self, store: str | os.PathLike[str], well: str) -> ZarrPlateLayout:
        """The full layout of one well (plate layout plus its arrays' part; ``channels`` are its image channels).

        Raises ``FileNotFoundError`` when the well's arrays have not been created.
        """
        return self._well(store, well)[0]

    def well_labels(self, store: str | os.PathLike[str], well: str) -> Mapping[str, str]:
        """Labelled channel -> label image name of one well (empty when it has none)."""
        arrays = self._well(store, well)[1]
        return arrays.labels if arrays is not None else FrozenDict()

    def create_well_arrays(self, store: str | os.PathLike[str], well: str, **options: Any) -> ZarrPlateLayout:
        """:func:`create_well_arrays`, forgetting what this backend had cached for the well."""
        layout = create_well_arrays(store, well, **options)
        r, c = _split_well(well_id(well))
        self._forget(os.fspath(Path(store) / r / c))
        return layout

    def write_well(self, store: str | os.PathLike[str], well: str, planes: Sequence[tuple[Mapping[str, Any], Any]], **options: Any) -> ZarrPlateLayout:
        """:func:`write_well`, forgetting what this backend had cached for the well."""
        layout = write_well(store, well, planes, **options)
        r, c = _split_well(well_id(well))
        self._forget(os.fspath(Path(store) / r / c))
        return layout

    def _position(self, path: str | os.PathLike[str], components: Mapping[str, Any] | None) -> tuple[Path, ZarrPlateLayout, dict[str, str], _WellArrays | None]:
        store, inner = split_store_path(path)
        plate = self.layout(store)
        values: dict[str, str] = {}
        if components is None:
            # Storage knows no file-name layout: the plan hands every image's components over.
            raise ValueError(f"{os.fspath(path)!r}: give components=... (the well, site, channel, z_index and timepoint of the image)")
        else:
            unknown = set(components) - set(COMPONENTS)
            if unknown:
                raise ValueError(f"unknown component(s) {', '.join(sorted(unknown))}; valid components: {', '.join(COMPONENTS)}")
            values = {k: str(v) for k, v in components.items() if v is not None}
        if "well" not in values:
            raise ValueError(f"components must give the well and the site for {os.fspath(path)!r}; got {values}")
        values["well"] = well_id(values["well"])
        if values["well"] not in plate.wells:
            raise ValueError(f"well {values['well']!r} is not in the store's layout; valid wells: {', '.join(plate.wells)}")
        layout, arrays = self._well(store, values["well"])
        assert layout.z_indices is not None
        channels = (*layout.channels, *(arrays.labels if arrays is not None else ()))
        for name, choices in (("site", layout.sites), ("channel", channels), ("z_index", layout.z_indices), ("timepoint", layout.timepoints)):
            if name not in values and len(choices) == 1:
                values[name] = choices[0]
        if "site" not in values:
            raise ValueError(f"components must give the well and the site for {os.fspath(path)!r}; got {values}")
        if "channel" in values and values["channel"] not in channels:
            written = ", ".join(channels)
            raise ValueError(f"channel={values['channel']!r} is not in well {values['well']} of the store; its channels: {written}")
        return store, layout, values, arrays

    @staticmethod
    def _place(layout: ZarrPlateLayout, values: Mapping[str, str], arrays: _WellArrays | None) -> _Place:
        r, c = _split_well(values["well"])
        field_index = layout.index_of("site", values["site"])
        assert layout.z_indices is not None and layout.image_shape is not None and layout.dtype is not None
        labels = arrays.labels if arrays is not None else {}
        index: list[Any] = []
        free: list[str] = []
        expected: list[int] = []
        for name in _PLANE_COMPONENTS:
            if name in values:
                index.append(0 if name == "channel" and values[name] in labels else layout.index_of(name, values[name]))
            else:
                index.append(slice(None))
                free.append(name)
                expected.append(len({"timepoint": layout.timepoints, "channel": layout.channels, "z_index": layout.z_indices}[name]))
        if values.get("channel") in labels:
            assert arrays is not None and arrays.label_dtype is not None
            array, dtype = f"{r}/{c}/{field_index}/labels/{labels[values['channel']]}/0", arrays.label_dtype
        else:
            array, dtype = f"{r}/{c}/{field_index}/0", layout.dtype
        return _Place(array, tuple(index), tuple(free), (*expected, *layout.image_shape), dtype)

    def _array(self, store: Path, place: _Place) -> Any:
        import zarr

        array_path = f"{os.fspath(store)}/{place.array}"
        with self._lock:
            array = self._arrays.get(array_path)
        if array is None:
            # Store every written plane, all-zero ones too, so exists() tells a written plane
            # from one never written (zarr skips chunks equal to the fill value by default).
            array = zarr.open_array(array_path, mode="r+", zarr_format=3).with_config({"write_empty_chunks": True})
            with self._lock:
                self._arrays[array_path] = array
        return array

    def save(self, data: Any, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown option(s) {', '.join(sorted(options))} for the zarr backend; valid options: components")
        store, layout, values, arrays = self._position(path, components)
        place = self._place(layout, values, arrays)
        array_data = np.asarray(data)
        if array_data.shape != place.expected:
            what = "a plane" if not place.free else f"a stack over {', '.join(place.free)}"
            raise ValueError(f"cannot write {os.fspath(path)!r}: expected {what} of shape {place.expected}, got {array_data.shape}")
        target = np.dtype(place.dtype)
        if array_data.dtype != target:
            if not np.can_cast(array_data.dtype, target, casting="safe"):
                raise ValueError(f"cannot write {os.fspath(path)!r}: data is {array_data.dtype} but the store holds "
                                 f"{target}; convert it to {target} first")
            array_data = array_data.astype(target)
        self._array(store, place)[place.index] = array_data

    def load(self, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None, **options: Any) -> np.ndarray:
        if options:
            raise TypeError(f"unknown option(s) {', '.join(sorted(options))} for the zarr backend; valid options: components")
        store, layout, values, arrays = self._position(path, components)
        place = self._place(layout, values, arrays)
        return np.asarray(self._array(store, place)[place.index])

    def exists(self, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None, **options: Any) -> bool:
        """Whether the store (or a folder inside it) exists; for one plane (``components``, or a
        relative image path after the store), whether that plane has been written."""
        store, inner = split_store_path(path)
        if not (store / "zarr.json").is_file():
            return False
        if components is None:
            if not inner or (store / inner).exists():
                return True
            if self.layout(store).microscope is None:
                return False
        try:
            store, layout, values, arrays = self._position(path, components)
        except (ValueError, FileNotFoundError):
            return False
        place = self._place(layout, values, arrays)
        if place.free:
            raise ValueError(f"exists() asks about one plane; give channel, z_index and timepoint (missing: {', '.join(place.free)})")
        if not (store / place.array / "zarr.json").is_file():
            return False
        key = self._array(store, place).metadata.encode_chunk_key((*place.index, 0, 0))
        return (store / place.array / key).exists()

    def has_array(self, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None) -> bool:
        """Whether the array that holds a plane exists (its planes may not all be written yet)."""
        try:
            store, layout, values, arrays = self._position(path, components)
        except (ValueError, FileNotFoundError):
            return False
        if arrays is None and not layout.has_arrays:
            return False
        meta = store / self._place(layout, values, arrays).array / "zarr.json"
        try:
            # A truncated or overwritten array metadata file reads as no array (so resume redoes the well).
            return json.loads(meta.read_text(encoding="utf-8")).get("node_type") == "array"
        except (OSError, ValueError, AttributeError):
            return False

    def list(self, path: str | os.PathLike[str], *, pattern: str | None = None, recursive: bool = True) -> list[str]:
        """The field image groups (``"A/1/0"``) of the wells that have arrays, relative to the store."""
        store, _ = split_store_path(path)
        layout = self.layout(store)
        found = []
        for well in layout.wells:
            r, c = _split_well(well)
            if _read_well_arrays(store / r / c, layout) is None:
                continue
            for i in range(len(layout.sites)):
                rel = f"{r}/{c}/{i}"
                if match_name(rel, pattern):
                    found.append(rel)
        return found

    def delete(self, path: str | os.PathLike[str]) -> None:
        store, inner = split_store_path(path)
        target = store / inner if inner else store
        if not target.exists():
            raise FileNotFoundError(f"no such zarr store or group: {target}")
        parts = inner.split("/") if inner else []
        if len(parts) == 2 and (store / "zarr.json").is_file():
            # A well's group: unlisted from the plate first, so the plate never names a missing well.
            wells = {"/".join(_split_well(w)): w for w in self.layout(store).wells}
            if inner in wells:
                _list_well(store, wells[inner], listed=False)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        self._forget(os.fspath(store))
