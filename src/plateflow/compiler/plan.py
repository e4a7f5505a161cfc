"""``StepPlan``: everything one step needs to run for one well, as a typed record.

A plan is one class with named fields, and it also reads as a mapping with the
seed's keys (``plan["read_backend"]``). The phases fill it in; ``freeze()``
makes it and everything inside it read-only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .._frozen import FrozenError, freeze
from ..config import GlobalConfig
from ..patterns import NormalizedPattern

__all__ = ["StepPlan", "PLAN_KEYS"]


@dataclass(eq=False)
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
    special_inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    special_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
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
    #: memory type the input arrives in before conversion ("numpy" from disk)
    input_arrives_as: str | None = None
    #: "cpu", "cuda:0", ... where the step's arrays live
    device: str = "cpu"
    config: GlobalConfig = field(default_factory=GlobalConfig)
    _frozen: bool = field(default=False, repr=False)

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
        if key not in _KEY_SET:
            raise KeyError(f"{key!r} is not a plan key; plan keys are: {', '.join(PLAN_KEYS)}")
        setattr(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise FrozenError(f"cannot set {name!r}: the plan of step {self.step_name!r} is frozen")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"cannot delete {name!r} from a plan")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StepPlan):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in PLAN_KEYS)

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> "StepPlan":
        """Make this plan and every value in it deeply read-only (idempotent)."""
        if self._frozen:
            return self
        for key in PLAN_KEYS:
            if key != "config":
                object.__setattr__(self, key, freeze(getattr(self, key)))
        object.__setattr__(self, "_frozen", True)
        return self


PLAN_KEYS: tuple[str, ...] = tuple(f.name for f in fields(StepPlan) if not f.name.startswith("_"))
_KEY_SET = frozenset(PLAN_KEYS)
