"""Suite-wide: tests that draw with Qt skip, with the command that runs them, where there is no display.

Qt aborts the whole pytest process (SIGABRT, no report) when it cannot reach a
display, so a plain ``pytest`` on a headless machine would lose every result.
``make test`` runs the suite under ``xvfb-run``, where these tests run.
"""

from __future__ import annotations

import os
import sys

import pytest

_QT_FIXTURES = {"qapp", "qtbot", "make_napari_viewer", "make_napari_viewer_proxy"}


def _has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_display():
        return
    skip = pytest.mark.skip(reason="needs a display for Qt: run under xvfb-run (make test does)")
    for item in items:
        if item.get_closest_marker("gui") or _QT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)
