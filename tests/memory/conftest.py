"""Fixtures for the memory tests."""

from __future__ import annotations

import pytest

from plateflow.memory.devices import clear_device_cache


@pytest.fixture
def fresh_device_cache():
    """Probe devices again inside the test, and forget what it saw afterwards."""
    clear_device_cache()
    yield
    clear_device_cache()
