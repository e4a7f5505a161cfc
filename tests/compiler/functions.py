"""Small decorated functions, a plate stand-in and diagnostic filters shared by the compiler tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from plateflow import chain_breaker, special_inputs, special_outputs
from plateflow.memory import numpy, torch
from plateflow.signatures import Bounds


class Mode(Enum):
    NEAREST = "nearest"
    REFLECT = "reflect"


@numpy
def blur(stack, sigma: Annotated[float, Bounds(0, 50)] = 1.0, mode: Literal["nearest", "reflect"] = "nearest"):
    return stack


@numpy
def scale(stack, factor: float):
    return stack * factor


@numpy
def pad(stack, mode: Mode = Mode.NEAREST, width: int = 1):
    return stack


@numpy(output_type="torch")
def to_torch(stack):
    return stack


@torch
def torch_blur(stack, sigma: float = 1.0):
    return stack


@torch(input_type="torch", output_type="numpy")
def torch_to_numpy(stack):
    return stack


@special_outputs("positions")
@numpy
def find_positions(stack):
    return stack, [(0, 0)]


@special_inputs("positions")
@numpy
def assemble(stack, positions):
    return stack


@special_outputs("counts", materialize=True)
@numpy
def count(stack):
    return stack, [{"count": 1}]


@chain_breaker
@numpy
def project(stack):
    return stack[:1]


def undecorated(stack):
    return stack


@dataclass
class FakeHandler:
    name: str = "fake"


@dataclass
class FakePlate:
    """Just what the compiler reads from a Plate."""

    root: Path
    wells: tuple[str, ...] = ("A01", "A02", "B01")
    components: dict = field(
        default_factory=lambda: {
            "well": ("A01", "A02", "B01"),
            "site": ("1", "2"),
            "channel": ("1", "2"),
            "z_index": ("1", "2", "3"),
            "timepoint": ("1",),
        }
    )
    channel_names: dict = field(default_factory=lambda: {"1": "DAPI", "2": "FITC"})
    pixel_size: float | None = 0.65
    microscope_handler: FakeHandler = field(default_factory=FakeHandler)
    format_name: str = "fake"
    image_shape: tuple[int, int] = (8, 8)
    dtype: str = "uint16"

    def files_for_well(self, well: str) -> tuple:
        """Every image of the well's grid, in plate order (named like ImageXpress files)."""
        from itertools import product

        from plateflow.plate import ImageFile

        names = ("site", "channel", "z_index", "timepoint")
        return tuple(
            ImageFile(f"{well}_s{s}_w{c}_z{z}_t{t}.tif", well, s, c, z, t)
            for s, c, z, t in product(*(self.components[n] for n in names))
        )


# -- picking diagnostics -------------------------------------------------------------------


def found(diagnostics, code):
    """The diagnostics of ``code``; fails, listing what there is, when there is none."""
    hits = [d for d in diagnostics if d.code == code]
    assert hits, f"no {code} in {[(d.code, d.field, d.message) for d in diagnostics]}"
    return hits


def errors(diagnostics):
    return [d for d in diagnostics if d.severity == "error"]
