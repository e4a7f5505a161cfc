"""The plate data model: one image file, and a group of files that form one stack.

Component values are strings everywhere ("1", not 1) so they read the same in
file names, plans, pipeline files and dict patterns; numeric-looking values are
normalised without leading zeros (Phenix ``f01`` is site ``"1"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .._frozen import FrozenDict
from .._naming import COMPONENTS, natural_key, natural_sorted, well_id, well_position  # re-exported: older imports keep working

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
    stack_order = tuple(c for c in COMPONENTS if c in variable)
    buckets: dict[tuple[str, ...], list[ImageFile]] = {}
    for f in files:
        values = f.__dict__  # a frozen dataclass: its fields, read without one getattr call each
        buckets.setdefault(tuple([values[c] for c in fixed_names]), []).append(f)

    def stack_key(f: ImageFile) -> tuple:
        values = f.__dict__
        return tuple([natural_key(values[c]) for c in stack_order])

    def bucket_key(key: tuple[str, ...]) -> tuple:
        return tuple(map(natural_key, key))

    groups = []
    for key in sorted(buckets, key=bucket_key):
        fixed = dict(zip(fixed_names, key))
        members = buckets[key]
        groups.append(
            PatternGroup(
                well=fixed["well"],
                fixed=FrozenDict(fixed),
                group_key=fixed[group_by] if group_by is not None else None,
                files=tuple(sorted(members, key=stack_key)) if len(members) > 1 else tuple(members),
            )
        )
    return groups
