"""The problems panel: every diagnostic of the last check, one row each; a click goes to it."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QWidget

from plateflow.compiler import Diagnostic

from ._style import SEVERITY_COLOURS, severity_icon

__all__ = ["ProblemsPanel", "problem_text"]

DIAGNOSTIC_ROLE = Qt.ItemDataRole.UserRole + 1


def problem_text(diagnostic: Diagnostic) -> str:
    """"step 2 'Blur', kwargs.sigma: message - hint" (steps counted from 1)."""
    text = f"{diagnostic.location}: {diagnostic.message}"
    if diagnostic.hint:
        text += f" \u2014 {diagnostic.hint}"
    return text


class ProblemsPanel(QListWidget):
    """Lists diagnostics (errors first); ``problem_activated`` fires on a click or Return."""

    problem_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setMinimumHeight(60)
        self.diagnostics: list[Diagnostic] = []
        self.itemClicked.connect(self._on_activated)
        self.itemActivated.connect(self._on_activated)

    def set_diagnostics(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.clear()
        self.diagnostics = sorted(diagnostics, key=lambda d: (not d.is_error, d.step_index if d.step_index is not None else -1))
        for index, diagnostic in enumerate(self.diagnostics):
            item = QListWidgetItem(severity_icon(self, diagnostic.severity), problem_text(diagnostic))
            item.setData(DIAGNOSTIC_ROLE, index)
            item.setForeground(QColor(SEVERITY_COLOURS[diagnostic.severity]))
            item.setToolTip(f"{diagnostic.severity} [{diagnostic.code}]\n{problem_text(diagnostic)}")
            self.addItem(item)

    def set_messages(self, severity: str, messages: Sequence[str]) -> None:
        """Rows that are not compiler diagnostics (e.g. the problems of a pipeline file that failed to load)."""
        self.clear()
        self.diagnostics = []
        for message in messages:
            item = QListWidgetItem(severity_icon(self, severity), message)
            item.setForeground(QColor(SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["error"])))
            self.addItem(item)

    def texts(self) -> list[str]:
        return [self.item(row).text() for row in range(self.count())]

    def _on_activated(self, item: QListWidgetItem) -> None:
        index = item.data(DIAGNOSTIC_ROLE)
        if index is not None:
            self.problem_activated.emit(self.diagnostics[index])
