"""A table viewer: a choice of tables (rows of dicts) and the chosen one in a table view.

Used for the measurement tables a sample run makes while tuning, and for the
plate's merged CSV tables after a run on the whole plate. The view reads its
cells from the rows on demand (a ``QAbstractTableModel``), so showing a table
of a hundred thousand nuclei costs what the visible cells cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QTableView, QVBoxLayout, QWidget

__all__ = ["TableView", "RowsModel"]


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class RowsModel(QAbstractTableModel):
    """Rows of dicts as a Qt table model; the columns are every key, in order of appearance."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Mapping[str, Any]] = []
        self.columns: list[str] = []

    def set_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = rows if isinstance(rows, list) else list(rows)
        columns: dict[str, None] = {}
        for row in self.rows:
            columns.update((str(k), None) for k in row)
        self.columns = list(columns)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        return _cell_text(self.rows[index.row()].get(self.columns[index.column()], ""))

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.columns[section] if section < len(self.columns) else None
        return str(section + 1)


class TableView(QWidget):
    """Shows one of several named tables; ``set_tables`` replaces them, keeping the choice when it still exists."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tables: dict[str, list[Mapping[str, Any]]] = {}
        self.table_combo = QComboBox(self)
        self.table_combo.setToolTip("The table to show")
        self.count_label = QLabel("", self)
        self.rows_model = RowsModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.rows_model)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        top = QHBoxLayout()
        top.addWidget(QLabel("Table", self))
        top.addWidget(self.table_combo, 1)
        top.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.table_combo.currentTextChanged.connect(self._show)

    def set_tables(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        current = self.table_combo.currentText()
        self.tables = {name: rows if isinstance(rows, list) else list(rows) for name, rows in tables.items()}
        self.table_combo.blockSignals(True)
        self.table_combo.clear()
        self.table_combo.addItems(list(self.tables))
        if current in self.tables:
            self.table_combo.setCurrentText(current)
        self.table_combo.blockSignals(False)
        self._show(self.table_combo.currentText())

    def set_table(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add or replace one table and show it."""
        tables = dict(self.tables)
        tables[name] = list(rows)
        self.set_tables(tables)
        self.table_combo.setCurrentText(name)

    def remove_tables(self, names: Sequence[str]) -> None:
        if any(name in self.tables for name in names):
            self.set_tables({n: rows for n, rows in self.tables.items() if n not in names})

    def current_rows(self) -> list[Mapping[str, Any]]:
        return self.tables.get(self.table_combo.currentText(), [])

    def _show(self, name: str) -> None:
        rows = self.tables.get(name, [])
        if rows is not self.rows_model.rows:
            self.rows_model.set_rows(rows)
        self.count_label.setText(f"{len(rows)} row{'s' if len(rows) != 1 else ''}" if name else "")
