"""Fixtures for the execution tests: small generated plates and helpers to compare outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow.plate import generate_sample_plate


def make_plate(root: Path, wells=("A01", "B02"), **kwargs) -> Path:
    options = dict(sites=2, channels=2, z_planes=3, size=(64, 64))
    options.update(kwargs)
    return generate_sample_plate(root, wells=wells, **options)


def read_tree(root: Path) -> dict[str, np.ndarray]:
    """Every TIFF under ``root`` (outside bookkeeping folders) by relative path."""
    images = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".zarr")]
        for name in files:
            if name.endswith(".tif"):
                path = Path(folder) / name
                images[path.relative_to(root).as_posix()] = tifffile.imread(path)
    return images


def tree_bytes(root: Path) -> dict[str, bytes]:
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith((".tif", ".csv")):
                path = Path(folder) / name
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


@pytest.fixture(scope="session")
def small_plate(tmp_path_factory) -> Path:
    """2 wells x 2 sites x 2 channels x 3 Z, 64 x 64 uint16 (read-only in tests)."""
    return make_plate(tmp_path_factory.mktemp("exec") / "plate")


@pytest.fixture(scope="session")
def four_well_plate(tmp_path_factory) -> Path:
    return make_plate(tmp_path_factory.mktemp("exec4") / "plate", wells=("A01", "A02", "B01", "B02"))
