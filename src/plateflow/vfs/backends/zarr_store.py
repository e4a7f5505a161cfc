"""The zarr backend: one OME-Zarr HCS plate store (NGFF 0.5, zarr format 3).

Layout of a store::

    <name>.zarr/                 plate metadata ("ome": {"plate": ...}), plateflow layout
      <row>/<column>/            one group per well ("A/1" is well A01), "ome": {"well": ...}
        <field>/                 one image per site (field 0 is the layout's first site)
          0                      the (t, c, z, y, x) array; one chunk per plane

The store is created once, with its whole layout and all its metadata, by
``create_plate_store(store_path, layout)`` (the compiler's ``zarr_config``
holds the layout as a plain dict). After that, writers only fill chunks: each
plane is its own chunk, so processes writing different wells (or different
planes) never touch the same file, and nothing rewrites metadata.

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
field image groups (``"A/1/0"``) relative to the store.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..._frozen import FrozenDict
from ...plate.model import COMPONENTS, natural_sorted, well_id
from .base import match_name, posix

__all__ = ["ZarrBackend", "ZarrPlateLayout", "create_plate_store", "split_store_path", "ZARR_COMPRESSORS", "NGFF_VERSION"]

NGFF_VERSION = "0.5"
ZARR_COMPRESSORS = ("zstd", "blosc", "none")
_AXES = ("t", "c", "z", "y", "x")
_PLANE_COMPONENTS = ("timepoint", "channel", "z_index")  # array axes 0, 1, 2
_LAYOUT_KEY = "plateflow"


def _strings(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name}={values!r} is not valid; give a non-empty sequence of values such as ('1', '2')")
    out = tuple(str(v) for v in values)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={values!r} repeats a value")
    return out


@dataclass(frozen=True)
class ZarrPlateLayout:
    """Everything needed to create an OME-Zarr plate store before any well runs.

    Attributes:
        wells: well ids (``"A01"``).
        sites: site values; site ``sites[i]`` is field ``i`` of each well.
        channels, z_indices, timepoints: component values, in array order.
        image_shape: (Y, X) of a plane.
        dtype: numpy dtype name of the arrays.
        channel_names: channel value -> name, for the viewer.
        pixel_size: micrometres per pixel, or ``None``.
        microscope: the plate's handler name, used to read positions from relative image paths.
        name: plate name in the metadata.
        compressor: ``"zstd"``, ``"blosc"`` or ``"none"``.
    """

    wells: tuple[str, ...]
    sites: tuple[str, ...]
    channels: tuple[str, ...]
    z_indices: tuple[str, ...]
    timepoints: tuple[str, ...]
    image_shape: tuple[int, int]
    dtype: str
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
        for name in ("sites", "channels", "z_indices", "timepoints"):
            set_(name, _strings(name, getattr(self, name)))
        shape = tuple(self.image_shape)
        if len(shape) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
            raise ValueError(f"image_shape={self.image_shape!r} is not valid; use (Y, X) with positive whole numbers")
        set_("image_shape", (int(shape[0]), int(shape[1])))
        try:
            set_("dtype", np.dtype(self.dtype).name)
        except TypeError:
            raise ValueError(f"dtype={self.dtype!r} is not a numpy dtype") from None
        if self.compressor not in ZARR_COMPRESSORS:
            raise ValueError(f"compressor={self.compressor!r} is not valid; choose one of: {', '.join(ZARR_COMPRESSORS)}")
        set_("channel_names", FrozenDict({str(k): str(v) for k, v in dict(self.channel_names).items()}))
        if self.pixel_size is not None:
            set_("pixel_size", float(self.pixel_size))

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
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        out["channel_names"] = dict(self.channel_names)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ZarrPlateLayout":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown layout key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def index_of(self, component: str, value: str) -> int:
        values = {"site": self.sites, "channel": self.channels, "z_index": self.z_indices, "timepoint": self.timepoints}[component]
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


def create_plate_store(store_path: str | os.PathLike[str], layout: ZarrPlateLayout | Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Create the OME-Zarr plate store with its full layout and metadata.

    Calling it again with the same layout is a no-op; a different layout raises
    ``FileExistsError`` unless ``overwrite=True``.
    """
    import zarr

    if not isinstance(layout, ZarrPlateLayout):
        layout = ZarrPlateLayout.from_dict(layout)
    store = Path(store_path)
    if not store.name.endswith(".zarr"):
        raise ValueError(f"store path {store} must end in .zarr")
    if store.exists():
        if overwrite:
            shutil.rmtree(store)
        else:
            existing = _read_layout(store)
            if existing == layout:
                return store
            raise FileExistsError(f"{store} exists with a different layout; pass overwrite=True to replace it")

    rows = natural_sorted({_split_well(w)[0] for w in layout.wells})
    columns = natural_sorted({_split_well(w)[1] for w in layout.wells})
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    plate_meta = {
        "name": layout.name or store.stem,
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": [
            {"path": f"{r}/{c}", "rowIndex": rows.index(r), "columnIndex": columns.index(c)}
            for r, c in (_split_well(w) for w in layout.wells)
        ],
        "field_count": len(layout.sites),
        "acquisitions": [{"id": 0, "name": layout.name or store.stem}],
    }
    root.attrs.update({"ome": {"version": NGFF_VERSION, "plate": plate_meta}, _LAYOUT_KEY: {"layout": layout.to_dict()}})

    ny, nx = layout.image_shape
    shape = (len(layout.timepoints), len(layout.channels), len(layout.z_indices), ny, nx)
    scale = [1.0, 1.0, 1.0, layout.pixel_size or 1.0, layout.pixel_size or 1.0]
    space_unit = {"unit": "micrometer"} if layout.pixel_size else {}
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", **space_unit},
        {"name": "y", "type": "space", **space_unit},
        {"name": "x", "type": "space", **space_unit},
    ]
    dtype = np.dtype(layout.dtype)
    top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
    omero = {
        "channels": [
            {
                "label": layout.channel_names.get(c, f"channel {c}"),
                "color": "FFFFFF",
                "active": True,
                "window": {"start": 0.0, "end": top, "min": 0.0, "max": top},
            }
            for c in layout.channels
        ],
        "rdefs": {"model": "greyscale"},
    }
    compressors = _compressors(layout.compressor)
    for well in layout.wells:
        r, c = _split_well(well)
        well_group = root.require_group(r).require_group(c)
        well_group.attrs.update({"ome": {"version": NGFF_VERSION, "well": {"images": [{"path": str(i), "acquisition": 0} for i in range(len(layout.sites))]}}})
        for i, site in enumerate(layout.sites):
            image = well_group.create_group(str(i))
            image.attrs.update({
                "ome": {
                    "version": NGFF_VERSION,
                    "multiscales": [{
                        "name": f"{well} site {site}",
                        "axes": axes,
                        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
                    }],
                    "omero": omero,
                }
            })
            image.create_array(
                "0",
                shape=shape,
                chunks=(1, 1, 1, ny, nx),
                dtype=dtype,
                fill_value=0,
                compressors=compressors,
                dimension_names=list(_AXES),
            )
    return store


def _read_layout(store: Path) -> ZarrPlateLayout:
    meta_file = store / "zarr.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return ZarrPlateLayout.from_dict(meta["attributes"][_LAYOUT_KEY]["layout"])
    except FileNotFoundError:
        raise FileNotFoundError(f"no zarr plate store at {store} (create it with create_plate_store)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{store} is not a plateflow plate store (no layout in its metadata: {exc})") from None


class ZarrBackend:
    """Planes in OME-Zarr plate stores; see the module docstring for the path convention."""

    name: ClassVar[str] = "zarr"
    is_local: ClassVar[bool] = True

    def __init__(self) -> None:
        self._layouts: dict[str, tuple[int, ZarrPlateLayout]] = {}
        self._arrays: dict[str, Any] = {}
        self._lock = threading.Lock()

    def layout(self, store: str | os.PathLike[str]) -> ZarrPlateLayout:
        """The layout of a store (read once, re-read if the store was re-created)."""
        store_path = Path(store)
        if not str(store_path).endswith(".zarr"):
            store_path = split_store_path(store_path)[0]
        key = os.fspath(store_path)
        try:
            stamp = (store_path / "zarr.json").stat().st_mtime_ns
        except FileNotFoundError:
            raise FileNotFoundError(f"no zarr plate store at {store_path} (create it with create_plate_store)") from None
        with self._lock:
            cached = self._layouts.get(key)
            if cached is None or cached[0] != stamp:
                cached = (stamp, _read_layout(store_path))
                self._layouts[key] = cached
                self._arrays = {k: v for k, v in self._arrays.items() if not k.startswith(key + "/")}
        return cached[1]

    def _position(self, path: str | os.PathLike[str], components: Mapping[str, Any] | None) -> tuple[Path, ZarrPlateLayout, dict[str, str]]:
        store, inner = split_store_path(path)
        layout = self.layout(store)
        values: dict[str, str] = {}
        if components is None:
            if not inner:
                raise ValueError(f"{os.fspath(path)!r} names the whole store; give components=... or a relative image path after the store")
            if layout.microscope is None:
                raise ValueError(f"the store {store} records no microscope format, so {inner!r} cannot be parsed; pass components=...")
            from ...plate.index import HANDLERS

            parsed = HANDLERS[layout.microscope]().parse_path(inner)
            if parsed is None:
                raise ValueError(f"{inner!r} is not an image name of the {layout.microscope} format; pass components=...")
            values = parsed.components
        else:
            unknown = set(components) - set(COMPONENTS)
            if unknown:
                raise ValueError(f"unknown component(s) {', '.join(sorted(unknown))}; valid components: {', '.join(COMPONENTS)}")
            values = {k: str(v) for k, v in components.items() if v is not None}
        for name, choices in (("site", layout.sites), ("channel", layout.channels), ("z_index", layout.z_indices), ("timepoint", layout.timepoints)):
            if name not in values and len(choices) == 1:
                values[name] = choices[0]
        if "well" not in values or "site" not in values:
            raise ValueError(f"components must give the well and the site for {os.fspath(path)!r}; got {values}")
        values["well"] = well_id(values["well"])
        if values["well"] not in layout.wells:
            raise ValueError(f"well {values['well']!r} is not in the store's layout; valid wells: {', '.join(layout.wells)}")
        return store, layout, values

    def _array(self, store: Path, layout: ZarrPlateLayout, values: Mapping[str, str]) -> Any:
        import zarr

        r, c = _split_well(values["well"])
        field_index = layout.index_of("site", values["site"])
        array_path = f"{os.fspath(store)}/{r}/{c}/{field_index}/0"
        with self._lock:
            array = self._arrays.get(array_path)
            if array is None:
                array = zarr.open_array(array_path, mode="r+", zarr_format=3)
                self._arrays[array_path] = array
        return array

    @staticmethod
    def _selection(layout: ZarrPlateLayout, values: Mapping[str, str]) -> tuple[tuple[Any, ...], list[str]]:
        index: list[Any] = []
        free = []
        for name in _PLANE_COMPONENTS:
            if name in values:
                index.append(layout.index_of(name, values[name]))
            else:
                index.append(slice(None))
                free.append(name)
        return tuple(index), free

    def save(self, data: Any, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown option(s) {', '.join(sorted(options))} for the zarr backend; valid options: components")
        store, layout, values = self._position(path, components)
        array_data = np.asarray(data)
        index, free = self._selection(layout, values)
        expected = tuple(len({"timepoint": layout.timepoints, "channel": layout.channels, "z_index": layout.z_indices}[n]) for n in free)
        expected_shape = (*expected, *layout.image_shape)
        if array_data.shape != expected_shape:
            what = "a plane" if not free else f"a stack over {', '.join(free)}"
            raise ValueError(f"cannot write {os.fspath(path)!r}: expected {what} of shape {expected_shape}, got {array_data.shape}")
        target = np.dtype(layout.dtype)
        if array_data.dtype != target:
            if not np.can_cast(array_data.dtype, target, casting="safe"):
                raise ValueError(f"cannot write {os.fspath(path)!r}: data is {array_data.dtype} but the store holds "
                                 f"{target}; convert it to {target} first")
            array_data = array_data.astype(target)
        self._array(store, layout, values)[index] = array_data

    def load(self, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None, **options: Any) -> np.ndarray:
        if options:
            raise TypeError(f"unknown option(s) {', '.join(sorted(options))} for the zarr backend; valid options: components")
        store, layout, values = self._position(path, components)
        index, _ = self._selection(layout, values)
        return np.asarray(self._array(store, layout, values)[index])

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
            store, layout, values = self._position(path, components)
        except ValueError:
            return False
        index, free = self._selection(layout, values)
        if free:
            raise ValueError(f"exists() asks about one plane; give channel, z_index and timepoint (missing: {', '.join(free)})")
        array = self._array(store, layout, values)
        key = array.metadata.encode_chunk_key((*index, 0, 0))
        r, c = _split_well(values["well"])
        return (store / r / c / str(layout.index_of("site", values["site"])) / "0" / key).exists()

    def list(self, path: str | os.PathLike[str], *, pattern: str | None = None, recursive: bool = True) -> list[str]:
        """The field image groups of the store (``"A/1/0"``), relative to the store."""
        store, _ = split_store_path(path)
        layout = self.layout(store)
        found = []
        for well in layout.wells:
            r, c = _split_well(well)
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
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        with self._lock:
            prefix = os.fspath(store)
            self._layouts.pop(prefix, None)
            self._arrays = {k: v for k, v in self._arrays.items() if not k.startswith(prefix + "/")}
