"""The plate data model: one image file, and a group of files that form one stack.

Component values are strings everywhere ("1", not 1) so they read the same in
file names, plans, pipeline files and dict patterns; numeric-looking values are
normalised without leading zeros (Phenix ``f01`` is site ``"1"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from .._frozen import FrozenDict
from ..steps import COMPONENTS

__all__ = [
    "COMPONENTS",
    "ImageFile",
    "PatternGroup",
    "natural_key",
    "natural_sorted",
    "well_id",
    "well_position",
    "validate_components",
    "group_files",
]

_DIGITS = re.compile(r"(\d+)")
_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")


def natural_key(value: str) -> tuple:
    """Sort key that orders digit runs by number: ``"9" < "10"``, ``"A2" < "A10"``."""
    parts = _DIGITS.split(str(value))
    # (kind, value) pairs keep str/int comparisons from ever meeting.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def natural_sorted(values: Iterable[str]) -> list[str]:
    """``values`` sorted with :func:`natural_key`."""
    return sorted(values, key=natural_key)


def _row_letters(row: int) -> str:
    # 1 -> A, 26 -> Z, 27 -> AA (1536-well plates have 32 rows).
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
    return f"{_row_letters(r)}{c:02d}"


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


def validate_components(names: Iterable[str] | str | None, *, field: str = "variable_components") -> tuple[str, ...]:
    """Check component names, returning them as a tuple; unknown names raise ``ValueError``."""
    if names is None:
        return ()
    items = (names,) if isinstance(names, str) else tuple(names)
    bad = [n for n in items if n not in COMPONENTS]
    if bad:
        raise ValueError(f"{field} has unknown component(s) {', '.join(map(repr, bad))}; valid components: {', '.join(COMPONENTS)}")
    if len(set(items)) != len(items):
        raise ValueError(f"{field}={items!r} names a component twice")
    return items


@dataclass(frozen=True)
class ImageFile:
    """One image of a plate, located by its five components.

    Attributes:
        path: POSIX path relative to the plate root (or to an output folder that mirrors it).
    """

    path: str
    well: str
    site: str
    channel: str
    z_index: str
    timepoint: str

    def component(self, name: str) -> str:
        """The value of one component (``"well"``, ``"site"``, ``"channel"``, ``"z_index"``, ``"timepoint"``)."""
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}; valid components: {', '.join(COMPONENTS)}")
        return getattr(self, name)

    @property
    def components(self) -> dict[str, str]:
        """All five component values, in ``COMPONENTS`` order."""
        return {name: getattr(self, name) for name in COMPONENTS}

    def sort_key(self) -> tuple:
        return tuple(natural_key(getattr(self, name)) for name in COMPONENTS)


@dataclass(frozen=True)
class PatternGroup:
    """The files that form one stack handed to a step's function.

    Attributes:
        well: the group's well.
        fixed: values of every component not in ``variable_components`` (well included).
        group_key: value of the ``group_by`` component, or ``None``.
        files: the stack, ordered by the variable components in ``COMPONENTS`` order.
    """

    well: str
    fixed: Mapping[str, str]
    group_key: str | None
    files: tuple[ImageFile, ...]

    @property
    def label(self) -> str:
        """Short text for messages, e.g. ``"A01 channel=1 z_index=1"``."""
        rest = " ".join(f"{k}={v}" for k, v in self.fixed.items() if k != "well")
        return f"{self.well} {rest}".strip()

    def __len__(self) -> int:
        return len(self.files)


def group_files(
    files: Iterable[ImageFile],
    variable_components: Sequence[str] | str = ("site",),
    group_by: str | None = None,
) -> list[PatternGroup]:
    """Group files into stacks: one group per combination of the fixed components.

    Groups come in a stable order (well, then fixed component values, naturally
    sorted); files inside a group are ordered by the variable components in
    ``COMPONENTS`` order.
    """
    variable = validate_components(variable_components)
    if "well" in variable:
        raise ValueError("variable_components cannot include 'well': a stack never spans wells; "
                         f"choose from: {', '.join(c for c in COMPONENTS if c != 'well')}")
    if group_by is not None:
        validate_components((group_by,), field="group_by")
        if group_by in variable:
            raise ValueError(f"group_by={group_by!r} is also in variable_components={variable!r}; "
                             "a dict pattern keys on a component that is fixed inside each stack")
    fixed_names = tuple(c for c in COMPONENTS if c not in variable)
    buckets: dict[tuple[str, ...], list[ImageFile]] = {}
    for f in files:
        buckets.setdefault(tuple(getattr(f, c) for c in fixed_names), []).append(f)

    stack_order = tuple(c for c in COMPONENTS if c in variable)

    def stack_key(f: ImageFile) -> tuple:
        return tuple(natural_key(getattr(f, c)) for c in stack_order)

    groups = []
    for key in sorted(buckets, key=lambda k: tuple(natural_key(v) for v in k)):
        fixed = dict(zip(fixed_names, key))
        members = tuple(sorted(buckets[key], key=stack_key))
        groups.append(
            PatternGroup(
                well=fixed["well"],
                fixed=FrozenDict(fixed),
                group_key=fixed[group_by] if group_by is not None else None,
                files=members,
            )
        )
    return groups
