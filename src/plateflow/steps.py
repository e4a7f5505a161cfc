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
from ._naming import well_id as _canonical_well
from .config import ConfigOverrides
from .patterns import normalize_pattern, PatternError

if TYPE_CHECKING:
    from .compiler.context import ProcessingContext

__all__ = ["COMPONENTS", "SCOPES", "FunctionStep", "Pipeline", "as_step_list", "enabled_steps"]

#: Where a step runs: once per well, or once over the images of the whole plate (docs/plate-steps.md).
SCOPES: tuple[str, ...] = ("well", "plate")


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
        scope: ``"well"`` (run once per well) or ``"plate"`` (run once over the images of the
            whole plate, or of its sample, before the per-well steps that consume its special
            outputs). For a plate step ``"well"`` always varies inside the stack; listing it in
            ``variable_components`` is allowed and dropped here.
        sample_wells: the wells a plate step reads (``None``: every well); ids are normalised
            (``"a1"`` -> ``"A01"``); a value that is not a well id is kept for the check to report.
        sample_sites: the sites a plate step reads (``None``: every site), as strings.
    """

    __slots__ = (
        "func", "name", "variable_components", "group_by", "force_disk_output", "visualize", "config", "enabled",
        "scope", "sample_wells", "sample_sites", "step_id",
    )

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
        scope: str = "well",
        sample_wells: Iterable[str] | str | None = None,
        sample_sites: Iterable[str | int] | str | int | None = None,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"FunctionStep: scope={scope!r} is not one of {', '.join(map(repr, SCOPES))}")
        if scope == "well" and (sample_wells is not None or sample_sites is not None):
            given = "sample_wells" if sample_wells is not None else "sample_sites"
            raise ValueError(f"FunctionStep: {given}= is only for plate steps; add scope='plate' or remove {given}")
        self.scope = scope
        self.sample_wells = _sample_wells(sample_wells)
        self.sample_sites = _sample_values("sample_sites", sample_sites)
        self.func = func
        if name is None or (isinstance(name, str) and not name):
            self.name = _default_name(func)
        else:
            self.name = name if isinstance(name, str) else str(name)
        components = _as_component_tuple(variable_components)
        if scope == "plate":
            components = tuple(c for c in components if c != "well")  # implied: a plate step's stack spans wells
        self.variable_components = components
        self.group_by = group_by
        self.force_disk_output = bool(force_disk_output)
        self.visualize = bool(visualize)
        self.config = ConfigOverrides(config) if config else ConfigOverrides()
        self.enabled = bool(enabled)
        self.step_id = uuid.uuid4().hex[:12]

    def __repr__(self) -> str:
        extra = f", group_by={self.group_by!r}" if self.group_by else ""
        extra += "" if self.enabled else ", enabled=False"
        if self.scope != "well":
            extra += f", scope={self.scope!r}"
            extra += f", sample_wells={self.sample_wells!r}" if self.sample_wells is not None else ""
            extra += f", sample_sites={self.sample_sites!r}" if self.sample_sites is not None else ""
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
            "scope": self.scope,
            "sample_wells": self.sample_wells,
            "sample_sites": self.sample_sites,
        }
        if changes.get("scope") == "well" and "sample_wells" not in changes and "sample_sites" not in changes:
            values["sample_wells"] = values["sample_sites"] = None  # a per-well copy of a plate step keeps no sample
        values.update(changes)
        return FunctionStep(**values)

    def process(self, context: "ProcessingContext") -> None:
        """Run this step for the context's well, reading only the frozen plan."""
        from .execution.step_runner import process_step

        process_step(self, context)


def _sample_values(what: str, values: Any) -> tuple[str, ...] | None:
    """``None``, or the values as a tuple of strings (a single value is a one-item sample)."""
    if values is None:
        return None
    items = (values,) if isinstance(values, (str, int)) else values
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise ValueError(f"FunctionStep: {what}={values!r} must be None or a list of values, e.g. ('1', '3')")
    found: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(f"FunctionStep: {what} holds {item!r} ({type(item).__name__}); give its values as text, e.g. ('1', '3')")
        text = str(item)
        if text not in found:
            found.append(text)
    if not found:
        raise ValueError(f"FunctionStep: {what} is empty; give at least one value, or None for all of them")
    return tuple(found)


def _sample_wells(values: Any) -> tuple[str, ...] | None:
    wells = _sample_values("sample_wells", values)
    if wells is None:
        return None
    normalised: list[str] = []
    for well in wells:
        try:
            well = _canonical_well(well)
        except ValueError:
            pass  # not a well id: kept as written, the check reports it (sample-well-invalid) on its field
        if well not in normalised:
            normalised.append(well)
    return tuple(normalised)


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
