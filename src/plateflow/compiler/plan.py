"""``StepPlan``: everything one step needs to run for one well, as a frozen, typed record.

A plan is one class with named fields, and it also reads as a mapping with the
seed's keys (``plan["read_backend"]``). Plans are immutable from the moment
they are made: the compiler phases make new plans with ``dataclasses.replace``
(or :meth:`StepPlan.evolve`), and execution reads nothing but plans.

What execution reads:

- ``groups``: the step's pattern groups for the well (:class:`PlannedGroup`), with
  ``plan.input_paths(group)`` (stack order) and ``plan.output_paths(group)`` (one per plane);
- ``read_backend`` / ``write_backend`` and the memory types: where planes come
  from and go, and ``input_conversion`` / ``output_conversion``, the planned
  conversions between the storage type and the function's types;
- ``device`` / ``gpu_id``: where the step's arrays live;
- ``special_inputs`` / ``special_outputs``: the VFS paths of the special values, and
  ``special_sources``: the producing groups whose values a special input can read;
- ``plate_image``: the plate's plane shape and dtype, for steps that read the plate.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

from .._frozen import FrozenDict, FrozenError, freeze
from ..config import GlobalConfig
from ..patterns import NormalizedPattern

__all__ = ["StepPlan", "PlannedGroup", "PLAN_KEYS", "special_key", "parse_special_key", "special_value_path"]


class PlannedGroup(NamedTuple):
    """One stack a step's function receives for one well (the plan's own record of a pattern group).

    Attributes:
        well: the group's well.
        fixed: values of every component not in the step's ``variable_components`` (well included).
        group_key: value of the ``group_by`` component (the dict pattern key), or ``None``.
        files: the images of the stack in stack order (``plate.model.ImageFile``), each with its
            path relative to the plate; every output folder mirrors those relative paths.

    Steps of one well with the same ``variable_components`` and ``group_by``
    share their groups; each plan names the full paths of a group with
    :meth:`StepPlan.input_paths` and :meth:`StepPlan.output_paths`.
    """

    well: str
    fixed: Mapping[str, str]
    group_key: str | None
    files: tuple[Any, ...]  # plate.model.ImageFile: typed loosely so plans need no plate import

    @property
    def relpaths(self) -> tuple[str, ...]:
        return tuple([image.path for image in self.files])

    @property
    def label(self) -> str:
        """Short text for messages, e.g. ``"A01 channel=1 z_index=1"``."""
        rest = " ".join(f"{k}={v}" for k, v in self.fixed.items() if k != "well")
        return f"{self.well} {rest}".strip()


def _join(folder: str, relpath: str) -> str:
    return f"{folder.rstrip('/')}/{relpath}" if folder else relpath


@dataclass(frozen=True, eq=False)
class StepPlan(Mapping[str, Any]):
    # The seed's keys, in its order.
    step_name: str
    step_type: str
    well_id: str | None
    input_dir: str = ""
    output_dir: str = ""
    read_backend: str = "disk"
    write_backend: str = "memory"
    input_memory_type: str | None = None
    output_memory_type: str | None = None
    gpu_id: int | None = None
    func: NormalizedPattern | None = None
    special_inputs: Mapping[str, Mapping[str, str]] = field(default_factory=FrozenDict)
    special_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenDict)
    zarr_config: Mapping[str, Any] | None = None
    force_disk_output: bool = False
    visualize: bool = False
    # plateflow's own keys.
    step_index: int = 0
    step_id: str = ""
    variable_components: tuple[str, ...] = ("site",)
    group_by: str | None = None
    #: the step's function ends the chain: the next step reads the plate's original input
    chain_breaker: bool = False
    #: this step reads the plate's own images (first step, or after a chain breaker)
    reads_plate: bool = False
    #: the well's pattern groups for this step, in run order
    groups: tuple[PlannedGroup, ...] = ()
    #: special input name -> fixed components (well left out) of each group of the producing
    #: step, which saves one value per group it runs
    special_sources: Mapping[str, tuple[tuple[tuple[str, str], ...], ...]] = field(default_factory=FrozenDict)
    #: (memory type the planes arrive in, the function's input type), when they differ
    input_conversion: tuple[str, str] | None = None
    #: (the function's output type, the memory type the planes are stored in), when they differ
    output_conversion: tuple[str, str] | None = None
    #: ((Y, X), dtype name) of the plate's images, for a step that reads the plate; None if unknown
    plate_image: tuple[tuple[int, ...], str] | None = None
    #: "cpu", "cuda:0", ... where the step's arrays live
    device: str = "cpu"
    config: GlobalConfig = field(default_factory=GlobalConfig)

    def __post_init__(self) -> None:
        self._freeze_values(_FROZEN_CHECKED)

    def _freeze_values(self, keys: Iterable[str]) -> None:
        # Deeply immutable from the start; values the phases build are frozen already (cheap to keep).
        for key in keys:
            value = self.__dict__[key]
            if key in _TUPLES:
                if type(value) is not tuple:
                    object.__setattr__(self, key, tuple(value))
            elif value is not None and type(value) is not FrozenDict:
                object.__setattr__(self, key, freeze(value))

    # -- mapping view -------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in _KEY_SET:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(PLAN_KEYS)

    def __len__(self) -> int:
        return len(PLAN_KEYS)

    def __contains__(self, key: object) -> bool:
        return key in _KEY_SET

    def __setitem__(self, key: str, value: Any) -> None:
        raise FrozenError(f"cannot set {key!r}: the plan of step {self.step_name!r} is frozen; make a new one with plan.evolve({key}=...)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StepPlan):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in PLAN_KEYS)

    __hash__ = None  # type: ignore[assignment]  # a Mapping with __eq__ and no stable hash: plans are not set members

    @property
    def is_frozen(self) -> bool:
        return True

    def freeze(self) -> "StepPlan":
        """Plans are frozen when made; kept so callers of the seed's API keep working."""
        return self

    def evolve(self, **changes: Any) -> "StepPlan":
        """A new plan with ``changes``, as ``dataclasses.replace`` makes it; this one is left as it is.

        Faster than ``replace`` (the compiler makes thousands of plans per compile):
        it copies the fields and freezes only the changed values.
        """
        unknown = [key for key in changes if key not in _KEY_SET]
        if unknown:
            raise TypeError(f"{', '.join(map(repr, unknown))} is not a plan field; plan fields are: {', '.join(PLAN_KEYS)}")
        new = object.__new__(StepPlan)
        state = new.__dict__
        state.update(self.__dict__)
        state.pop("_output_index", None)  # an index of the old plan's groups
        state.update(changes)
        new._freeze_values(key for key in changes if key in _FROZEN_CHECKED)
        return new

    def input_paths(self, group: PlannedGroup) -> tuple[str, ...]:
        """Where each image of ``group`` is read from, in stack order."""
        folder = self.input_dir
        return tuple([_join(folder, image.path) for image in group.files])

    def output_paths(self, group: PlannedGroup) -> tuple[str, ...]:
        """Where each output plane of ``group`` is saved, in stack order; a projection writes the first."""
        folder = self.output_dir
        return tuple([_join(folder, image.path) for image in group.files])

    def output_image(self, path: str) -> Any:
        """The ``ImageFile`` whose output plane this plan saves at ``path``, or ``None``."""
        return self._outputs().get(path)

    def _outputs(self) -> dict[str, Any]:
        found = self.__dict__.get("_output_index")
        if found is None:
            found = {out: image for group in self.groups for out, image in zip(self.output_paths(group), group.files)}
            object.__setattr__(self, "_output_index", found)  # a cache of the frozen groups, not state
        return found

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_output_index", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


def _refuse_change(self: StepPlan, name: str, value: Any = None) -> None:
    raise FrozenError(f"cannot change {name!r}: the plan of step {self.step_name!r} is frozen; make a new one with plan.evolve({name}=...)")


# A frozen dataclass may not define these in its body; set after the decorator, they turn the
# dataclass's FrozenInstanceError into plateflow's FrozenError (a TypeError, as for frozen mappings).
StepPlan.__setattr__ = _refuse_change  # type: ignore[method-assign,assignment]  # see the comment above
StepPlan.__delattr__ = _refuse_change  # type: ignore[method-assign,assignment]  # see the comment above

PLAN_KEYS: tuple[str, ...] = tuple(f.name for f in fields(StepPlan) if not f.name.startswith("_"))
_KEY_SET = frozenset(PLAN_KEYS)
_TUPLES = frozenset({"variable_components", "groups"})
_FROZEN_CHECKED = ("special_inputs", "special_outputs", "special_sources", "zarr_config", "variable_components", "groups")


# -- where special values live ----------------------------------------------------------------

#: The key of a special value made by a group with no fixed component besides the well.
SHARED_SPECIAL_KEY = "_"


def special_key(fixed: Mapping[str, str]) -> str:
    """The key a group's special value is saved under: its fixed components but the well, urlencoded."""
    items = [(k, v) for k, v in fixed.items() if k != "well"]
    return urlencode(items) if items else SHARED_SPECIAL_KEY


def parse_special_key(key: str) -> dict[str, str]:
    """The fixed components (the well left out) a :func:`special_key` was made from."""
    return {} if key == SHARED_SPECIAL_KEY else dict(parse_qsl(key, keep_blank_values=True))


def special_value_path(spec: Mapping[str, Any], fixed: Mapping[str, str]) -> str:
    """The VFS path of one group's value of a special output ``spec`` (``<path>/<group key>``)."""
    folder = str(spec["path"])
    return posixpath.join(folder, special_key(fixed)) if folder else special_key(fixed)
