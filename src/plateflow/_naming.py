"""Names and orderings every layer shares: the plate components, natural sorting, well ids.

The lowest layer of plateflow (it imports nothing from it), so that storage,
plates and declarations can all use it without depending on each other.
Component values are strings everywhere ("1", not 1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["COMPONENTS", "natural_key", "natural_sorted", "row_letters", "well_id", "well_position"]

#: The plate components a step can vary over or group by.
COMPONENTS: tuple[str, ...] = ("well", "site", "channel", "z_index", "timepoint")

_DIGITS = re.compile(r"(\d+)")
_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")


@lru_cache(maxsize=65536)  # plates repeat a few component values millions of times
def natural_key(value: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders digit runs by number: ``"9" < "10"``, ``"A2" < "A10"``."""
    parts = _DIGITS.split(str(value))
    # (kind, value) pairs keep str/int comparisons from ever meeting.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def natural_sorted(values: Iterable[str]) -> list[str]:
    """``values`` sorted with :func:`natural_key`."""
    return sorted(values, key=natural_key)


def row_letters(row: int) -> str:
    """The letters of a 1-based plate row: ``1`` is ``"A"``, ``26`` is ``"Z"``, ``27`` is ``"AA"``.

    1536-well plates have 32 rows, so rows past Z take two letters.
    """
    if row < 1:
        raise ValueError(f"plate row {row!r} must be 1 or more")
    letters = ""
    while row > 0:
        row, rem = divmod(row - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def well_id(row: int | str, column: int | str | None = None) -> str:
    """The canonical well id: row letter(s) and a 2-digit column (``"A01"``).

    ``well_id(1, 1)`` and ``well_id("a1")`` are both ``"A01"``; rows are 1-based.
    """
    if column is None:
        match = _WELL.match(str(row))
        if not match:
            raise ValueError(f"well {row!r} is not a well id; use a row letter and a column number such as 'A01'")
        return f"{match.group(1).upper()}{int(match.group(2)):02d}"
    r, c = int(row), int(column)
    if r < 1 or c < 1:
        raise ValueError(f"well row {row!r} and column {column!r} must be 1 or more")
    return f"{row_letters(r)}{c:02d}"


def well_position(well: str) -> tuple[int, int]:
    """The 1-based ``(row, column)`` of a well id, the inverse of ``well_id(row, column)``.

    ``well_position("B03")`` is ``(2, 3)``; ``well_position("AA01")`` is ``(27, 1)``.
    """
    canonical = well_id(well)
    letters = canonical.rstrip("0123456789")
    row = 0
    for letter in letters:
        row = row * 26 + (ord(letter) - ord("A") + 1)
    return row, int(canonical[len(letters):])
