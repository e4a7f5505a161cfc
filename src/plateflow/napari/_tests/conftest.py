"""Fixtures for the plugin's GUI tests (run under Xvfb: see the Makefile's test target)."""

from __future__ import annotations

import pytest

from plateflow.plate import sample_plate_path


def settle(qtbot, widget) -> None:
    """Wait for the debounced check that the last edit scheduled (if any) to finish."""
    if widget.check_pending:
        with qtbot.waitSignal(widget.checked, timeout=5000):
            pass


@pytest.fixture
def builder(qtbot):
    """A shown Pipeline builder on the bundled sample plate, its first check done."""
    from plateflow.napari._widget import PipelineBuilderWidget

    widget = PipelineBuilderWidget(plate=sample_plate_path())
    qtbot.addWidget(widget)
    widget.resize(720, 1000)
    widget.show()
    qtbot.waitExposed(widget)
    settle(qtbot, widget)
    return widget
