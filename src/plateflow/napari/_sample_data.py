"""The npe2 sample-data entry: the bundled sample plate, opened with the plate reader."""

from __future__ import annotations

from plateflow.plate import sample_plate_path

from ._reader import read_plate

__all__ = ["make_sample_plate"]


def make_sample_plate() -> list[tuple]:
    """One image layer per channel of the bundled sample plate (4 wells x 4 sites x 3 Z planes)."""
    return read_plate(sample_plate_path())
