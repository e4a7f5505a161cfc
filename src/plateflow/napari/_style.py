"""Colours, memory-type badges and diagnostic marks shared by the builder's widgets (Qt only here)."""

from __future__ import annotations

from collections.abc import Iterable

from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from qtpy.QtWidgets import QCheckBox, QGroupBox, QLabel, QStyle, QWidget

__all__ = [
    "MEMORY_TYPE_COLOURS",
    "SEVERITY_COLOURS",
    "MARK_PROPERTY",
    "memory_colour",
    "memory_icon",
    "memory_badge_label",
    "severity_icon",
    "mark_widget",
    "clear_mark",
    "marked_severity",
    "worst_severity",
]

#: One colour per memory type, used for badges in the catalogue, the step list and the forms.
MEMORY_TYPE_COLOURS: dict[str, str] = {
    "numpy": "#4c72b0",
    "cupy": "#55a868",
    "torch": "#dd5a28",
    "tensorflow": "#e8a33d",
    "jax": "#8172b2",
    "pyclesperanto": "#1f9e89",
}
_UNKNOWN_COLOUR = "#7f7f7f"

SEVERITY_COLOURS: dict[str, str] = {"error": "#e53935", "warning": "#fb8c00"}

#: The Qt property a marked widget carries: "error", "warning" or "" (tests read it).
MARK_PROPERTY = "plateflow_diagnostic"
_BASE_TOOLTIP = "plateflow_base_tooltip"
_BASE_STYLE = "plateflow_base_style"


def memory_colour(memory_type: str) -> str:
    return MEMORY_TYPE_COLOURS.get(memory_type, _UNKNOWN_COLOUR)


_ICONS: dict[tuple[str, bool], QIcon] = {}


def memory_icon(memory_type: str, available: bool = True) -> QIcon:
    """A small rounded square in the memory type's colour (grey when the library is unavailable)."""
    key = (memory_type, available)
    if key not in _ICONS:
        pixmap = QPixmap(14, 14)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(memory_colour(memory_type))
        if not available:
            colour = QColor(_UNKNOWN_COLOUR)
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawRoundedRect(QRectF(1, 1, 12, 12), 3, 3)
        painter.setPen(QColor("white"))
        font = QFont()
        font.setPixelSize(9)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(QRectF(1, 1, 12, 12), int(Qt.AlignmentFlag.AlignCenter), memory_type[:1].upper())
        painter.end()
        _ICONS[key] = QIcon(pixmap)
    return _ICONS[key]


def memory_badge_label(memory_type: str, parent: QWidget | None = None) -> QLabel:
    """A coloured pill showing the memory type ("numpy", "torch -> numpy")."""
    first = memory_type.split(" ", 1)[0]
    label = QLabel(memory_type, parent)
    label.setObjectName("plateflow_memory_badge")
    label.setStyleSheet(
        f"QLabel#plateflow_memory_badge {{ background: {memory_colour(first)}; color: white;"
        " border-radius: 6px; padding: 1px 6px; font-size: 10px; }"
    )
    return label


def severity_icon(widget: QWidget, severity: str) -> QIcon:
    pixmap = {
        "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
        "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    }.get(severity, QStyle.StandardPixmap.SP_MessageBoxInformation)
    return widget.style().standardIcon(pixmap)


def worst_severity(severities: Iterable[str]) -> str:
    found = set(severities)
    if "error" in found:
        return "error"
    return "warning" if "warning" in found else ""


def mark_widget(widget: QWidget, severity: str, messages: Iterable[str]) -> None:
    """Frame ``widget`` in the severity's colour and add the messages to its tooltip.

    The frame's style sheet selects the widget by a property, not by its object
    name: magicgui names its widgets ``magicgui.QDoubleSpinBox``, and a dot in a
    ``#name`` selector matches nothing. Marking again replaces the previous mark;
    :func:`clear_mark` restores the widget.
    """
    if widget.property(_BASE_TOOLTIP) is None:
        widget.setProperty(_BASE_TOOLTIP, widget.toolTip())
        widget.setProperty(_BASE_STYLE, widget.styleSheet())
    colour = SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["warning"])
    base_style = widget.property(_BASE_STYLE) or ""
    selector = f'[{MARK_PROPERTY}="{severity}"]'
    frame = f"{selector} {{ border: 2px solid {colour}; border-radius: 3px; }}"
    if isinstance(widget, QGroupBox):
        # A styled group box draws its title itself: keep it above the frame, in the mark's colour.
        frame = (
            f"QGroupBox{selector} {{ border: 2px solid {colour}; border-radius: 3px; margin-top: 1.3em; padding-top: 2px; }}"
            f" QGroupBox{selector}::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; color: {colour}; }}"
        )
    elif isinstance(widget, QCheckBox):
        frame = f"QCheckBox{selector} {{ border: 2px solid {colour}; border-radius: 3px; padding: 1px; }}"
    widget.setProperty(MARK_PROPERTY, severity)
    widget.setStyleSheet(f"{base_style}\n{frame}")
    base_tooltip = widget.property(_BASE_TOOLTIP) or ""
    text = "\n".join(messages)
    widget.setToolTip(f"{base_tooltip}\n\n{text}" if base_tooltip else text)


def clear_mark(widget: QWidget) -> None:
    if not widget.property(MARK_PROPERTY):
        return
    widget.setProperty(MARK_PROPERTY, "")
    widget.setStyleSheet(widget.property(_BASE_STYLE) or "")
    widget.setToolTip(widget.property(_BASE_TOOLTIP) or "")


def marked_severity(widget: QWidget) -> str:
    """"error", "warning" or "" (not marked)."""
    return widget.property(MARK_PROPERTY) or ""
