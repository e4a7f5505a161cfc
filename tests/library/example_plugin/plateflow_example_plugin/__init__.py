"""A minimal plateflow plugin: its decorated functions are registered through an entry point."""

from __future__ import annotations

from typing import Annotated

from plateflow.memory import numpy
from plateflow.signatures import Bounds, Unit

__all__ = ["invert"]


@numpy
def invert(stack, *, maximum: Annotated[float, Bounds(0, None), Unit("counts")] = 1.0):
    """Invert intensities: ``maximum - stack``.

    Parameters
    ----------
    maximum : float
        The value that black becomes, in intensity counts.
    """
    return maximum - stack


invert.category = "filter"


def provide():
    """The entry point form that returns functions under names it chooses."""
    return {"example.invert_named": invert}
