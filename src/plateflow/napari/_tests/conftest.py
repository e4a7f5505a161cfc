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


@pytest.fixture(scope="session")
def tuning_plate(tmp_path_factory):
    """2 wells x 2 sites x 2 channels x 3 Z planes, 64 x 64: small enough for fast tuning runs."""
    from plateflow.plate import generate_sample_plate

    return generate_sample_plate(
        tmp_path_factory.mktemp("tuning") / "plate", wells=("A01", "A02"), sites=2, channels=2, z_planes=3, size=(64, 64)
    )


def wait_for_tuning(qtbot, builder, timeout: int = 10000) -> None:
    """Wait until no check or tuning run is pending or running (the last edit's layers are up to date)."""
    controller = builder.tuning.controller
    qtbot.waitUntil(lambda: not builder.check_pending and not controller.pending and not controller.is_running, timeout=timeout)
