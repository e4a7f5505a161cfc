"""``ProcessingContext``: one well's compiled plans, frozen before anything runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._frozen import FrozenDict, FrozenError
from ..config import GlobalConfig
from .plan import StepPlan

if TYPE_CHECKING:
    from ..vfs import FileManager

__all__ = ["ProcessingContext", "VisualizerRequest"]


class VisualizerRequest(tuple):
    """(step_index, step_id, step_name): a step whose output the napari visualizer shows."""

    __slots__ = ()
    _fields = ("step_index", "step_id", "step_name")

    def __new__(cls, step_index: int, step_id: str, step_name: str) -> "VisualizerRequest":
        return super().__new__(cls, (step_index, step_id, step_name))

    step_index = property(lambda self: self[0])
    step_id = property(lambda self: self[1])
    step_name = property(lambda self: self[2])


class ProcessingContext:
    """The compiled plans of one well.

    Args:
        global_config: the run's configuration before plate/step overrides.
        well_id: the well these plans are for (``None`` when checking without a plate).
        filemanager: the VFS the steps load from and save to.
    """

    def __init__(self, global_config: GlobalConfig | None, well_id: str | None, filemanager: "FileManager | None" = None) -> None:
        self.global_config = global_config if global_config is not None else GlobalConfig()
        self.well_id = well_id
        self.filemanager = filemanager
        self.step_plans: dict[str, StepPlan] = {}
        self.step_order: list[str] = []  # step ids in pipeline order
        self.required_visualizers: list[VisualizerRequest] = []
        self.plate: Any = None  # the Plate (read-only index) the plans were compiled against
        self.output_root: str = ""
        self.well_index: int = 0  # position of the well in the compile, for GPU balancing
        self.diagnostics: Any = None  # the DiagnosticSink of the compile that made it
        #: step id -> PlateStepPlan of the pipeline's plate steps (the same object in every context of a compile)
        self.plate_plans: Any = FrozenDict()
        self._frozen = False

    # -- immutability ---------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise FrozenError(f"cannot set {name!r}: the context of well {self.well_id!r} is frozen")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"cannot delete {name!r} from a context")

    def freeze(self) -> "ProcessingContext":
        """Freeze the context and every plan in it, deeply. Idempotent."""
        if self._frozen:
            return self
        for plan in self.step_plans.values():
            plan.freeze()
        object.__setattr__(self, "step_plans", FrozenDict(self.step_plans))
        object.__setattr__(self, "step_order", tuple(self.step_order))
        object.__setattr__(self, "required_visualizers", tuple(self.required_visualizers))
        object.__setattr__(self, "diagnostics", None)  # compile-time only; keeps contexts small to ship
        object.__setattr__(self, "_frozen", True)
        return self

    def is_frozen(self) -> bool:
        return self._frozen

    # -- reading ---------------------------------------------------------------
    def plan(self, step_or_id: Any) -> StepPlan:
        step_id = step_or_id if isinstance(step_or_id, str) else step_or_id.step_id
        return self.step_plans[step_id]

    def plans(self) -> list[StepPlan]:
        """Plans in pipeline order."""
        return [self.step_plans[step_id] for step_id in self.step_order]

    def __repr__(self) -> str:
        state = "frozen" if self._frozen else "open"
        return f"ProcessingContext(well_id={self.well_id!r}, steps={len(self.step_plans)}, {state})"

    def rebind(self, *, plate: Any = None, filemanager: "FileManager | None" = None) -> "ProcessingContext":
        """A copy sharing the (frozen) plans that reads ``plate`` and uses ``filemanager``.

        Workers get contexts without the plate index (shipped once per worker)
        and without the parent's file manager (each process has its own memory).
        """
        state = dict(self.__dict__)
        state["plate"] = plate if plate is not None else self.plate
        state["filemanager"] = filemanager
        copy = ProcessingContext.__new__(ProcessingContext)
        copy.__setstate__(state)
        return copy

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
