"""The function catalogue: every registry function by category, searchable, with its doc."""

from __future__ import annotations

import html

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QLineEdit, QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from plateflow.library import FunctionInfo, registry

from ._style import memory_colour, memory_icon

__all__ = ["FunctionCatalogue", "function_doc_html", "NAME_ROLE", "MEMORY_ROLE", "AVAILABLE_ROLE"]

NAME_ROLE = Qt.ItemDataRole.UserRole + 1
#: "numpy", or "torch -> numpy" when the function returns another memory type.
MEMORY_ROLE = Qt.ItemDataRole.UserRole + 2
#: False when the function's library is missing here (the item is greyed, the reason in its tooltip).
AVAILABLE_ROLE = Qt.ItemDataRole.UserRole + 3
_UNAVAILABLE_GREY = "#8a8a8a"


def function_doc_html(info: FunctionInfo) -> str:
    """The doc pane's text for one function: memory types, special I/O, parameters and docstring."""
    memory = info.input_memory_type
    if info.output_memory_type != info.input_memory_type:
        memory += f" -> {info.output_memory_type}"
    parts = [
        f"<b>{html.escape(info.name)}</b> "
        f"<span style='background:{memory_colour(info.input_memory_type)}; color:white'>&nbsp;{html.escape(memory)}&nbsp;</span>",
        f"<i>{html.escape(info.summary)}</i>" if info.summary else "",
    ]
    if not info.available:
        parts.append(f"<span style='color:#e53935'>Unavailable here: {html.escape(info.unavailable_reason)}</span>")
    if info.special_inputs:
        parts.append("Special inputs: " + ", ".join(html.escape(n) for n in info.special_inputs))
    if info.special_outputs:
        parts.append("Special outputs: " + ", ".join(html.escape(n) for n in info.special_outputs))
    if info.chain_breaker:
        parts.append("Chain breaker: the next step reads the plate's original images.")
    rows = []
    for param in info.params:
        label = param.name + (f" ({param.unit})" if param.unit else "")
        default = "required" if param.required else f"default {param.default!r}"
        rows.append(f"<li><b>{html.escape(label)}</b>: {html.escape(param.type_name)}, {html.escape(default)}"
                    + (f" &mdash; {html.escape(param.doc)}" if param.doc else "") + "</li>")
    if rows:
        parts.append("Parameters:<ul style='margin-top:0'>" + "".join(rows) + "</ul>")
    body = info.doc.split("\n\n", 1)[1] if "\n\n" in info.doc else ""
    body = body.split("Parameters\n", 1)[0].strip()
    if body:
        parts.append(f"<p>{html.escape(body)}</p>")
    return "<br>".join(p for p in parts if p)


def function_tooltip(info: FunctionInfo) -> str:
    text = f"{info.name}: {info.summary}" if info.summary else info.name
    if not info.available:
        text += f"\nUnavailable here: {info.unavailable_reason}"
    return text


class FunctionCatalogue(QWidget):
    """A filter box over a tree of categories and functions, and a doc pane for the current one.

    Signals:
        function_activated(str): a function was activated (double-click, or Return on it).
        current_function_changed(str): the selected function ("" for none).
    """

    function_activated = Signal(str)
    current_function_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Search functions (name, category, description)")
        self.filter_edit.setClearButtonEnabled(True)
        self.tree = QTreeWidget(self)
        self.tree.setMinimumHeight(90)
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.doc_pane = QTextBrowser(self)
        self.doc_pane.setOpenExternalLinks(False)
        self.doc_pane.setMaximumHeight(64)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.doc_pane)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._search_text: dict[str, str] = {}
        self.filter_edit.textChanged.connect(self.apply_filter)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.populate()

    def populate(self) -> None:
        """Fill the tree from the registry (call again after plugins register functions)."""
        self.tree.clear()
        self._items.clear()
        self._search_text.clear()
        for category in registry.categories():
            category_item = QTreeWidgetItem(self.tree, [category])
            category_item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = category_item.font(0)
            font.setBold(True)
            category_item.setFont(0, font)
            for name in registry.names(category=category):
                info = registry.info(name)
                memory = info.input_memory_type
                if info.output_memory_type != info.input_memory_type:
                    memory += f" -> {info.output_memory_type}"
                item = QTreeWidgetItem(category_item, [name])
                item.setData(0, NAME_ROLE, name)
                item.setData(0, MEMORY_ROLE, memory)
                item.setData(0, AVAILABLE_ROLE, info.available)
                item.setIcon(0, memory_icon(info.input_memory_type, info.available))
                item.setToolTip(0, function_tooltip(info))
                if not info.available:
                    item.setForeground(0, QBrush(QColor(_UNAVAILABLE_GREY)))
                self._items[name] = item
                self._search_text[name] = " ".join((name, category, info.summary, memory)).lower()
        self.tree.expandAll()
        self.apply_filter(self.filter_edit.text())

    def apply_filter(self, text: str) -> None:
        """Show only functions whose name, category, memory type or summary contain every word of ``text``."""
        words = text.lower().split()
        for index in range(self.tree.topLevelItemCount()):
            category_item = self.tree.topLevelItem(index)
            shown = 0
            for child_index in range(category_item.childCount()):
                child = category_item.child(child_index)
                haystack = self._search_text[child.data(0, NAME_ROLE)]
                visible = all(word in haystack for word in words)
                child.setHidden(not visible)
                shown += visible
            category_item.setHidden(shown == 0)
            category_item.setExpanded(True)
        current = self.tree.currentItem()
        visible = self.visible_names()
        available = [n for n in visible if self._items[n].data(0, AVAILABLE_ROLE)]
        candidates = available or visible
        # A word that is a function's whole short name picks it ("numpy label" -> numpy.label).
        exact = [n for n in candidates if n.rsplit(".", 1)[-1] in words]
        current_name = current.data(0, NAME_ROLE) if current is not None and not current.isHidden() else None
        if exact and current_name not in exact:
            self.tree.setCurrentItem(self._items[exact[0]])
        elif current_name is None and candidates:
            self.tree.setCurrentItem(self._items[candidates[0]])

    def visible_names(self) -> list[str]:
        return [name for name, item in self._items.items() if not item.isHidden() and not item.parent().isHidden()]

    def item_for(self, name: str) -> QTreeWidgetItem:
        return self._items[name]

    def current_function(self) -> str:
        item = self.tree.currentItem()
        if item is None or item.isHidden():
            return ""
        return item.data(0, NAME_ROLE) or ""

    def select_function(self, name: str) -> None:
        self.tree.setCurrentItem(self._items[name])

    def _on_activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        name = item.data(0, NAME_ROLE)
        if name:
            self.function_activated.emit(name)

    def _on_current_changed(self, current: QTreeWidgetItem | None, previous: QTreeWidgetItem | None = None) -> None:
        name = current.data(0, NAME_ROLE) if current is not None else None
        if name:
            self.doc_pane.setHtml(function_doc_html(registry.info(name)))
        self.current_function_changed.emit(name or "")
