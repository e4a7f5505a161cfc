"""The editable pipeline behind the builder widget: pure Python, no Qt.

A :class:`PipelineModel` holds :class:`StepModel` records (a name, an enabled
flag, the components, and the function pattern as chains of
:class:`CallModel` = registry name + keyword arguments). It builds a core
``Pipeline`` (:meth:`PipelineModel.to_pipeline`, disabled steps left out) and
loads one (:meth:`PipelineModel.from_pipeline`). Every edit goes through a
method that emits ``changed`` (and ``structure_changed`` when steps are
added, removed, moved, renamed or switched on or off), so the view and the
compile-on-edit timer only listen.

The pattern a step builds, and so the ``field`` of every diagnostic on it:

- one chain of one function -> ``(f, kwargs)``; its fields are ``func``, ``kwargs.NAME``;
- one chain of several -> ``[(f, kwargs), ...]``; ``func[i]``, ``func[i].kwargs.NAME``;
- per group value -> ``{"1": ..., "2": ...}``; ``func['1']``, ``func['1'][i]``, ``func['1'][i].kwargs.NAME``.

:func:`locate_field` maps a diagnostic's field back to the part of a step it names.
"""

from __future__ import annotations

import ast
import copy
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from psygnal import Signal

from plateflow import FunctionStep, Pipeline
from plateflow.library import registry
from plateflow.patterns import PatternError, normalize_pattern
from plateflow.special_io import get_special_inputs, get_special_outputs
from plateflow.steps import COMPONENTS

__all__ = [
    "CallModel",
    "StepModel",
    "PipelineModel",
    "StepFlow",
    "FieldLocation",
    "locate_field",
    "place_of",
    "EDITABLE_COMPONENTS",
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

    def resolve(self) -> Callable[..., Any]:
        """The function to call; ``KeyError`` (with close names) for an unknown registry name."""
        return self.func if self.func is not None else registry.get(self.function)

    @property
    def registered(self) -> bool:
        return self.func is None

    def clone(self) -> "CallModel":
        return CallModel(self.function, copy.deepcopy(self.kwargs), self.func)

    def pattern_item(self) -> Any:
        func = self.resolve()
        return (func, dict(self.kwargs)) if self.kwargs else func


def place_of(key: str | None, index: int, chain_length: int) -> str:
    """The pattern place of call ``index`` of the chain for ``key`` (``None``: the step's only chain)."""
    base = "func" if key is None else f"func[{key!r}]"
    if chain_length > 1:
        return f"{base}[{index}]"
    return "" if key is None else base


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

    def place(self, key: str | None, index: int) -> str:
        return place_of(key, index, len(self.chains[key]))

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


@dataclass(frozen=True)
class StepFlow:
    """How data reaches one enabled step and leaves it, for the step list's badges.

    Attributes:
        index: the step's 0-based index in the checked pipeline (disabled steps are left out).
        input_memory_type / output_memory_type: of its first / last functions ("" when unknown).
        conversion: ``(previous output type, this input type)`` when they differ.
        inputs_from: each special input -> the 0-based index of the producing step, or ``None``.
        outputs: the special outputs the step produces.
    """

    index: int
    input_memory_type: str
    output_memory_type: str
    conversion: tuple[str, str] | None
    inputs_from: Mapping[str, int | None]
    outputs: tuple[str, ...]


def _function_facts(call: CallModel) -> tuple[str, str, tuple[str, ...], tuple[str, ...]] | None:
    """(input type, output type, special inputs, special outputs), or ``None`` for an unknown name."""
    try:
        func = call.resolve()
    except KeyError:
        return None
    return (
        str(getattr(func, "input_memory_type", "")),
        str(getattr(func, "output_memory_type", "")),
        tuple(get_special_inputs(func)),
        tuple(get_special_outputs(func)),
    )


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

    def __init__(self, steps: Iterable[StepModel] = (), name: str = "pipeline", description: str = "") -> None:
        self.steps: list[StepModel] = list(steps)
        self.name = name
        self.description = description

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

    def data_flow(self) -> dict[str, StepFlow]:
        """Memory types, conversions and special-input links of every enabled step, by step id."""
        flows: dict[str, StepFlow] = {}
        previous_output = ""
        produced: dict[str, int] = {}
        for index, step in enumerate(self.enabled_steps()):
            firsts = [_function_facts(c) for c in step.first_calls()]
            lasts = [_function_facts(c) for c in step.last_calls()]
            input_type = next((f[0] for f in firsts if f is not None), "")
            output_type = next((f[1] for f in lasts if f is not None), "")
            special_in: list[str] = []
            special_out: list[str] = []
            for _, _, call in step.calls():
                facts = _function_facts(call)
                if facts is None:
                    continue
                special_in += [n for n in facts[2] if n not in special_in]
                special_out += [n for n in facts[3] if n not in special_out]
            conversion = None
            if previous_output and input_type and previous_output != input_type:
                conversion = (previous_output, input_type)
            flows[step.step_id] = StepFlow(
                index=index,
                input_memory_type=input_type,
                output_memory_type=output_type,
                conversion=conversion,
                inputs_from={name: produced.get(name) for name in special_in},
                outputs=tuple(special_out),
            )
            for name in special_out:
                produced.setdefault(name, index)
            if output_type:
                previous_output = output_type
        return flows

    # -- whole-pipeline edits ---------------------------------------------------------
    def _emit(self, step_id: str | None = None, structure: bool = False) -> None:
        if structure:
            self.structure_changed.emit()
        if step_id is not None:
            self.step_changed.emit(step_id)
        self.changed.emit()

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
        self.steps = []
        self._emit(structure=True)

    # -- step list edits ----------------------------------------------------------------
    def add_step(
        self,
        function: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        index: int | None = None,
        variable_components: Sequence[str] = ("site",),
        group_by: str | None = None,
    ) -> StepModel:
        """Add a step running registry function ``function``; returns it."""
        registry.get(function)  # KeyError with close names for a typo
        step = StepModel(
            name=name or default_step_name(function),
            chains={None: [CallModel(function, dict(kwargs or {}))]},
            variable_components=tuple(variable_components),
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
        if name in call.kwargs and _same(call.kwargs[name], value):
            return
        call.kwargs[name] = value
        self._emit(step_id)

    def remove_kwarg(self, step_id: str, key: str | None, index: int, name: str) -> None:
        call = self.step(step_id).chains[key][index]
        if name not in call.kwargs:
            return
        del call.kwargs[name]
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


# -- diagnostic fields -> parts of a step -------------------------------------------------

FieldTarget = Literal["step", "pattern", "entry", "call", "kwarg", "variable_components", "group_by", "special_inputs", "special_outputs"]


@dataclass(frozen=True)
class FieldLocation:
    """The part of a step a diagnostic's ``field`` names.

    ``target`` is one of: ``step`` (the step as a whole), ``pattern`` (the whole
    function pattern), ``entry`` (one group value's chain, ``key``), ``call``
    (``key``, ``index``), ``kwarg`` (``key``, ``index``, ``name``; the name may be
    one the function does not take), ``variable_components``, ``group_by``,
    ``special_inputs`` / ``special_outputs`` (``name``).
    """

    target: FieldTarget
    key: str | None = None
    index: int = 0
    name: str = ""


_PLACE = re.compile(r"^func((?:\[(?:'[^']*'|\"[^\"]*\"|-?\d+)\])*)$")
_BRACKET = re.compile(r"\[('[^']*'|\"[^\"]*\"|-?\d+)\]")


def _parse_place(place: str) -> tuple[str | None, int | None] | None:
    """``func['2'][1]`` -> ("2", 1); ``func[1]`` -> (None, 1); ``func`` -> (None, None)."""
    match = _PLACE.match(place)
    if not match:
        return None
    key: str | None = None
    index: int | None = None
    for token in _BRACKET.findall(match.group(1)):
        value = ast.literal_eval(token)
        if isinstance(value, str):
            if key is not None or index is not None:
                return None
            key = value
        else:
            if index is not None:
                return None
            index = int(value)
    return key, index


def locate_field(step: StepModel, field_name: str) -> FieldLocation:
    """What part of ``step`` a diagnostic field names (see the module doc for the grammar)."""
    if not field_name:
        return FieldLocation("step")
    if field_name in ("variable_components", "group_by"):
        return FieldLocation(field_name)  # type: ignore[arg-type]
    for prefix in ("special_inputs", "special_outputs"):
        if field_name == prefix or field_name.startswith(prefix + "."):
            return FieldLocation(prefix, name=field_name[len(prefix) + 1 :])  # type: ignore[arg-type]
    place, kwarg = field_name, ""
    if field_name.startswith("kwargs."):
        place, kwarg = "", field_name[len("kwargs.") :]
    elif ".kwargs." in field_name:
        place, kwarg = field_name.split(".kwargs.", 1)
    parsed = _parse_place(place or "func")
    if parsed is None:
        return FieldLocation("step")
    key, index = parsed
    if key is not None and key not in step.chains:
        return FieldLocation("pattern")
    if key is None and step.per_group:
        # An index without a key cannot name a call of a per-group step.
        return FieldLocation("pattern")
    chain = step.chains[key]
    if index is None:
        if key is None and not kwarg:
            # "func": the single function when there is one, otherwise the whole pattern.
            return FieldLocation("call", None, 0) if len(chain) == 1 else FieldLocation("pattern")
        if key is not None and not kwarg:
            return FieldLocation("entry", key)
        index = 0
    if not 0 <= index < len(chain):
        return FieldLocation("entry", key) if key is not None else FieldLocation("pattern")
    if kwarg:
        return FieldLocation("kwarg", key, index, kwarg)
    return FieldLocation("call", key, index)
