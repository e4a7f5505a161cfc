"""Per-step layers while tuning: each shown step's output on the sample site, kept up to date.

:class:`StepVisualizer` receives :class:`~plateflow.execution.sample.SampleStepOutput`
objects on the main thread (the runner's worker yields them; see ``_runner``)
and turns them into layers:

- image planes become one **Image** layer per channel, named ``"2 top-hat"``
  (step number and name), or ``"2 top-hat (DAPI)"`` when the step gives several
  channels. Z planes and timepoints with more than one value are stacked as
  extra dimensions. Channel names, colormaps and the pixel scale follow the
  plate metadata, as the plate reader does;
- integer outputs of label-making functions (registry categories
  ``segmentation``, ``label``, ``threshold``, ``measurement``) become **Labels** layers;
- point-like special outputs (tables with ``y``/``x`` or ``centroid_y``/``centroid_x``
  columns, ``positions``-like lists of ``(y, x)``) become **Points** layers;
- tables go to a table view with a choice of tables (the builder shows it as its
  "Tables" tab; without a place for it, the "plateflow tables" dock).

Which steps are shown: those marked ``visualize`` (the compiled context's
``required_visualizers``) and the last step; with ``show_all`` every step.
A layer is created once; later outputs only replace its ``data`` (and its
name when the step is renamed or renumbered), so the contrast limits,
colormap and visibility the user set stay. When a finished run did not show
a step any more (unmarked, removed, "show all" switched off), its layers are
removed. Layers the user deleted are created again on the next output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plateflow.library import registry
from plateflow.plate import natural_key

from ._frame import PlateFrame
from ._reader import channel_colormap
from ._table import TableView

if TYPE_CHECKING:
    from plateflow.execution.sample import SampleStepOutput, SpecialOutput
    from plateflow.plate import ImageFile, Plate

__all__ = ["StepVisualizer", "is_label_output", "point_coordinates", "LABEL_CATEGORIES", "TABLES_DOCK_NAME"]

#: Registry categories whose integer outputs are label images (or masks).
LABEL_CATEGORIES = frozenset({"segmentation", "label", "labels", "threshold", "measurement"})
#: Components stacked as extra layer dimensions, outermost first.
_STACKED = ("timepoint", "z_index")
#: (y, x) column pairs that make a table point-like, tried in this order.
_COORDINATE_COLUMNS = (("centroid_y", "centroid_x"), ("y", "x"), ("centroid-0", "centroid-1"), ("row", "column"))
TABLES_DOCK_NAME = "plateflow tables"


def is_label_output(functions: Sequence[str], dtype: np.dtype) -> bool:
    """Whether a step's output of ``dtype`` made by ``functions`` (registry names) is a label image."""
    if np.dtype(dtype).kind not in "iu":
        return False
    for name in functions:
        if name in registry.names():
            if registry.info(name).category in LABEL_CATEGORIES:
                return True
        elif "label" in name.lower() or "segment" in name.lower():
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))


def point_coordinates(special: "SpecialOutput") -> np.ndarray | None:
    """``(N, 2)`` y/x coordinates of a point-like special output, or ``None``."""
    if special.rows is not None:
        rows = special.rows
        for y_column, x_column in _COORDINATE_COLUMNS:
            if rows and all(_is_number(row.get(y_column)) and _is_number(row.get(x_column)) for row in rows):
                return np.array([[float(row[y_column]), float(row[x_column])] for row in rows], dtype=np.float64)
        return None
    value = special.value
    if isinstance(value, np.ndarray):
        if value.ndim == 2 and value.shape[1] == 2 and value.dtype.kind in "iuf":
            return value.astype(np.float64)
        return None
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(item, (list, tuple, np.ndarray)) and len(item) == 2 and all(_is_number(v) for v in item) for item in value
    ):
        return np.array([[float(item[0]), float(item[1])] for item in value], dtype=np.float64)
    return None


def _merged_points(groups: Sequence["SpecialOutput"]) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The points of every group of one special output (each channel's, for a per-channel step),
    with their table's columns as features (``None`` when the output is not point-like)."""
    coordinates: list[np.ndarray] = []
    rows: list[Mapping[str, Any]] = []
    for special in groups:
        found = point_coordinates(special)
        if found is None:
            return None
        coordinates.append(found)
        if special.rows is not None:
            rows.extend(special.rows)
        else:
            rows.extend({**special.fixed} for _ in range(len(found)))
    points = np.concatenate(coordinates) if coordinates else np.zeros((0, 2))
    columns = list(dict.fromkeys(column for row in rows for column in row))
    features: dict[str, np.ndarray] = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if all(_is_number(v) for v in values):
            features[column] = np.array([float(v) for v in values])
        else:
            features[column] = np.array(["" if v is None else str(v) for v in values], dtype=object)
    return points, features


@dataclass(frozen=True)
class _ChannelStack:
    channel: str
    data: np.ndarray
    axes: tuple[str, ...]  # labels of the leading (stacked) axes


def _channel_stacks(images: Sequence["ImageFile"], planes: Sequence[np.ndarray]) -> list[_ChannelStack]:
    by_channel: dict[str, list[tuple["ImageFile", np.ndarray]]] = {}
    for image, plane in zip(images, planes):
        by_channel.setdefault(image.channel, []).append((image, plane))
    stacks = []
    for channel in sorted(by_channel, key=natural_key):
        items = by_channel[channel]
        shape = items[0][1].shape
        items = [(image, plane) for image, plane in items if plane.shape == shape]  # one shape per layer
        values = {c: sorted({image.component(c) for image, _ in items}, key=natural_key) for c in _STACKED}
        stacked = [c for c in _STACKED if len(values[c]) > 1]
        items.sort(key=lambda item: tuple(natural_key(item[0].component(c)) for c in _STACKED))
        data = np.stack([plane for _, plane in items])
        sizes = [len(values[c]) for c in stacked]
        if math.prod(sizes) == len(items):
            data = data.reshape((*sizes, *shape))
            axes = tuple(stacked)
        else:  # a ragged set of planes: one axis, in component order
            axes = ("plane",)
        stacks.append(_ChannelStack(channel, data, axes))
    return stacks


def _field_stacks(specials: Sequence["SpecialOutput"]) -> list[_ChannelStack]:
    """Image-like special outputs of a step with no planes (a plate step's estimate), one stack per channel.

    An illumination value (2, Y, X) is shown by its flat-field ``[0]``; a (Y, X) array as it is;
    one per Z plane (and timepoint) of the channel, stacked. Small values (percentiles, tables)
    are not images and are left out.
    """
    by_channel: dict[str, list[tuple[tuple[Any, ...], np.ndarray]]] = {}
    for special in specials:
        value = special.value
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf" or value.ndim not in (2, 3) or min(value.shape[-2:]) < 8:
            continue
        image = np.asarray(value[0] if value.ndim == 3 else value, dtype=np.float32)
        order = tuple(natural_key(str(special.fixed.get(c, ""))) for c in ("timepoint", "z_index"))
        by_channel.setdefault(str(special.fixed.get("channel", "1")), []).append((order, image))
    stacks = []
    for channel in sorted(by_channel, key=natural_key):
        items = sorted(by_channel[channel], key=lambda item: item[0])
        shape = items[0][1].shape
        images = [image for _, image in items if image.shape == shape]
        if len(images) == 1:
            stacks.append(_ChannelStack(channel, images[0], ()))
        else:
            stacks.append(_ChannelStack(channel, np.stack(images), ("plane",)))
    return stacks


@dataclass(frozen=True)
class PreparedOutput:
    """An output's layer data, made off the main thread: its channel stacks and its point sets.

    ``already_shown``: the layers show this very output already (a reused step of a rerun), so
    nothing was stacked; :meth:`StepVisualizer.show` only keeps its layers and their names.
    """

    stacks: tuple[_ChannelStack, ...]
    points: Mapping[str, tuple[np.ndarray, dict[str, np.ndarray]]]
    already_shown: bool = False


_ALREADY_SHOWN = PreparedOutput((), {}, already_shown=True)


class StepVisualizer:
    """Creates and updates the layers of a tuning run; call it on the main thread only.

    Args:
        viewer: the napari viewer.
    """

    def __init__(self, viewer: Any, place_tables: Any = None) -> None:
        self.viewer = viewer
        #: called once with the table view when the first table comes (``None``: dock it in the viewer)
        self.place_tables = place_tables
        self.show_all = False
        self.closed = False
        self._layers: dict[tuple[str, str, str], Any] = {}  # (step id, kind, part) -> layer
        self._shown: dict[tuple[str, str, str], str] = {}  # key -> fingerprint of the data it shows
        # (fingerprint, well, site) of an output -> (step id, its layer keys with their name suffixes), for the
        # outputs whose layers all show them: a rerun that reuses the step skips stacking its planes again
        self._complete: dict[tuple[str, str, str], tuple[str, tuple[tuple[tuple[str, str, str], str], ...]]] = {}
        self._touched: set[tuple[str, str, str]] = set()
        self._table_names: dict[str, str] = {}  # table title -> step id
        self._touched_tables: set[str] = set()
        self._tables: TableView | None = None
        self._channel_names: dict[str, str] = {}
        self._channel_order: tuple[str, ...] = ()
        self._pixel_size: float | None = None
        self.frame: PlateFrame | None = None

    # -- plate ------------------------------------------------------------------------
    def set_plate(self, plate: "Plate | None") -> None:
        """Take channel names, order and pixel size from ``plate``; forget the layers of the old one."""
        self.remove_all()
        if plate is None:
            self._channel_names, self._channel_order, self._pixel_size = {}, (), None
            self.frame = None
            return
        self.frame = PlateFrame.from_plate(plate)
        self._channel_names = dict(plate.channel_names)
        self._channel_order = tuple(plate.components["channel"])
        self._pixel_size = plate.pixel_size

    def channel_display(self, channel: str) -> tuple[str, str]:
        """(name, colormap) of a channel, as the plate reader names and colours it."""
        name = self._channel_names.get(channel) or f"channel {channel}"
        position = self._channel_order.index(channel) if channel in self._channel_order else len(self._channel_order)
        return name, channel_colormap(name, position)

    # -- runs -------------------------------------------------------------------------
    def wants(self, output: "SampleStepOutput") -> bool:
        return self.show_all or output.visualize or output.is_last

    def begin_run(self) -> None:
        self._touched = set()
        self._touched_tables = set()

    def end_run(self, completed: bool) -> None:
        """After a run that reached its end, remove the layers and tables it did not show."""
        if self.closed or not completed:
            return
        for key in [k for k in self._layers if k not in self._touched]:
            self._remove(key)
        if self._tables is not None:
            stale = [name for name in self._table_names if name not in self._touched_tables]
            self._tables.remove_tables(stale)
            for name in stale:
                del self._table_names[name]

    def prepare(self, output: "SampleStepOutput") -> "PreparedOutput | None":
        """The numpy work of showing ``output`` (stacking its planes, gathering its points); safe in any
        thread, so a worker can do it and the main thread only updates the layers."""
        if not self.wants(output):
            return None
        if (output.fingerprint, output.well, output.site) in self._complete:
            return _ALREADY_SHOWN  # show() checks the layers are still there, and stacks them if not
        return self._build(output)

    def _build(self, output: "SampleStepOutput") -> PreparedOutput:
        stacks = _channel_stacks(output.images, output.planes) if output.planes else _field_stacks(output.specials)
        by_name: dict[str, list["SpecialOutput"]] = {}
        for special in output.specials:
            by_name.setdefault(special.name, []).append(special)
        points = {name: found for name, groups in by_name.items() if (found := _merged_points(groups)) is not None}
        return PreparedOutput(tuple(stacks), points)

    def show(self, output: "SampleStepOutput", step_id: str, prepared: "PreparedOutput | None" = None) -> list[Any]:
        """Show one step's output under the model step ``step_id``; returns the layers it touched.

        ``prepared`` is what :meth:`prepare` made of it (in a worker); without it the work is done here.
        """
        if self.closed or not self.wants(output):
            return []
        title = f"{output.step_index + 1} {output.step_name}"
        complete_key = (output.fingerprint, output.well, output.site)
        if prepared is None or prepared.already_shown:
            kept = self._keep_shown(complete_key, step_id, title)
            if kept is not None:
                for table, rows in output.tables.items():
                    self._put_table(f"{title}: {table}", rows, step_id)
                return kept
            prepared = self._build(output)  # a layer was deleted (or this is a first show): make its data here
        touched = []
        named: list[tuple[tuple[str, str, str], str]] = []
        place = {"well": output.well, "site": output.site}
        stacks = prepared.stacks
        for stack in stacks:
            suffix = f" ({self.channel_display(stack.channel)[0]})" if len(stacks) > 1 else ""
            labels = is_label_output(output.functions, stack.data.dtype)
            key = (step_id, "labels" if labels else "image", stack.channel)
            touched.append(
                self._put_image(
                    key, title + suffix, stack, labels, f"{output.fingerprint}:{stack.channel}", step_id, place, output.is_last or output.visualize
                )
            )
            named.append((key, suffix))
        for special_name, (coordinates, features) in prepared.points.items():
            key = (step_id, "points", special_name)
            touched.append(
                self._put_points(key, f"{title}: {special_name}", coordinates, features, f"{output.fingerprint}:{special_name}", step_id, place)
            )
            named.append((key, f": {special_name}"))
        for table, rows in output.tables.items():
            self._put_table(f"{title}: {table}", rows, step_id)
        self._order_layers()
        for old_key in [k for k, (sid, _) in self._complete.items() if sid == step_id]:
            del self._complete[old_key]  # the step shows this output now, not the one it showed before
        self._complete[complete_key] = (step_id, tuple(named))
        return touched

    def _keep_shown(self, complete_key: tuple[str, str, str], step_id: str, title: str) -> list[Any] | None:
        """The layers of an output they show already (renamed to ``title`` when the step was renamed or
        renumbered), or ``None`` when one of them is gone or shows something else."""
        record = self._complete.get(complete_key)
        if record is None or record[0] != step_id:
            return None
        kept = []
        for key, suffix in record[1]:
            layer = self._alive(key)
            if layer is None or not self._shown.get(key, "").startswith(complete_key[0] + ":"):
                del self._complete[complete_key]
                return None
            kept.append((key, layer, title + suffix))
        for key, layer, name in kept:
            self._touched.add(key)
            if layer.name != name:
                layer.name = name
        return [layer for _, layer, _ in kept]

    def _order_layers(self) -> None:
        """Keep labels and points above the images, so additive image layers never wash the labels out."""
        layers = self.viewer.layers
        on_top = [layer for layer in layers if layer.metadata.get("plateflow_step") and layer.__class__.__name__ in ("Labels", "Points")]
        if not on_top:
            return
        last = len(layers) - 1
        positions = [layers.index(layer) for layer in on_top]
        if positions == list(range(last - len(on_top) + 1, last + 1)):
            return
        for layer in on_top:
            layers.move(layers.index(layer), len(layers))

    def forget_steps_except(self, step_ids: Sequence[str]) -> None:
        """Remove the layers of steps not in ``step_ids`` (they were removed, or another pipeline was loaded)."""
        kept = set(step_ids)
        for key in [k for k in self._layers if k[0] not in kept]:
            self._remove(key)

    def remove_all(self) -> None:
        for key in list(self._layers):
            self._remove(key)
        self._complete.clear()
        if self._tables is not None:
            self._tables.set_tables({})
        self._table_names.clear()

    def layer_for(self, step_id: str, part: str | None = None) -> Any:
        """The image or labels layer of a step (its channel ``part``, or the first)."""
        for (sid, kind, key_part), layer in self._layers.items():
            if sid == step_id and kind in ("image", "labels") and (part is None or key_part == part):
                return layer
        return None

    @property
    def tables_view(self) -> TableView | None:
        return self._tables

    # -- layers -----------------------------------------------------------------------
    def _alive(self, key: tuple[str, str, str]) -> Any:
        layer = self._layers.get(key)
        if layer is not None and layer not in self.viewer.layers:
            self._layers.pop(key, None)
            self._shown.pop(key, None)
            return None
        return layer

    def _scale(self, leading: int) -> tuple[float, ...]:
        size = self._pixel_size or 1.0
        return (1.0,) * leading + (size, size)

    def _placed(self, data: np.ndarray, axes: Sequence[str], place: Mapping[str, str]) -> tuple[np.ndarray, dict[str, Any]]:
        """The data in the plate's frame, with the layer options that place it there."""
        if self.frame is None:
            options: dict[str, Any] = {"scale": self._scale(len(axes)), "axis_labels": (*axes, "y", "x")}
            return data, options
        placed, translate = self.frame.embed(data, axes, place)
        return placed, {"scale": self.frame.scale(), "translate": translate, "axis_labels": self.frame.axis_labels}

    def _put_image(
        self,
        key: tuple[str, str, str],
        name: str,
        stack: _ChannelStack,
        labels: bool,
        fingerprint: str,
        step_id: str,
        place: Mapping[str, str],
        final: bool,
    ) -> Any:
        self._touched.add(key)
        layer = self._alive(key)
        data, placement = self._placed(stack.data, stack.axes, place)
        if layer is not None and layer.ndim != data.ndim:
            self._remove(key)  # the output gained or lost a dimension: start the layer again
            layer = None
        if layer is None:
            channel_name, colormap = self.channel_display(stack.channel)
            options: dict[str, Any] = {
                "name": name,
                **placement,
                "metadata": {"plateflow_step": step_id, "plateflow_channel": stack.channel},
            }
            if self._pixel_size:
                options["units"] = ("pixel",) * (data.ndim - 2) + ("micrometer", "micrometer")
            if labels:
                layer = self.viewer.add_labels(data, **options)
            else:
                # An intermediate step's image starts hidden: it is one click away, and the last
                # step's layers stay readable over the plate's own image.
                layer = self.viewer.add_image(data, colormap=colormap, blending="additive", visible=final, **options)
            self._layers[key] = layer
        else:
            if self._shown.get(key) != fingerprint:
                layer.data = data
            if tuple(layer.translate) != tuple(placement.get("translate", layer.translate)):
                layer.translate = placement["translate"]
            if layer.name != name:
                layer.name = name
        self._shown[key] = fingerprint
        return layer

    def _put_points(
        self,
        key: tuple[str, str, str],
        name: str,
        coordinates: np.ndarray,
        features: dict[str, np.ndarray],
        fingerprint: str,
        step_id: str,
        place: Mapping[str, str],
    ) -> Any:
        self._touched.add(key)
        layer = self._alive(key)
        coordinates, features, placement = self._placed_points(coordinates, features, place)
        if layer is not None and layer.ndim != coordinates.shape[1]:
            self._remove(key)
            layer = None
        if layer is None:
            options: dict[str, Any] = {"units": ("pixel",) * (coordinates.shape[1] - 2) + ("micrometer", "micrometer")} if self._pixel_size else {}
            layer = self.viewer.add_points(
                coordinates,
                name=name,
                size=6,
                face_color="yellow",
                border_color="black",
                features=features,
                metadata={"plateflow_step": step_id},
                **placement,
                **options,
            )
            self._layers[key] = layer
        else:
            if self._shown.get(key) != fingerprint:
                layer.data = coordinates
                layer.features = features
            if layer.name != name:
                layer.name = name
        self._shown[key] = fingerprint
        return layer

    def _placed_points(
        self, coordinates: np.ndarray, features: dict[str, np.ndarray], place: Mapping[str, str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
        """Points in the plate's frame: the tuned well and site fixed, repeated at every Z (and timepoint)."""
        if self.frame is None:
            return coordinates, features, {"scale": self._scale(0)}
        frame = self.frame
        leading: list[list[float]] = []
        for axis in frame.axes:
            if axis in place:
                leading.append([float(frame.index(axis, place[axis]))])
            else:
                leading.append([float(i) for i in range(len(frame.values[axis]))])
        grid = np.array(np.meshgrid(*leading, indexing="ij")).reshape(len(frame.axes), -1).T if frame.axes else np.zeros((1, 0))
        repeats = len(grid)
        placed = np.hstack([np.repeat(grid, len(coordinates), axis=0), np.tile(coordinates, (repeats, 1))])
        repeated = {column: np.tile(values, repeats) for column, values in features.items()}
        return placed, repeated, {"scale": frame.scale(), "axis_labels": frame.axis_labels}

    def _put_table(self, title: str, rows: Sequence[Mapping[str, Any]], step_id: str) -> None:
        if self._tables is None:
            self._tables = TableView()
            if self.place_tables is not None:
                self.place_tables(self._tables)
            else:
                self.viewer.window.add_dock_widget(self._tables, name=TABLES_DOCK_NAME, area="right", tabify=True)
        for old, sid in list(self._table_names.items()):
            if sid == step_id and old != title and old.split(": ", 1)[-1] == title.split(": ", 1)[-1]:
                self._tables.remove_tables([old])  # the step was renamed or renumbered
                del self._table_names[old]
        self._table_names[title] = step_id
        self._touched_tables.add(title)
        if self._tables.tables.get(title) != list(rows):
            tables = dict(self._tables.tables)
            tables[title] = list(rows)  # the other tables keep their lists, so the view redraws only if this one is shown
            self._tables.set_tables(tables)

    def _remove(self, key: tuple[str, str, str]) -> None:
        layer = self._layers.pop(key, None)
        self._shown.pop(key, None)
        for complete_key in [k for k, (_, named) in self._complete.items() if any(key == named_key for named_key, _ in named)]:
            del self._complete[complete_key]
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
