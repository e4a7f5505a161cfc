"""The zarr backend: one OME-Zarr HCS plate store (NGFF 0.5, zarr format 3).

Layout of a store::

    <name>.zarr/                 plate metadata ("ome": {"plate": ...}), plateflow layout
      <row>/<column>/            one group per well ("A/1" is well A01), "ome": {"well": ...}
        <field>/                 one image per site (field 0 is the layout's first site)
          0                      the (t, c, z, y, x) array; one chunk per plane

A store is made in two parts, so that no two processes ever write the same
metadata file:

1. ``create_plate_metadata(store_path, layout)``: the plate, row, well and
   field groups with their NGFF attributes, from what is known before any
   well runs (wells, sites, channels, timepoints, channel names, pixel size).
   ``plateflow.run`` calls it once, in the parent, before the workers start.
2. ``create_well_arrays(store_path, well, z_indices=..., image_shape=...,
   dtype=...)``: the arrays of one well's fields, once the well's last step
   has shown what it makes. Only the process running that well calls it, and
   it writes only inside that well's group.

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
field image groups (``"A/1/0"``) relative to the store.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..._frozen import FrozenDict
from ...plate.model import COMPONENTS, natural_sorted, well_id
from .base import match_name, posix

__all__ = [
    "ZarrBackend",
    "ZarrPlateLayout",
    "create_plate_store",
    "create_plate_metadata",
    "create_well_arrays",
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


def _axes_and_scale(layout: ZarrPlateLayout) -> tuple[list[dict[str, str]], list[float]]:
    space_unit = {"unit": "micrometer"} if layout.pixel_size else {}
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", **space_unit},
        {"name": "y", "type": "space", **space_unit},
        {"name": "x", "type": "space", **space_unit},
    ]
    return axes, [1.0, 1.0, 1.0, layout.pixel_size or 1.0, layout.pixel_size or 1.0]


def _omero(layout: ZarrPlateLayout, dtype: np.dtype | None) -> dict[str, Any]:
    """Channel labels for viewers; the display window needs the dtype, so it waits for the arrays."""
    channels = []
    for c in layout.channels:
        channel: dict[str, Any] = {"label": layout.channel_names.get(c, f"channel {c}"), "color": "FFFFFF", "active": True}
        if dtype is not None:
            top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
            channel["window"] = {"start": 0.0, "end": top, "min": 0.0, "max": top}
        channels.append(channel)
    return {"channels": channels, "rdefs": {"model": "greyscale"}}


def _image_attrs(layout: ZarrPlateLayout, well: str, site: str, dtype: np.dtype | None) -> dict[str, Any]:
    axes, scale = _axes_and_scale(layout)
    return {
        "ome": {
            "version": NGFF_VERSION,
            "multiscales": [{
                "name": f"{well} site {site}",
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            }],
            "omero": _omero(layout, dtype),
        }
    }


def _check_store_path(store_path: str | os.PathLike[str]) -> Path:
    store = Path(store_path)
    if not store.name.endswith(".zarr"):
        raise ValueError(f"store path {store} must end in .zarr")
    return store


def create_plate_metadata(store_path: str | os.PathLike[str], layout: ZarrPlateLayout | Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Create the plate's groups and NGFF metadata (plate, rows, wells, fields), without arrays.

    The store is built beside its place and renamed into it, so no reader ever
    sees half of it. Calling it again for a store with the same plate-level
    layout is a no-op (so a second process racing to create it is harmless); a
    different one raises ``FileExistsError`` unless ``overwrite=True``.
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

    # Rows in plate order (A ... Z, AA ... AF), not alphabetical: rowIndex places the well on the plate.
    rows = sorted({_split_well(w)[0] for w in layout.wells}, key=lambda row: (len(row), row))
    columns = natural_sorted({_split_well(w)[1] for w in layout.wells})
    store.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{store.name}.", suffix=".part", dir=store.parent))
    try:
        root = zarr.open_group(str(staging), mode="w", zarr_format=3)
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
        dtype = np.dtype(layout.dtype) if layout.dtype is not None else None
        for well in layout.wells:
            r, c = _split_well(well)
            well_group = root.require_group(r).require_group(c)
            images = [{"path": str(i), "acquisition": 0} for i in range(len(layout.sites))]
            well_group.attrs.update({"ome": {"version": NGFF_VERSION, "well": {"images": images}}})
            for i, site in enumerate(layout.sites):
                well_group.create_group(str(i)).attrs.update(_image_attrs(layout, well, site, dtype))
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


def create_well_arrays(
    store_path: str | os.PathLike[str],
    well: str,
    *,
    z_indices: Sequence[str],
    image_shape: Sequence[int],
    dtype: Any,
    overwrite: bool = True,
) -> ZarrPlateLayout:
    """Create the (t, c, z, y, x) array of every field of ``well`` and return the well's full layout.

    Writes only inside the well's own group (its arrays, its ``zarr.json`` and
    its fields'), so processes creating different wells never meet. With
    ``overwrite`` (the default) existing arrays of the well are replaced, which
    is what a well that runs again wants; otherwise a different existing
    layout raises ``FileExistsError`` and the same one is a no-op.
    """
    import zarr

    store = _check_store_path(store_path)
    plate = _read_layout(store)
    well = well_id(well)
    if well not in plate.wells:
        raise ValueError(f"well {well!r} is not in the store's layout; valid wells: {', '.join(plate.wells)}")
    layout = plate.with_arrays(z_indices, image_shape, dtype)
    r, c = _split_well(well)
    well_path = store / r / c
    existing = _read_well_arrays(well_path)
    if existing is not None and not overwrite:
        if replace(plate, **existing) == layout:
            return layout
        raise FileExistsError(f"well {well} of {store} has arrays of another layout ({existing}); pass overwrite=True to replace them")
    assert layout.z_indices is not None and layout.image_shape is not None and layout.dtype is not None
    ny, nx = layout.image_shape
    shape = (len(layout.timepoints), len(layout.channels), len(layout.z_indices), ny, nx)
    np_dtype = np.dtype(layout.dtype)
    well_group = zarr.open_group(str(well_path), mode="r+", zarr_format=3)
    for i, site in enumerate(layout.sites):
        image = well_group.require_group(str(i))
        image.attrs.update(_image_attrs(layout, well, site, np_dtype))
        image.create_array(
            "0",
            shape=shape,
            chunks=(1, 1, 1, ny, nx),
            dtype=np_dtype,
            fill_value=0,
            compressors=_compressors(layout.compressor),
            dimension_names=list(_AXES),
            overwrite=True,
        )
    # Recorded last: a well whose arrays are only partly made reads as having none.
    arrays = {"z_indices": list(layout.z_indices), "image_shape": list(layout.image_shape), "dtype": layout.dtype}
    well_group.attrs.update({_LAYOUT_KEY: {"arrays": arrays}})
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
            _read_well_arrays(store.joinpath(*_split_well(w))) is not None for w in layout.wells
        ):
            return store
        raise FileExistsError(f"{store} exists with a different layout; pass overwrite=True to replace it")
    create_plate_metadata(store, layout, overwrite=overwrite)
    assert layout.z_indices is not None and layout.image_shape is not None and layout.dtype is not None
    for well in layout.wells:
        create_well_arrays(store, well, z_indices=layout.z_indices, image_shape=layout.image_shape, dtype=layout.dtype)
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


def _read_well_arrays(well_path: Path) -> dict[str, Any] | None:
    """The arrays' part recorded in a well group, or ``None`` when its arrays are not created."""
    try:
        meta = json.loads((well_path / "zarr.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    arrays = meta.get("attributes", {}).get(_LAYOUT_KEY, {}).get("arrays")
    if not isinstance(arrays, dict):
        return None
    return {"z_indices": tuple(arrays["z_indices"]), "image_shape": tuple(arrays["image_shape"]), "dtype": arrays["dtype"]}


class ZarrBackend:
    """Planes in OME-Zarr plate stores; see the module docstring for the path convention."""

    name: ClassVar[str] = "zarr"
    is_local: ClassVar[bool] = True

    def __init__(self) -> None:
        self._layouts: dict[str, tuple[tuple[int, int], ZarrPlateLayout]] = {}
        self._wells: dict[str, tuple[tuple[int, int], ZarrPlateLayout]] = {}
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
            self._forget(key)
            cached = (stamp, _read_layout(store_path))
            with self._lock:
                self._layouts[key] = cached
        return cached[1]

    def well_layout(self, store: str | os.PathLike[str], well: str) -> ZarrPlateLayout:
        """The full layout of one well (plate layout plus its arrays' part).

        Raises ``FileNotFoundError`` when the well's arrays have not been created.
        """
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
            raise FileNotFoundError(f"well {well} has no group in {store_path}; the store was not made by create_plate_metadata") from None
        with self._lock:
            cached = self._wells.get(key)
        if cached is None or cached[0] != stamp:
            arrays = _read_well_arrays(well_path)
            if arrays is None:
                if not plate.has_arrays:
                    raise FileNotFoundError(f"well {well} has no arrays in {store_path} yet (create them with create_well_arrays)")
                layout = plate
            else:
                layout = replace(plate, **arrays)
            with self._lock:
                self._arrays = {k: v for k, v in self._arrays.items() if not k.startswith(key + "/")}
                self._wells[key] = cached = (stamp, layout)
        return cached[1]

    def create_well_arrays(self, store: str | os.PathLike[str], well: str, *, z_indices: Sequence[str], image_shape: Sequence[int], dtype: Any) -> ZarrPlateLayout:
        """:func:`create_well_arrays`, forgetting what this backend had cached for the well."""
        layout = create_well_arrays(store, well, z_indices=z_indices, image_shape=image_shape, dtype=dtype)
        r, c = _split_well(well_id(well))
        self._forget(os.fspath(Path(store) / r / c))
        return layout

    def _position(self, path: str | os.PathLike[str], components: Mapping[str, Any] | None) -> tuple[Path, ZarrPlateLayout, dict[str, str]]:
        store, inner = split_store_path(path)
        plate = self.layout(store)
        values: dict[str, str] = {}
        if components is None:
            if not inner:
                raise ValueError(f"{os.fspath(path)!r} names the whole store; give components=... or a relative image path after the store")
            if plate.microscope is None:
                raise ValueError(f"the store {store} records no microscope format, so {inner!r} cannot be parsed; pass components=...")
            from ...plate.index import HANDLERS

            parsed = HANDLERS[plate.microscope]().parse_path(inner)
            if parsed is None:
                raise ValueError(f"{inner!r} is not an image name of the {plate.microscope} format; pass components=...")
            values = parsed.components
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
        layout = self.well_layout(store, values["well"])
        assert layout.z_indices is not None
        for name, choices in (("site", layout.sites), ("channel", layout.channels), ("z_index", layout.z_indices), ("timepoint", layout.timepoints)):
            if name not in values and len(choices) == 1:
                values[name] = choices[0]
        if "site" not in values:
            raise ValueError(f"components must give the well and the site for {os.fspath(path)!r}; got {values}")
        return store, layout, values

    def _array(self, store: Path, layout: ZarrPlateLayout, values: Mapping[str, str]) -> Any:
        import zarr

        r, c = _split_well(values["well"])
        field_index = layout.index_of("site", values["site"])
        array_path = f"{os.fspath(store)}/{r}/{c}/{field_index}/0"
        with self._lock:
            array = self._arrays.get(array_path)
        if array is None:
            # Store every written plane, all-zero ones too, so exists() tells a written plane
            # from one never written (zarr skips chunks equal to the fill value by default).
            array = zarr.open_array(array_path, mode="r+", zarr_format=3).with_config({"write_empty_chunks": True})
            with self._lock:
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
        assert layout.z_indices is not None and layout.image_shape is not None and layout.dtype is not None
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
        except (ValueError, FileNotFoundError):
            return False
        index, free = self._selection(layout, values)
        if free:
            raise ValueError(f"exists() asks about one plane; give channel, z_index and timepoint (missing: {', '.join(free)})")
        array = self._array(store, layout, values)
        key = array.metadata.encode_chunk_key((*index, 0, 0))
        r, c = _split_well(values["well"])
        return (store / r / c / str(layout.index_of("site", values["site"])) / "0" / key).exists()

    def has_array(self, path: str | os.PathLike[str], *, components: Mapping[str, Any] | None = None) -> bool:
        """Whether the array that holds a plane exists (its planes may not all be written yet)."""
        try:
            store, layout, values = self._position(path, components)
        except (ValueError, FileNotFoundError):
            return False
        r, c = _split_well(values["well"])
        return (store / r / c / str(layout.index_of("site", values["site"])) / "0" / "zarr.json").is_file()

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
        self._forget(os.fspath(store))
