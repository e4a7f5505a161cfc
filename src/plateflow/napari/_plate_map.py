"""The plate map: one cell per well, coloured by a measurement aggregated per well.

The grid is the plate's own layout when its metadata says it (an ImageXpress
``.HTD`` file's ``XWells``/``YWells``, an Opera Phenix index's
``PlateRows``/``PlateColumns``), otherwise the smallest screening plate (96,
384 or 1536 wells) that holds every well. The measurement is a numeric column of one of
the run's tables (``object_counts: object_count``) and the aggregation over a
well's rows is chosen beside it (sum, mean, median, min, max, or the number of
rows). Wells without a value are grey; a colour bar shows the range. Clicking
a well emits ``well_clicked(well)`` (the run panel opens its outputs as layers).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qtpy.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QLinearGradient, QPainter, QPen
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from plateflow._naming import row_letters, well_id, well_position

__all__ = ["PlateMapWidget", "PlateMapCanvas", "plate_grid", "plate_layout", "numeric_columns", "aggregate_by_well", "AGGREGATIONS"]

#: (rows, columns) of the screening plates, smallest first.
_STANDARD_PLATES: tuple[tuple[int, int], ...] = ((8, 12), (16, 24), (32, 48))
#: Columns that locate a row rather than measure something.
_LOCATION_COLUMNS = frozenset({"well", "site", "channel", "z_index", "timepoint", "slice", "label"})

AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "mean": statistics.fmean,
    "median": statistics.median,
    "min": min,
    "max": max,
    "rows": lambda values: float(len(values)),
}

# viridis at 0, 0.25, 0.5, 0.75 and 1.
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_NO_VALUE = QColor("#d0d0d0")


def _well_position(well: str) -> tuple[int, int] | None:
    """0-based (row, column) of ``A01``-style ids (``AA01`` is row 27), ``None`` for other names."""
    try:
        row, column = well_position(well)
    except ValueError:
        return None
    return row - 1, column - 1


def plate_layout(plate: Any) -> tuple[int, int] | None:
    """(rows, columns) the plate's metadata file gives, or ``None`` when it says nothing."""
    for relpath in getattr(plate, "metadata_files", ()) or ():
        try:
            text = Path(plate.path_of(relpath)).read_text(errors="replace")
        except OSError:
            continue
        if relpath.lower().endswith(".htd"):
            from plateflow.plate.imagexpress import parse_htd

            try:
                fields = parse_htd(text)
            except ValueError:
                continue
            if fields.get("XWells") and fields.get("YWells"):
                return int(fields["YWells"][0]), int(fields["XWells"][0])
        else:
            rows = re.search(r"<PlateRows>(\d+)</PlateRows>", text)
            columns = re.search(r"<PlateColumns>(\d+)</PlateColumns>", text)
            if rows and columns:
                return int(rows.group(1)), int(columns.group(1))
    return None


def plate_grid(wells: Sequence[str], layout: tuple[int, int] | None = None) -> tuple[int, int]:
    """(rows, columns) of the plate: ``layout`` (from its metadata) when it holds ``wells``, else the
    smallest screening plate that does."""
    positions = [p for p in map(_well_position, wells) if p is not None]
    rows = max((r for r, _ in positions), default=0) + 1
    columns = max((c for _, c in positions), default=0) + 1
    if layout is not None and rows <= layout[0] and columns <= layout[1]:
        return layout
    for size in _STANDARD_PLATES:
        if rows <= size[0] and columns <= size[1]:
            return size
    return rows, columns


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def numeric_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Columns (outside the location columns) whose values are all numbers."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update((str(k), None) for k in row)
    found = []
    for column in columns:
        if column in _LOCATION_COLUMNS:
            continue
        values = [row.get(column) for row in rows if row.get(column) not in (None, "")]
        if values and all(_number(v) is not None for v in values):
            found.append(column)
    return found


def aggregate_by_well(rows: Sequence[Mapping[str, Any]], column: str, how: str) -> dict[str, float]:
    """``{well: aggregate of column over the well's rows}``."""
    combine = AGGREGATIONS[how]
    by_well: dict[str, list[float]] = {}
    for row in rows:
        well = str(row.get("well", ""))
        number = _number(row.get(column))
        if well and number is not None:
            by_well.setdefault(well, []).append(number)
    return {well: float(combine(values)) for well, values in by_well.items() if values}


def _colour(fraction: float) -> QColor:
    fraction = min(max(fraction, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    low = min(int(fraction), len(_VIRIDIS) - 2)
    t = fraction - low
    a, b = _VIRIDIS[low], _VIRIDIS[low + 1]
    return QColor(*(round(x + (y - x) * t) for x, y in zip(a, b)))


class PlateMapCanvas(QWidget):
    """The painted grid and colour bar. ``well_clicked(well)`` on a click on a plate well."""

    well_clicked = Signal(str)

    _MARGIN = 22
    _BAR_WIDTH = 14
    _BAR_SPACE = 70

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.wells: tuple[str, ...] = ()
        self.values: dict[str, float] = {}
        self.label = ""
        self.rows, self.columns = 8, 12
        self.setMouseTracking(True)
        self.setMinimumSize(QSize(260, 150))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_wells(self, wells: Sequence[str], layout: tuple[int, int] | None = None) -> None:
        self.wells = tuple(wells)
        self.rows, self.columns = plate_grid(self.wells, layout)
        self.update()

    def set_values(self, values: Mapping[str, float], label: str) -> None:
        self.values = dict(values)
        self.label = label
        self.update()

    def value_range(self) -> tuple[float, float] | None:
        if not self.values:
            return None
        return min(self.values.values()), max(self.values.values())

    def _cell_size(self) -> float:
        width = self.width() - self._MARGIN - self._BAR_SPACE - 4
        height = self.height() - self._MARGIN - 4
        return max(4.0, min(width / self.columns, height / self.rows))

    def cell_rect(self, well: str) -> QRect:
        """Where ``well`` is drawn (an empty rect for an id that is not a well)."""
        position = _well_position(well)
        if position is None:
            return QRect()
        size = self._cell_size()
        row, column = position
        return QRectF(self._MARGIN + column * size, self._MARGIN + row * size, size, size).toRect()

    def well_at(self, point: QPoint) -> str | None:
        size = self._cell_size()
        column = math.floor((point.x() - self._MARGIN) / size)
        row = math.floor((point.y() - self._MARGIN) / size)
        if not (0 <= row < self.rows and 0 <= column < self.columns):
            return None
        well = well_id(row + 1, column + 1)
        return well if well in self.wells else None

    def colour_of(self, well: str) -> QColor:
        value = self.values.get(well)
        span = self.value_range()
        if value is None or span is None:
            return _NO_VALUE
        low, high = span
        return _colour(0.5 if high <= low else (value - low) / (high - low))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        size = self._cell_size()
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, min(9.0, size * 0.45)))
        painter.setFont(small)
        text_colour = self.palette().windowText().color()
        for column in range(self.columns):
            rect = QRectF(self._MARGIN + column * size, 0, size, self._MARGIN)
            painter.setPen(text_colour)
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), str(column + 1))
        for row in range(self.rows):
            rect = QRectF(0, self._MARGIN + row * size, self._MARGIN, size)
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), row_letters(row + 1))
        present = set(self.wells)
        for row in range(self.rows):
            for column in range(self.columns):
                well = well_id(row + 1, column + 1)
                rect = QRectF(self._MARGIN + column * size + 1, self._MARGIN + row * size + 1, size - 2, size - 2)
                if well in present:
                    painter.setBrush(self.colour_of(well))
                    painter.setPen(QPen(QColor("#606060"), 1))
                else:
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    painter.setPen(QPen(QColor("#b0b0b0"), 1, Qt.PenStyle.DotLine))
                painter.drawEllipse(rect)
        self._paint_colour_bar(painter, size)
        painter.end()

    def _paint_colour_bar(self, painter: QPainter, size: float) -> None:
        span = self.value_range()
        left = self._MARGIN + self.columns * size + 10
        top = float(self._MARGIN)
        height = max(20.0, self.rows * size)
        text_colour = self.palette().windowText().color()
        if span is None:
            painter.setPen(text_colour)
            painter.drawText(QRectF(left, top, self._BAR_SPACE, height), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), "no values")
            return
        gradient = QLinearGradient(0, top + height, 0, top)
        for i in range(len(_VIRIDIS)):
            gradient.setColorAt(i / (len(_VIRIDIS) - 1), _colour(i / (len(_VIRIDIS) - 1)))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRect(QRectF(left, top, self._BAR_WIDTH, height))
        painter.setPen(text_colour)
        low, high = span
        x = left + self._BAR_WIDTH + 4
        painter.drawText(QRectF(x, top - 2, self._BAR_SPACE, 14), int(Qt.AlignmentFlag.AlignLeft), f"{high:.4g}")
        painter.drawText(QRectF(x, top + height - 12, self._BAR_SPACE, 14), int(Qt.AlignmentFlag.AlignLeft), f"{low:.4g}")

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        well = self.well_at(event.pos())
        if well is None:
            self.setToolTip("")
            return
        value = self.values.get(well)
        text = f"{well}: {value:.6g}" if value is not None else f"{well}: no value"
        self.setToolTip(f"{text}\n{self.label}\nclick to open its outputs as layers" if self.label else text)
        QToolTip.showText(event.globalPos(), self.toolTip(), self)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            well = self.well_at(event.pos())
            if well is not None:
                self.well_clicked.emit(well)
                return
        super().mousePressEvent(event)


class PlateMapWidget(QWidget):
    """The measurement and aggregation choices above the :class:`PlateMapCanvas`.

    Signals:
        well_clicked(str): a well of the plate was clicked.
    """

    well_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tables: dict[str, list[Mapping[str, Any]]] = {}
        self.measurement_combo = QComboBox(self)
        self.measurement_combo.setToolTip("The table column that colours the wells")
        self.aggregation_combo = QComboBox(self)
        self.aggregation_combo.addItems(list(AGGREGATIONS))
        self.aggregation_combo.setToolTip("How a well's rows (sites, objects) combine into one value")
        self.canvas = PlateMapCanvas(self)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Colour by", self))
        controls.addWidget(self.measurement_combo, 1)
        controls.addWidget(self.aggregation_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.canvas, 1)
        self.measurement_combo.currentIndexChanged.connect(self._recolour)
        self.aggregation_combo.currentIndexChanged.connect(self._recolour)
        self.canvas.well_clicked.connect(self.well_clicked)

    def set_wells(self, wells: Sequence[str], layout: tuple[int, int] | None = None) -> None:
        self.canvas.set_wells(wells, layout)

    def set_plate(self, plate: Any) -> None:
        """Draw ``plate``'s own grid with its wells."""
        self.set_wells(plate.wells, plate_layout(plate))

    def set_tables(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Offer every numeric column of ``tables``; a count column (summed) is chosen first when there is one."""
        self.tables = {name: list(rows) for name, rows in tables.items()}
        choices = [(name, column) for name, rows in self.tables.items() for column in numeric_columns(rows)]
        self.measurement_combo.blockSignals(True)
        self.aggregation_combo.blockSignals(True)
        self.measurement_combo.clear()
        for name, column in choices:
            self.measurement_combo.addItem(f"{name}: {column}", (name, column))
        counts = [i for i, (_, column) in enumerate(choices) if "count" in column]
        if counts:
            self.measurement_combo.setCurrentIndex(counts[0])
            self.aggregation_combo.setCurrentText("sum")
        elif choices:
            self.aggregation_combo.setCurrentText("mean")
        self.measurement_combo.blockSignals(False)
        self.aggregation_combo.blockSignals(False)
        self._recolour()

    def set_measurement(self, table: str, column: str, aggregation: str) -> None:
        index = self.measurement_combo.findData((table, column))
        if index < 0:
            raise KeyError(f"no numeric column {column!r} in table {table!r}")
        self.aggregation_combo.setCurrentText(aggregation)
        self.measurement_combo.setCurrentIndex(index)
        self._recolour()

    def values(self) -> dict[str, float]:
        return dict(self.canvas.values)

    def _recolour(self, *_: Any) -> None:
        choice = self.measurement_combo.currentData()
        if not choice:
            self.canvas.set_values({}, "")
            return
        table, column = choice
        how = self.aggregation_combo.currentText()
        self.canvas.set_values(aggregate_by_well(self.tables.get(table, []), column, how), f"{how} of {table}: {column}")
