"""The editing document behind the builder widget: pure Python, no Qt.

It holds only what the user is typing: for each step a name, an enabled flag,
the components, and the function pattern as chains of :class:`CallModel`
(registry name + keyword arguments). :meth:`PipelineModel.to_pipeline` turns it
into core ``FunctionStep`` objects, and :meth:`PipelineModel.load` reads them
back. Everything the builder *shows about* the pipeline (memory types,
conversions, special-input links, the place each diagnostic names) comes from
the compiler's one result, :func:`plateflow.analyze`; this module knows none of
those rules. A call's place in the pattern is the compiler's
:func:`~plateflow.compiler.place_path` of where :meth:`StepModel.to_step` puts it.

Every edit goes through a method that records an undo snapshot and emits
``changed`` (and ``structure_changed`` when steps are added, removed, moved,
renamed or switched on or off); :meth:`PipelineModel.undo` /
:meth:`PipelineModel.redo` step through the snapshots.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from psygnal import Signal

from plateflow import FunctionStep, Pipeline
from plateflow.compiler.diagnostics import place_path
from plateflow.library import registry
from plateflow.patterns import PatternError, normalize_pattern
from plateflow.steps import COMPONENTS

__all__ = [
    "CallModel",
    "StepModel",
    "PipelineModel",
    "EDITABLE_COMPONENTS",
    "default_components",
]

#: Components a step can vary over or group by in the builder (a stack never spans wells).
EDITABLE_COMPONENTS: tuple[str, ...] = tuple(c for c in COMPONENTS if c != "well")


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class CallModel:
    """One function of a step: its registry name and the keyword arguments the user set.

    ``kwargs`` holds only what was set (a form shows defaults for the rest).
    ``func`` is the function itself when it is not in the registry (a pipeline
    built in Python with a user function); ``function`` is then its name.
    """

    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    func: Callable[..., Any] | None = None
    #: text typed into a keyword's field that is not a valid value yet (name -> text); the
    #: builder reports each as an error on its field until it is fixed
    invalid: dict[str, str] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        """The function to call; ``KeyError`` (with close names) for an unknown registry name."""
        return self.func if self.func is not None else registry.get(self.function)

    @property
    def registered(self) -> bool:
        return self.func is None

    def clone(self) -> "CallModel":
        return CallModel(self.function, copy.deepcopy(self.kwargs), self.func, dict(self.invalid))

    def pattern_item(self) -> Any:
        func = self.resolve()
        return (func, dict(self.kwargs)) if self.kwargs else func


#: The components a new step varies over, by registry category (the rest: the FunctionStep default).
_CATEGORY_COMPONENTS: dict[str, tuple[str, ...]] = {
    "projection": ("z_index",),
    "stitching": ("site",),
    "composite": ("channel",),
}


def default_components(function: str) -> tuple[str, ...]:
    """What a new step running ``function`` varies over: a projection over Z, a composite over channels."""
    try:
        category = registry.info(function).category
    except KeyError:
        return ("site",)
    return _CATEGORY_COMPONENTS.get(category, ("site",))


@dataclass
class StepModel:
    """One editable step.

    ``chains`` maps ``None`` to the step's chain, or (per group mode) each value
    of ``group_by`` to its own chain.
    """

    name: str
    chains: dict[str | None, list[CallModel]]
    variable_components: tuple[str, ...] = ("site",)
    group_by: str | None = None
    enabled: bool = True
    force_disk_output: bool = False
    visualize: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    #: "plate" for a plate-level step (docs/plate-steps.md), with its sample (None: all)
    scope: str = "well"
    sample_wells: tuple[str, ...] | None = None
    sample_sites: tuple[str, ...] | None = None
    step_id: str = field(default_factory=_new_id)

    @property
    def per_group(self) -> bool:
        """Whether the step holds one chain per value of ``group_by`` (a dict pattern)."""
        return None not in self.chains

    def calls(self) -> Iterable[tuple[str | None, int, CallModel]]:
        """``(key, index, call)`` for every call, in pattern order."""
        for key, chain in self.chains.items():
            for index, call in enumerate(chain):
                yield key, index, call

    def path(self, key: str | None, index: int) -> tuple[str | int, ...]:
        """The compiler's place path of a call, where :meth:`to_step` puts it (a chain of one is a bare item)."""
        return place_path(key, index if len(self.chains[key]) > 1 else None)

    def call_paths(self) -> list[tuple[tuple[str | int, ...], str | None, int]]:
        """``(path, key, index)`` of every call, in pattern order."""
        return [(self.path(key, index), key, index) for key, index, _ in self.calls()]

    def first_calls(self) -> list[CallModel]:
        return [chain[0] for chain in self.chains.values() if chain]

    def last_calls(self) -> list[CallModel]:
        return [chain[-1] for chain in self.chains.values() if chain]

    def pattern(self) -> Any:
        """The function pattern this step stands for (resolving registry names)."""

        def chain_pattern(chain: list[CallModel]) -> Any:
            if len(chain) == 1:
                return chain[0].pattern_item()
            return [call.pattern_item() for call in chain]

        if not self.per_group:
            chain = self.chains[None]
            return chain_pattern(chain) if chain else []
        return {key: chain_pattern(chain) if chain else [] for key, chain in self.chains.items()}

    def to_step(self) -> FunctionStep:
        return FunctionStep(
            self.pattern(),
            name=self.name,
            variable_components=self.variable_components,
            group_by=self.group_by,
            force_disk_output=self.force_disk_output,
            visualize=self.visualize,
            config=self.config or None,
            enabled=self.enabled,
            scope=self.scope,
            sample_wells=self.sample_wells,
            sample_sites=self.sample_sites,
        )

    def clone(self, name: str | None = None) -> "StepModel":
        return StepModel(
            name=self.name if name is None else name,
            chains={key: [call.clone() for call in chain] for key, chain in self.chains.items()},
            variable_components=self.variable_components,
            group_by=self.group_by,
            enabled=self.enabled,
            force_disk_output=self.force_disk_output,
            visualize=self.visualize,
            config=copy.deepcopy(self.config),
            scope=self.scope,
            sample_wells=self.sample_wells,
            sample_sites=self.sample_sites,
        )

    @classmethod
    def from_step(cls, step: FunctionStep, enabled: bool | None = None) -> "StepModel":
        """Read a core step. Unregistered functions are kept as themselves."""
        try:
            pattern = normalize_pattern(step.func)
        except PatternError as error:
            raise ValueError(f"step {step.name!r} has a malformed function pattern: {error}") from error
        chains: dict[str | None, list[CallModel]] = {}
        for key, chain in pattern.chains.items():
            chains[key] = [_call_from(call.func, call.kwargs) for call in chain]
        return cls(
            name=step.name,
            chains=chains,
            variable_components=tuple(step.variable_components),
            group_by=step.group_by,
            enabled=getattr(step, "enabled", True) if enabled is None else enabled,
            force_disk_output=step.force_disk_output,
            visualize=step.visualize,
            config=dict(step.config),
            scope=getattr(step, "scope", "well"),
            sample_wells=getattr(step, "sample_wells", None),
            sample_sites=getattr(step, "sample_sites", None),
        )


def _call_from(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> CallModel:
    name = registry.name_of(func)
    if name is not None:
        return CallModel(name, dict(kwargs))
    label = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return CallModel(label, dict(kwargs), func)


def default_step_name(function: str) -> str:
    """``numpy.gaussian_filter`` -> ``gaussian_filter``."""
    return function.rsplit(".", 1)[-1]


class PipelineModel:
    """The steps being edited, with signals for the view.

    Signals:
        changed: any edit.
        structure_changed: steps added, removed, moved, renamed, enabled or disabled.
        step_changed(step_id): the content of one step (functions, kwargs, components).
    """

    changed = Signal()
    structure_changed = Signal()
    step_changed = Signal(str)

    #: Edits of the same field closer together than this (seconds) are one undo step (a spin box's arrows).
    MERGE_SECONDS = 1.5

    def __init__(self, steps: Iterable[StepModel] = (), name: str = "pipeline", description: str = "") -> None:
        self.steps: list[StepModel] = list(steps)
        self.name = name
        self.description = description
        self._history: list[tuple[Any, ...]] = [self._snapshot()]
        self._position = 0
        self._merge: tuple[Any, float] | None = None
        self._restoring = False

    # -- reading ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def step(self, step_id: str) -> StepModel:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        raise KeyError(f"no step with id {step_id!r}")

    def index_of(self, step_id: str) -> int:
        for index, step in enumerate(self.steps):
            if step.step_id == step_id:
                return index
        raise KeyError(f"no step with id {step_id!r}")

    def enabled_steps(self) -> list[StepModel]:
        """The steps the checked and run pipeline holds, in order."""
        return [s for s in self.steps if s.enabled]

    def step_for_pipeline_index(self, index: int | None) -> StepModel | None:
        """The step a diagnostic's 0-based ``step_index`` names (it counts enabled steps only)."""
        enabled = self.enabled_steps()
        if index is None or not 0 <= index < len(enabled):
            return None
        return enabled[index]

    def to_pipeline(self, *, include_disabled: bool = False) -> Pipeline:
        """The core pipeline of the enabled steps (with ``include_disabled``, every step,
        the disabled ones marked ``enabled=False``: what pipeline files keep).

        Raises ``KeyError`` when a step names a function that is not in the registry.
        """
        steps = self.steps if include_disabled else self.enabled_steps()
        return Pipeline([s.to_step() for s in steps], name=self.name, description=self.description)

    # -- whole-pipeline edits ---------------------------------------------------------
    def _emit(self, step_id: str | None = None, structure: bool = False, merge: Any = None) -> None:
        if not self._restoring:
            self._record(merge)
        if structure:
            self.structure_changed.emit()
        if step_id is not None:
            self.step_changed.emit(step_id)
        self.changed.emit()

    # -- undo / redo -----------------------------------------------------------------------
    def _snapshot(self) -> tuple[Any, ...]:
        steps = tuple(
            replace(step, chains={key: [call.clone() for call in chain] for key, chain in step.chains.items()}, config=copy.deepcopy(step.config))
            for step in self.steps
        )
        return steps, self.name, self.description

    def _record(self, merge: Any) -> None:
        """Keep the state after an edit; a repeat edit of the same field soon after replaces the last state."""
        now = time.monotonic()
        del self._history[self._position + 1 :]
        merging = merge is not None and self._merge is not None and self._merge[0] == merge and now - self._merge[1] < self.MERGE_SECONDS
        if merging and self._position > 0:
            self._history[self._position] = self._snapshot()
        else:
            self._history.append(self._snapshot())
            self._position += 1
        self._merge = (merge, now) if merge is not None else None

    @property
    def can_undo(self) -> bool:
        return self._position > 0

    @property
    def can_redo(self) -> bool:
        return self._position < len(self._history) - 1

    def undo(self) -> bool:
        """Go back to the state before the last edit; ``False`` when there is none."""
        if not self.can_undo:
            return False
        self._position -= 1
        self._restore(self._history[self._position])
        return True

    def redo(self) -> bool:
        """Do again the edit the last undo took back; ``False`` when there is none."""
        if not self.can_redo:
            return False
        self._position += 1
        self._restore(self._history[self._position])
        return True

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        steps, self.name, self.description = snapshot
        # The history keeps its own copies: edits after this one must not change them.
        self.steps = [replace(step, chains={key: [call.clone() for call in chain] for key, chain in step.chains.items()}) for step in steps]
        self._merge = None
        self._restoring = True
        try:
            self._emit(structure=True)
        finally:
            self._restoring = False

    def load(self, pipeline: Pipeline | Sequence[FunctionStep]) -> None:
        """Replace every step with those of a core pipeline."""
        steps = pipeline.steps if isinstance(pipeline, Pipeline) else list(pipeline)
        self.steps = [StepModel.from_step(s) for s in steps]
        if isinstance(pipeline, Pipeline):
            self.name, self.description = pipeline.name, pipeline.description
        self._emit(structure=True)

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline | Sequence[FunctionStep]) -> "PipelineModel":
        model = cls()
        model.load(pipeline)
        return model

    def clear(self) -> None:
        """No steps, and the default name and description (undo brings them back)."""
        self.steps = []
        self.name, self.description = "pipeline", ""
        self._emit(structure=True)

    # -- step list edits ----------------------------------------------------------------
    def add_step(
        self,
        function: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        index: int | None = None,
        variable_components: Sequence[str] | None = None,
        group_by: str | None = None,
    ) -> StepModel:
        """Add a step running registry function ``function`` (at ``index``, default the end); returns it.

        ``variable_components`` defaults to what suits the function's category
        (:func:`default_components`: a projection varies over ``z_index``).
        """
        registry.get(function)  # KeyError with close names for a typo
        step = StepModel(
            name=name or default_step_name(function),
            chains={None: [CallModel(function, dict(kwargs or {}))]},
            variable_components=tuple(default_components(function) if variable_components is None else variable_components),
            group_by=group_by,
        )
        self.steps.insert(len(self.steps) if index is None else index, step)
        self._emit(step.step_id, structure=True)
        return step

    def insert_step(self, step: StepModel, index: int | None = None) -> StepModel:
        self.steps.insert(len(self.steps) if index is None else index, step)
        self._emit(step.step_id, structure=True)
        return step

    def remove_step(self, step_id: str) -> None:
        del self.steps[self.index_of(step_id)]
        self._emit(structure=True)

    def duplicate_step(self, step_id: str) -> StepModel:
        """A copy placed right after the step, named "<name> (copy)"."""
        index = self.index_of(step_id)
        original = self.steps[index]
        duplicate = original.clone(name=f"{original.name} (copy)")
        self.steps.insert(index + 1, duplicate)
        self._emit(duplicate.step_id, structure=True)
        return duplicate

    def move_step(self, step_id: str, new_index: int) -> None:
        index = self.index_of(step_id)
        new_index = max(0, min(new_index, len(self.steps) - 1))
        if index == new_index:
            return
        self.steps.insert(new_index, self.steps.pop(index))
        self._emit(structure=True)

    def reorder(self, step_ids: Sequence[str]) -> None:
        """Put the steps in the order of ``step_ids`` (all of them, each once)."""
        if sorted(step_ids) != sorted(s.step_id for s in self.steps):
            raise ValueError("reorder needs every step id exactly once")
        if list(step_ids) == [s.step_id for s in self.steps]:
            return
        self.steps = [self.step(i) for i in step_ids]
        self._emit(structure=True)

    def rename_step(self, step_id: str, name: str) -> None:
        step = self.step(step_id)
        name = name.strip()
        if not name or name == step.name:
            return
        step.name = name
        self._emit(step_id, structure=True)

    def set_enabled(self, step_id: str, enabled: bool) -> None:
        step = self.step(step_id)
        if step.enabled == bool(enabled):
            return
        step.enabled = bool(enabled)
        self._emit(step_id, structure=True)

    # -- one step's content ------------------------------------------------------------
    def set_kwarg(self, step_id: str, key: str | None, index: int, name: str, value: Any) -> None:
        call = self.step(step_id).chains[key][index]
        if name in call.kwargs and _same(call.kwargs[name], value) and name not in call.invalid:
            return
        call.invalid.pop(name, None)
        call.kwargs[name] = value
        self._emit(step_id, merge=(step_id, key, index, name))

    def set_invalid_text(self, step_id: str, key: str | None, index: int, name: str, text: str) -> None:
        """Keep text typed into a keyword's field that is not a valid value (the builder reports it on the field)."""
        call = self.step(step_id).chains[key][index]
        if call.invalid.get(name) == text:
            return
        call.invalid[name] = text
        self._emit(step_id, merge=(step_id, key, index, name))

    def remove_kwarg(self, step_id: str, key: str | None, index: int, name: str) -> None:
        call = self.step(step_id).chains[key][index]
        if name not in call.kwargs and name not in call.invalid:
            return
        call.kwargs.pop(name, None)
        call.invalid.pop(name, None)
        self._emit(step_id)

    def rename_kwarg(self, step_id: str, key: str | None, index: int, old: str, new: str) -> None:
        """Give a keyword another name (fixing a typo), keeping its value."""
        call = self.step(step_id).chains[key][index]
        value = call.kwargs.pop(old)
        call.kwargs[new] = value
        self._emit(step_id)

    def set_function(self, step_id: str, key: str | None, index: int, function: str) -> None:
        """Run another registry function at this place; keywords it does not take are dropped."""
        registry.get(function)
        step = self.step(step_id)
        old = step.chains[key][index]
        taken = {p.name for p in registry.info(function).params}
        step.chains[key][index] = CallModel(function, {k: v for k, v in old.kwargs.items() if k in taken})
        self._emit(step_id)

    def add_to_chain(self, step_id: str, function: str, key: str | None = None, kwargs: Mapping[str, Any] | None = None) -> None:
        """Append registry function ``function`` to the chain for ``key`` of the step."""
        registry.get(function)
        step = self.step(step_id)
        if key not in step.chains:
            raise KeyError(f"step {step.name!r} has no chain for {key!r}; its chains: {list(step.chains)}")
        step.chains[key].append(CallModel(function, dict(kwargs or {})))
        self._emit(step_id)

    def remove_from_chain(self, step_id: str, key: str | None, index: int) -> None:
        """Remove one function from a chain; a chain keeps at least one function."""
        step = self.step(step_id)
        chain = step.chains[key]
        if len(chain) <= 1:
            raise ValueError("a chain keeps at least one function; remove the step instead")
        del chain[index]
        self._emit(step_id)

    def move_in_chain(self, step_id: str, key: str | None, index: int, new_index: int) -> None:
        chain = self.step(step_id).chains[key]
        new_index = max(0, min(new_index, len(chain) - 1))
        if index == new_index:
            return
        chain.insert(new_index, chain.pop(index))
        self._emit(step_id)

    def set_variable_components(self, step_id: str, components: Sequence[str]) -> None:
        step = self.step(step_id)
        ordered = tuple(c for c in COMPONENTS if c in set(components))
        ordered += tuple(c for c in components if c not in COMPONENTS)  # kept, so the compiler can name it
        if ordered == step.variable_components:
            return
        step.variable_components = ordered
        self._emit(step_id)

    def set_group_by(self, step_id: str, group_by: str | None) -> None:
        step = self.step(step_id)
        if step.group_by == group_by:
            return
        step.group_by = group_by
        self._emit(step_id)

    def set_per_group(self, step_id: str, values: Sequence[str] | None) -> None:
        """Switch a step to one chain per value (a dict pattern keyed by ``values``), or back (``None``).

        Each new entry starts as a copy of the step's current chain; going back
        keeps the first entry's chain.
        """
        step = self.step(step_id)
        if values is None:
            if not step.per_group:
                return
            first = next(iter(step.chains.values()))
            step.chains = {None: first}
        else:
            if not values:
                raise ValueError("per group mode needs at least one value")
            template = next(iter(step.chains.values()))
            existing = step.chains if step.per_group else {}
            step.chains = {
                str(v): existing[str(v)] if str(v) in existing else [c.clone() for c in template] for v in values
            }
        self._emit(step_id)

    def remove_entry(self, step_id: str, key: str) -> None:
        """Remove the chain of one value of a per-value step (a DAPI-only step keeps only DAPI's)."""
        step = self.step(step_id)
        if not step.per_group or key not in step.chains:
            raise KeyError(f"step {step.name!r} has no entry {key!r}; its entries: {', '.join(map(str, step.chains))}")
        if len(step.chains) <= 1:
            raise ValueError("a per-value step keeps at least one entry; switch off 'one chain per value' or remove the step")
        del step.chains[key]
        self._emit(step_id)

    def add_entry(self, step_id: str, key: str) -> None:
        """Give a per-value step an entry for ``key`` (a copy of its first entry's chain)."""
        step = self.step(step_id)
        if not step.per_group:
            raise ValueError(f"step {step.name!r} is not per value; switch on 'one chain per value' first")
        if key in step.chains:
            return
        template = next(iter(step.chains.values()))
        step.chains[key] = [call.clone() for call in template]
        self._emit(step_id)

    def set_step_option(self, step_id: str, option: Literal["force_disk_output", "visualize"], value: bool) -> None:
        step = self.step(step_id)
        if getattr(step, option) == bool(value):
            return
        setattr(step, option, bool(value))
        self._emit(step_id)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):  # arrays and other values without a plain truth value
        return a is b
