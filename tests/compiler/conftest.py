"""Fixtures for the compiler tests."""

from __future__ import annotations

import pytest

from .functions import FakePlate


@pytest.fixture
def plate(tmp_path):
    root = tmp_path / "plate"
    root.mkdir()
    return FakePlate(root=root)
