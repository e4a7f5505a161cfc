"""Pipeline templates: ``FunctionStep`` and ``Pipeline``.

Steps are templates: they hold what the user declared and nothing per well. The
compiler turns them into one frozen plan per well; ``step.process(context)``
only reads that plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from ._callables import readable_name
from ._naming import COMPONENTS  # the plate components a step can vary over or group by (one home for every layer)
from .config import ConfigOverrides
from .patterns import normalize_pattern, PatternError

if TYPE_CHECKING:
    from .compiler.context import ProcessingContext

__all__ = ["COMPONENTS", "FunctionStep", "Pipeline", "as_step_list", "enabled_steps"]


def _as_component_tuple(value: Any) -> tuple[Any, ...]:
    """``"site"`` -> ``("site",)``; a list as a tuple; anything else kept whole for the check to name."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple, set, frozenset)) or (isinstance(value, Iterable) and not isinstance(value, Mapping)):
        return tuple(value)
    return (value,)


class FunctionStep:
    """One processing step: a function pattern and how the plate's images feed it.

    Args:
        func: the function pattern (a function, ``(function, kwargs)``, a list of
            those, or a dict of those keyed by values of ``group_by``). Kept exactly
            as given; the compiler stores the normalized form in the plan.
        name: shown in the builder, in layers and in diagnostics; defaults to the
            function's name.
        variable_components: components that vary inside one stack handed to the
            function; every other combination is a separate call.
        group_by: the component whose values key a dict pattern.
        force_disk_output: write this step's output to disk even in the middle of a pipeline.
        visualize: show this step's output in napari while tuning.
        config: settings that override the plate's and the global config for this step.
        enabled: ``False`` keeps the step in the pipeline (and its file) but leaves it out of
            checking, compiling and running; step numbers in diagnostics count enabled steps.
    """

    __slots__ = ("func", "name", "variable_components", "group_by", "force_disk_output", "visualize", "config", "enabled", "step_id")

    def __init__(
        self,
        func: Any,
        name: str | None = None,
        variable_components: Sequence[str] | str = ("site",),
        group_by: str | None = None,
        force_disk_output: bool = False,
        visualize: bool = False,
        *,
        config: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> None:
        self.func = func
        if name is None or (isinstance(name, str) and not name):
            self.name = _default_name(func)
        else:
            self.name = name if isinstance(name, str) else str(name)
        self.variable_components = _as_component_tuple(variable_components)
        self.group_by = group_by
        self.force_disk_output = bool(force_disk_output)
        self.visualize = bool(visualize)
        self.config = ConfigOverrides(config) if config else ConfigOverrides()
        self.enabled = bool(enabled)
        self.step_id = uuid.uuid4().hex[:12]

    def __repr__(self) -> str:
        extra = f", group_by={self.group_by!r}" if self.group_by else ""
        extra += "" if self.enabled else ", enabled=False"
        return f"FunctionStep(name={self.name!r}, variable_components={self.variable_components!r}{extra})"

    def copy(self, **changes: Any) -> "FunctionStep":
        """A new step (new ``step_id``) with some attributes changed."""
        values = {
            "func": self.func,
            "name": self.name,
            "variable_components": self.variable_components,
            "group_by": self.group_by,
            "force_disk_output": self.force_disk_output,
            "visualize": self.visualize,
            "config": dict(self.config),
            "enabled": self.enabled,
        }
        values.update(changes)
        return FunctionStep(**values)

    def process(self, context: "ProcessingContext") -> None:
        """Run this step for the context's well, reading only the frozen plan."""
        from .execution.step_runner import process_step

        process_step(self, context)


def _default_name(func: Any) -> str:
    try:
        pattern = normalize_pattern(func)
    except PatternError:
        return "step"
    except Exception:  # noqa: BLE001 - an odd object in the pattern: the check reports it; the name stays plain
        return "step"
    names = []
    for call in pattern.calls():
        n = readable_name(call.func).rsplit(".", 1)[-1]
        if n not in names:
            names.append(n)
    return " + ".join(names) if names else "step"


class Pipeline(Sequence[FunctionStep]):
    """An ordered list of steps with a name. Anywhere a pipeline is taken, a list works too."""

    def __init__(self, steps: Iterable[FunctionStep] = (), name: str = "pipeline", description: str = "") -> None:
        self.steps: list[FunctionStep] = list(steps)
        self.name = name
        self.description = description

    @overload
    def __getitem__(self, index: int) -> FunctionStep: ...
    @overload
    def __getitem__(self, index: slice) -> list[FunctionStep]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.steps[index]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[FunctionStep]:
        return iter(self.steps)

    def __repr__(self) -> str:
        return f"Pipeline({self.steps!r}, name={self.name!r})"


def as_step_list(pipeline: "Pipeline | FunctionStep | Iterable[FunctionStep] | None") -> list[Any]:
    """The steps of a Pipeline, a list, a tuple or a generator of steps, or of one step.

    Anything else (a bare function, a string, a mapping) becomes a one-item list,
    so the check reports it as "not a step" on its place instead of failing.
    """
    if pipeline is None:
        return []
    if isinstance(pipeline, Pipeline):
        return list(pipeline.steps)
    if isinstance(pipeline, FunctionStep) or isinstance(pipeline, (str, bytes, Mapping)) or not isinstance(pipeline, Iterable):
        return [pipeline]
    return list(pipeline)


def enabled_steps(pipeline: "Pipeline | Iterable[FunctionStep]") -> list[FunctionStep]:
    """The steps that run: disabled steps (``enabled=False``) left out."""
    return [step for step in as_step_list(pipeline) if getattr(step, "enabled", True) is not False]
