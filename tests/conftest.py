"""Shared fixtures: a small generated sample plate, the bundled plate, and tree hashing.

``hash_tree(path)`` maps every file under ``path`` to its SHA-256, so a test can
prove that reading a plate left it byte-identical.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# CI runs the same property examples every time (a new random find must not fail a landing);
# a plain pytest run draws new ones, which is how the identify_nuclei diameter bug was found.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def hash_tree(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative POSIX path: sha256 hex}`` for every file under ``path`` (symlinks followed)."""
    root = Path(path)
    hashes = {}
    for folder, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            full = Path(folder) / name
            hashes[full.relative_to(root).as_posix()] = hashlib.sha256(full.read_bytes()).hexdigest()
    return hashes


@pytest.fixture(scope="session")
def sample_plate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ImageXpress sample plate: 2 wells x 2 sites x 2 channels x 3 Z, 128 x 128 uint16."""
    from plateflow.plate import generate_sample_plate

    return generate_sample_plate(
        tmp_path_factory.mktemp("sample") / "plate",
        wells=("A01", "B02"),
        sites=2,
        channels=2,
        z_planes=3,
        size=(128, 128),
    )


@pytest.fixture(scope="session")
def bundled_plate() -> Path:
    """The plate shipped in ``sample_data/plate`` (generated into the cache if absent)."""
    from plateflow.plate import sample_plate_path

    return sample_plate_path()


@pytest.fixture
def plate_hashes() -> Callable[[str | os.PathLike[str]], dict[str, str]]:
    """The ``hash_tree`` function, for tests that prove a plate was not modified."""
    return hash_tree


def background_unevenness(image: np.ndarray, background: np.ndarray, block: int = 16) -> float:
    """Coefficient of variation across the field of the background's level: of the medians of 16 x 16 blocks.

    Block medians average the pixel noise away, so this measures the illumination's unevenness.
    """
    levels = []
    for y in range(0, image.shape[0], block):
        for x in range(0, image.shape[1], block):
            inside = background[y : y + block, x : x + block]
            if inside.sum() >= block * block // 4:
                levels.append(float(np.median(image[y : y + block, x : x + block][inside])))
    values = np.array(levels)
    return float(values.std() / values.mean())
