"""The problems panel: every diagnostic of the last check, one row each; a click goes to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QWidget

from plateflow.compiler import Diagnostic

from ._style import SEVERITY_COLOURS, severity_icon

__all__ = ["ProblemsPanel", "problem_text", "diagnostic_place"]

DIAGNOSTIC_ROLE = Qt.ItemDataRole.UserRole + 1


def diagnostic_place(diagnostic: Diagnostic, step: Any = None) -> str:
    """Where a diagnostic is, in the words of the form: "channel 1 (DAPI), function 2 of 3 (gaussian_filter), parameter 'sigma'".

    It reads the diagnostic's ``path``; ``step`` (the builder's step, when known)
    names the functions, so two functions of the same name in a chain are told
    apart by their position. Without a path it falls back to the field string.
    """
    path = list(diagnostic.path)
    if not path:
        return diagnostic.field
    parts: list[str] = []
    key: Any = None
    if path[0] == "func":
        path.pop(0)
        if not path:
            parts.append("its functions")
        if path and isinstance(path[0], str) and path[0] != "kwargs":
            key = path.pop(0)
            group_by = getattr(step, "group_by", None) or "group"
            parts.append(f"{group_by} {key}")
        if path and isinstance(path[0], int) and not isinstance(path[0], bool):
            index = path.pop(0)
            chain = getattr(step, "chains", {}).get(key) if step is not None else None
            if chain is not None and 0 <= index < len(chain):
                parts.append(f"function {index + 1} of {len(chain)} ({chain[index].function.rsplit('.', 1)[-1]})")
            else:
                parts.append(f"function {index + 1}")
    words = {"variable_components": "variable components", "group_by": "group by"}
    while path:
        part = path.pop(0)
        if part == "kwargs" and path:
            parts.append(f"parameter '{path.pop(0)}'")
        elif part in ("special_inputs", "special_outputs") and path:
            parts.append(f"{'special input' if part == 'special_inputs' else 'special output'} '{path.pop(0)}'")
        else:
            parts.append(words.get(str(part), str(part)))
    return ", ".join(parts)


def problem_text(diagnostic: Diagnostic, step: Any = None) -> str:
    """"Step 2 'Blur', parameter 'sigma': what is wrong. Fix: the hint" (steps counted from 1)."""
    if diagnostic.step_index is None:
        where = "Pipeline"
    else:
        where = f"Step {diagnostic.step_index + 1} '{diagnostic.step_name}'"
    place = diagnostic_place(diagnostic, step)
    if place:
        where += f", {place}"
    text = f"{where}: {diagnostic.message}"
    if diagnostic.hint:
        text += f". Fix: {diagnostic.hint}"
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

    def set_diagnostics(self, diagnostics: Sequence[Diagnostic], model: Any = None) -> None:
        """List ``diagnostics``; ``model`` (the builder's document) names the functions of each step."""
        ordered = sorted(diagnostics, key=lambda d: (not d.is_error, d.step_index if d.step_index is not None else -1))
        steps = [model.step_for_pipeline_index(d.step_index) if model is not None else None for d in ordered]
        texts = [problem_text(d, step) for d, step in zip(ordered, steps)]
        if texts == self.texts() and ordered == self.diagnostics:
            return  # the same list: rebuilding it would only cost a relayout while tuning
        self.clear()
        self.diagnostics = ordered
        for index, (diagnostic, text) in enumerate(zip(ordered, texts)):
            item = QListWidgetItem(severity_icon(self, diagnostic.severity), text)
            item.setData(DIAGNOSTIC_ROLE, index)
            item.setForeground(QColor(SEVERITY_COLOURS[diagnostic.severity]))
            # The code-level detail comes after what is wrong: the code and the field as the compiler writes it.
            detail = f"{diagnostic.severity} [{diagnostic.code}]" + (f" at {diagnostic.field}" if diagnostic.field else "")
            item.setToolTip(f"{text}\n\n{detail}")
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
