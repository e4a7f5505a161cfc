"""One coordinate frame for every layer the builder shows.

The plate reader stacks a plate's images along the components that have more
than one value (``timepoint, well, site, z_index``, outermost first; see
``_reader.STACKED_COMPONENTS``), each step of a slider being one value. Every
other layer the builder makes (the tuning outputs of one well and site, the
outputs of a plate run, one well of them) is placed in that same frame:

- a component the layer holds one value of (the tuned well, the tuned site)
  becomes an axis of length 1, translated to that value's index, so the layer
  shows only where the sliders stand on that well and site;
- a component the layer holds every value of (Z planes a step kept) stays an axis;
- a component the layer does not resolve (a Z projection has one plane for every
  Z) is broadcast over the frame's values, so the projection shows at every Z.

:class:`PlateFrame` also moves the viewer's sliders to a well and site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from plateflow.plate import Plate

from ._reader import STACKED_COMPONENTS

__all__ = ["PlateFrame"]


@dataclass(frozen=True)
class PlateFrame:
    """The stacked axes of a plate's layers.

    Attributes:
        axes: the stacked components, outermost first (those with more than one value).
        values: every component's values in plate order.
        pixel_size: the Y/X scale in micrometres (``None``: pixels).
    """

    axes: tuple[str, ...]
    values: Mapping[str, tuple[str, ...]]
    pixel_size: float | None = None

    @classmethod
    def from_plate(cls, plate: Plate) -> "PlateFrame":
        components = plate.components
        axes = tuple(c for c in STACKED_COMPONENTS if len(components[c]) > 1)
        return cls(axes, {c: tuple(v) for c, v in components.items()}, plate.pixel_size)

    @property
    def axis_labels(self) -> tuple[str, ...]:
        return (*self.axes, "y", "x")

    def scale(self) -> tuple[float, ...]:
        size = self.pixel_size or 1.0
        return (1.0,) * len(self.axes) + (size, size)

    def index(self, component: str, value: str) -> int:
        """The slider step of ``value`` on ``component``'s axis; ``ValueError`` naming the valid values."""
        values = self.values.get(component, ())
        if value not in values:
            raise ValueError(f"{component} {value!r} is not in the plate; its {component} values: {', '.join(values)}")
        return values.index(value)

    def embed(
        self,
        data: np.ndarray,
        data_axes: Sequence[str],
        fixed: Mapping[str, str],
    ) -> tuple[np.ndarray, tuple[float, ...]]:
        """``data`` (leading axes ``data_axes``, then Y, X) as an array of the frame, and its translate.

        ``fixed`` gives the value of the components the data holds one value of
        (``{"well": "A02", "site": "1"}``). Leading data axes that are not frame
        axes (a ragged stack) keep only their first plane.
        """
        data_axes = list(data_axes)
        while any(axis not in self.axes for axis in data_axes):
            position = next(i for i, axis in enumerate(data_axes) if axis not in self.axes)
            data = np.take(data, 0, axis=position)
            del data_axes[position]
        shape_yx = data.shape[-2:]
        present = [axis for axis in self.axes if axis in data_axes]
        if present != data_axes:  # the data's axes in another order than the frame's
            data = np.transpose(data, (*[data_axes.index(a) for a in present], len(present), len(present) + 1))
        kept = iter(data.shape[: len(present)])
        with_ones: list[int] = []
        target: list[int] = []
        translate: list[float] = []
        for axis in self.axes:
            if axis in present:
                length = next(kept)
                with_ones.append(length)
                target.append(length)
                translate.append(0.0)
            elif axis in fixed:
                with_ones.append(1)
                target.append(1)
                translate.append(float(self.index(axis, fixed[axis])))
            else:  # not resolved by the data: the same plane at every value
                with_ones.append(1)
                target.append(len(self.values[axis]))
                translate.append(0.0)
        placed = data.reshape((*with_ones, *shape_yx))
        if target != with_ones:
            placed = np.broadcast_to(placed, (*target, *shape_yx))
        return placed, (*translate, 0.0, 0.0)

    def world_point(self, component: str, value: str) -> tuple[int, float] | None:
        """(viewer axis, world coordinate) of ``value`` on ``component``'s axis; ``None`` when not stacked."""
        if component not in self.axes:
            return None
        return self.axes.index(component), float(self.index(component, value))

    def move_viewer(self, viewer: Any, position: Mapping[str, str]) -> None:
        """Move the viewer's sliders to ``position`` (``{"well": "A02", "site": "1"}``)."""
        dims = viewer.dims
        if dims.ndim != len(self.axes) + 2:
            return  # other layers set the frame (or no layer yet): the axes would not line up
        for component, value in position.items():
            point = self.world_point(component, value)
            if point is not None:
                dims.set_point(point[0], point[1])


def frame_layer_data(
    plate: Plate,
    frame: PlateFrame,
    *,
    channel_names: Mapping[str, str],
    channel_order: Sequence[str],
    well: str | None = None,
) -> list[tuple[Any, dict[str, Any]]]:
    """``(lazy data, layer options)`` per channel of ``plate`` (a run's output folder), in ``frame``.

    With ``well`` the layer holds that well only (a length-1 well axis at its
    place). A component the outputs have one value of where the frame has
    several (the one plane of a Z projection) is broadcast over the frame's
    values; an image the outputs lack (a well not run) reads as zeros.
    """
    import dask.array as da
    import tifffile

    from ._reader import channel_colormap

    components = plate.components
    shape_yx = tuple(plate.image_shape)
    dtype = np.dtype(plate.dtype)
    collapsed = {c for c in frame.axes if c in ("z_index", "timepoint") and len(components[c]) == 1}
    by_key = {(f.channel, *(f.component(c) for c in frame.axes if c not in collapsed)): f.path for f in plate.files}
    axis_values = [(well,) if c == "well" and well is not None else frame.values[c] for c in frame.axes]
    translate = tuple(float(frame.index("well", well)) if c == "well" and well is not None else 0.0 for c in frame.axes)

    def read(relpath: str | None) -> np.ndarray:
        if relpath is None:
            return np.zeros(shape_yx, dtype=dtype)
        return np.asarray(tifffile.imread(plate.path_of(relpath)), dtype=dtype).reshape(shape_yx)

    layers = []
    for channel in components["channel"]:

        def read_block(block_info: dict | None = None, *, _channel: str = channel) -> np.ndarray:
            location = block_info[None]["chunk-location"] if block_info else (0,) * len(axis_values)
            values = [v[i] for v, i in zip(axis_values, location[: len(axis_values)])]
            key = (_channel, *(value for c, value in zip(frame.axes, values) if c not in collapsed))
            return read(by_key.get(key)).reshape((1,) * len(axis_values) + shape_yx)

        chunks = tuple((1,) * len(v) for v in axis_values) + tuple((n,) for n in shape_yx)
        data = da.map_blocks(read_block, dtype=dtype, chunks=chunks, meta=np.empty((0,) * len(chunks), dtype=dtype))
        name = channel_names.get(channel) or f"channel {channel}"
        position = list(channel_order).index(channel) if channel in channel_order else len(channel_order)
        options: dict[str, Any] = {
            "name": name,
            "colormap": channel_colormap(name, position),
            "scale": frame.scale(),
            "translate": (*translate, 0.0, 0.0),
            "axis_labels": frame.axis_labels,
            "metadata": {"plateflow_outputs": str(plate.root), "plateflow_channel": channel},
        }
        if frame.pixel_size:
            options["units"] = ("pixel",) * len(frame.axes) + ("micrometer", "micrometer")
        layers.append((data, options))
    return layers
