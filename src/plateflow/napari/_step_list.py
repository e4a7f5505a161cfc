"""The step list: one row per step, with its number, data-flow badges and diagnostics.

Each row shows the step's name (editable: double-click or F2 renames it; Delete
removes the step), a
check box (unchecked: the step is disabled and left out of the checked and run
pipeline), and under the name a line of badges: the step's memory type, the
conversion planned from the previous step ("numpy -> torch"), where its special
inputs come from ("positions from step 1") and what it produces. Rows reorder by
drag and drop. A step with a diagnostic gets an error or warning icon, a
coloured name and the messages in its tooltip. The badges are the compiler's:
the step's :class:`plateflow.compiler.analysis.StepFlow` from the builder's last
:func:`plateflow.analyze` (:meth:`StepListWidget.set_analysis`).
"""

from __future__ import annotations

from qtpy.QtCore import QModelIndex, QRect, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFontMetrics, QIcon, QPainter
from qtpy.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from typing import Any

from ._model import PipelineModel
from ._style import SEVERITY_COLOURS, memory_colour, severity_icon

__all__ = ["StepListWidget", "STEP_ID_ROLE", "SEVERITY_ROLE", "BADGES_ROLE", "NUMBER_ROLE"]

STEP_ID_ROLE = Qt.ItemDataRole.UserRole + 1
#: "error", "warning" or "" for a step with no diagnostic.
SEVERITY_ROLE = Qt.ItemDataRole.UserRole + 2
#: list of (text, colour) badges drawn under the name.
BADGES_ROLE = Qt.ItemDataRole.UserRole + 3
#: the step's 1-based number in the checked pipeline, or 0 when disabled.
NUMBER_ROLE = Qt.ItemDataRole.UserRole + 4

_CONVERSION_COLOUR = "#b8860b"
_LINK_COLOUR = "#2e7d32"
_MISSING_COLOUR = SEVERITY_COLOURS["error"]
_OUTPUT_COLOUR = "#5d6d7e"
_DISABLED_COLOUR = "#9e9e9e"
_PLATE_COLOUR = "#6a1b9a"


def step_badges(flow: Any, enabled: bool = True) -> list[tuple[str, str]]:
    """The badges of one step's analysed flow: memory type, conversion in front of it, special I/O links."""
    if not enabled:
        return [("disabled", _DISABLED_COLOUR)]
    if flow is None:
        return []
    badges: list[tuple[str, str]] = []
    if getattr(flow, "scope", "well") == "plate":
        # a plate step runs once over its sample of the whole plate, before the wells: say so first
        wells, sites = len(flow.sample_wells), len(flow.sample_sites)
        badges.append((f"plate step: {wells} wells x {sites} sites" if wells else "plate step", _PLATE_COLOUR))
    if flow.conversion is not None:
        badges.append((f"{flow.conversion[0]} -> {flow.conversion[1]}", _CONVERSION_COLOUR))
    if flow.input_memory_type:
        memory = flow.input_memory_type
        if flow.output_memory_type and flow.output_memory_type != flow.input_memory_type:
            memory += f" -> {flow.output_memory_type}"
        badges.append((memory, memory_colour(flow.input_memory_type)))
    for name, link in flow.special_inputs.items():
        if link.producer_step_index is None:
            badges.append((f"{name}: no step makes it", _MISSING_COLOUR))
        elif link.same_step:
            badges.append((f"{name} from this step", _LINK_COLOUR))
        else:
            badges.append((f"{name} from step {link.producer_step_index + 1}", _LINK_COLOUR))
    for name in flow.special_outputs:
        badges.append((f"gives {name}", _OUTPUT_COLOUR))
    return badges


class _StepDelegate(QStyledItemDelegate):
    """Draws "N. name" on the first line and the badges on a second line."""

    _PAD = 4

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        number = index.data(NUMBER_ROLE)
        option.text = f"{number}. {option.text}" if number else f"-  {option.text}"

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        base = super().sizeHint(option, index)
        metrics = QFontMetrics(option.font)
        return QSize(base.width(), base.height() + metrics.height() + 2 * self._PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else None
        metrics = QFontMetrics(opt.font)
        badge_height = metrics.height() + self._PAD
        full = QRect(opt.rect)
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, widget)
        top = QStyleOptionViewItem(opt)
        top.rect = QRect(full.left(), full.top(), full.width(), full.height() - badge_height - self._PAD)
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, top, painter, widget)
        badges = index.data(BADGES_ROLE) or []
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        small = QFontMetrics(opt.font)
        x = full.left() + 28
        y = full.bottom() - badge_height - self._PAD // 2
        for text, colour in badges:
            width = small.horizontalAdvance(text) + 12
            if x + width > full.right() - 2:
                break
            rect = QRectF(x, y, width, badge_height)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(colour))
            painter.drawRoundedRect(rect, badge_height / 2, badge_height / 2)
            painter.setPen(QColor("white"))
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
            x += width + 4
        painter.restore()


class StepListWidget(QListWidget):
    """The rows of a :class:`PipelineModel`; edits made here go to the model.

    Signals:
        current_step_changed(str): the selected step's id ("" for none).
    """

    current_step_changed = Signal(str)
    delete_requested = Signal(str)

    def __init__(self, model: PipelineModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_ = model
        self._syncing = False
        self.setItemDelegate(_StepDelegate(self))
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # No rename on a click of the selected row: a second click is a selection, not an edit.
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setAlternatingRowColors(False)
        self.setMinimumHeight(120)
        self.itemChanged.connect(self._on_item_changed)
        self.model().rowsMoved.connect(self._on_rows_moved)
        self.currentItemChanged.connect(self._on_current_changed)
        self._diagnostics: dict[str, list[tuple[str, str]]] = {}
        self.analysis: Any = None
        self.refresh()

    # -- reading ---------------------------------------------------------------------
    def item_for(self, step_id: str) -> QListWidgetItem:
        for row in range(self.count()):
            item = self.item(row)
            if item.data(STEP_ID_ROLE) == step_id:
                return item
        raise KeyError(f"no row for step {step_id!r}")

    def step_ids(self) -> list[str]:
        return [self.item(row).data(STEP_ID_ROLE) for row in range(self.count())]

    def current_step_id(self) -> str:
        item = self.currentItem()
        return item.data(STEP_ID_ROLE) if item is not None else ""

    def select_step(self, step_id: str) -> None:
        self.setCurrentItem(self.item_for(step_id))

    # -- model -> rows -----------------------------------------------------------------
    def refresh(self) -> None:
        """Show the model: rows are updated in place, or rebuilt when steps were added, removed or moved."""
        current = self.current_step_id()
        model_ids = [s.step_id for s in self.model_.steps]
        self._syncing = True
        try:
            if self.step_ids() != model_ids:
                self.blockSignals(True)
                self.clear()
                for step in self.model_.steps:
                    item = QListWidgetItem(step.name)
                    item.setData(STEP_ID_ROLE, step.step_id)
                    item.setFlags(
                        Qt.ItemFlag.ItemIsEnabled
                        | Qt.ItemFlag.ItemIsSelectable
                        | Qt.ItemFlag.ItemIsEditable
                        | Qt.ItemFlag.ItemIsUserCheckable
                        | Qt.ItemFlag.ItemIsDragEnabled
                    )
                    self.addItem(item)
                if current in model_ids:
                    self.setCurrentRow(model_ids.index(current))
                self.blockSignals(False)
            flows = self._flows()
            for row, step in enumerate(self.model_.steps):
                item = self.item(row)
                if item.text() != step.name:
                    item.setText(step.name)
                state = Qt.CheckState.Checked if step.enabled else Qt.CheckState.Unchecked
                if item.checkState() != state:
                    item.setCheckState(state)
                number, flow = flows.get(step.step_id, (0, None))
                item.setData(NUMBER_ROLE, number)
                item.setData(BADGES_ROLE, step_badges(flow, step.enabled))
                self._apply_diagnostics(item)
        finally:
            self._syncing = False
        if self.current_step_id() != current:
            self.current_step_changed.emit(self.current_step_id())

    def _flows(self) -> dict[str, tuple[int, Any]]:
        """Step id -> (1-based number among the enabled steps, its analysed flow or ``None``)."""
        steps = self.analysis.steps if self.analysis is not None else ()
        return {
            step.step_id: (index + 1, steps[index] if index < len(steps) else None)
            for index, step in enumerate(self.model_.enabled_steps())
        }

    def set_analysis(self, analysis: Any) -> None:
        """Show the badges of the compiler's last result."""
        self.analysis = analysis
        self.refresh()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.state() != QAbstractItemView.State.EditingState:
            step_id = self.current_step_id()
            if step_id:
                self.delete_requested.emit(step_id)
                event.accept()
                return
        super().keyPressEvent(event)

    def set_diagnostics(self, by_step: dict[str, list[tuple[str, str]]]) -> None:
        """Mark rows: ``{step_id: [(severity, text), ...]}``; rows not named are cleared."""
        self._diagnostics = by_step
        self._syncing = True
        try:
            for row in range(self.count()):
                self._apply_diagnostics(self.item(row))
        finally:
            self._syncing = False

    def _apply_diagnostics(self, item: QListWidgetItem) -> None:
        step_id = item.data(STEP_ID_ROLE)
        found = self._diagnostics.get(step_id, [])
        severity = "error" if any(s == "error" for s, _ in found) else ("warning" if found else "")
        item.setData(SEVERITY_ROLE, severity)
        lines = [self._flow_text(item)]
        if found:
            lines += [text for _, text in found]
            item.setIcon(severity_icon(self, severity))
            item.setForeground(QColor(SEVERITY_COLOURS[severity]))
        else:
            item.setIcon(QIcon())
            step = self.model_.step(step_id)
            item.setForeground(QColor(_DISABLED_COLOUR) if not step.enabled else self.palette().text().color())
        item.setToolTip("\n".join(line for line in lines if line))

    def _flow_text(self, item: QListWidgetItem) -> str:
        badges = item.data(BADGES_ROLE) or []
        step = self.model_.step(item.data(STEP_ID_ROLE))
        functions = ", ".join(call.function for _, _, call in step.calls())
        text = f"{step.name}: {functions}"
        if badges:
            text += "\n" + "; ".join(t for t, _ in badges)
        return text

    # -- rows -> model -------------------------------------------------------------------
    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        step_id = item.data(STEP_ID_ROLE)
        step = self.model_.step(step_id)
        enabled = item.checkState() == Qt.CheckState.Checked
        name = item.text().strip()
        if enabled != step.enabled:
            self.model_.set_enabled(step_id, enabled)
        elif name and name != step.name:
            self.model_.rename_step(step_id, name)
        elif not name:
            self._syncing = True
            item.setText(step.name)
            self._syncing = False

    def _on_rows_moved(self, *args: object) -> None:
        if self._syncing:
            return
        self.model_.reorder(self.step_ids())

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().dropEvent(event)
        # Some Qt versions move rows by remove + insert without rowsMoved; sync either way.
        if not self._syncing and self.step_ids() != [s.step_id for s in self.model_.steps]:
            self.model_.reorder(self.step_ids())

    def _on_current_changed(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        if self._syncing:
            return
        self.current_step_changed.emit(current.data(STEP_ID_ROLE) if current is not None else "")

    def move_current(self, offset: int) -> None:
        step_id = self.current_step_id()
        if step_id:
            self.model_.move_step(step_id, self.model_.index_of(step_id) + offset)

