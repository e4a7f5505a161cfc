"""Checks of one step on its own: its pattern, components, signatures, kwargs and memory types.

These are well-independent, so the compiler runs them once per compile, not once per well.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import GlobalConfig
from ..memory.types import MEMORY_TYPES, LIBRARIES, is_installed
from ..patterns import FunctionCall, NormalizedPattern, PatternError, normalize_pattern
from ..signatures import accepts_var_keyword, check_value, describe_parameters
from ..special_io import get_special_inputs, get_special_outputs, get_materialized_outputs, is_chain_breaker
from ..steps import COMPONENTS, FunctionStep
from .diagnostics import DiagnosticSink, did_you_mean

__all__ = ["StepState", "check_step"]


@dataclass
class StepState:
    """What phase 1 resolved about one step; later phases and wells read it."""

    step: FunctionStep
    index: int
    pattern: NormalizedPattern | None = None
    config: GlobalConfig = field(default_factory=GlobalConfig)
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    materialized: tuple[str, ...] = ()
    chain_breaker: bool = False
    input_memory_type: str | None = None
    output_memory_type: str | None = None


def check_step(step: FunctionStep, index: int, sink: DiagnosticSink, components: Mapping[str, tuple[str, ...]] | None) -> StepState:
    state = StepState(step=step, index=index)
    name = step.name

    def add(code: str, field_: str, message: str, hint: str = "", **kw: Any) -> None:
        sink.add(code, index, name, field_, message, hint, **kw)

    _check_components(step, add, components)

    func = step.func
    if func is None or (isinstance(func, (list, dict)) and not func):
        add("empty-step", "func", "the step has no function to run", "give it a function, e.g. FunctionStep(func=numpy.gaussian_filter)")
        return state
    try:
        pattern = normalize_pattern(func)
    except PatternError as error:
        add("malformed-pattern", error.field, error.reason, _pattern_hint(error.reason))
        return state
    state.pattern = pattern

    if pattern.is_dict:
        _check_dict_keys(step, pattern, add, components)

    produces: list[str] = []
    consumes: list[str] = []
    materialized: list[str] = []
    for call in pattern.calls():
        for out in get_special_outputs(call.func):
            if out not in produces:
                produces.append(out)
        for out in get_materialized_outputs(call.func):
            if out not in materialized:
                materialized.append(out)
        for inp in get_special_inputs(call.func):
            if inp not in consumes:
                consumes.append(inp)
        state.chain_breaker = state.chain_breaker or is_chain_breaker(call.func)
        _check_call(call, add)
    state.produces, state.consumes, state.materialized = tuple(produces), tuple(consumes), tuple(materialized)
    state.input_memory_type, state.output_memory_type = _check_memory_types(pattern, add)
    return state


def _pattern_hint(reason: str) -> str:
    if "tuple" in reason:
        return "write (function, {\"name\": value}), e.g. (gaussian_filter, {\"sigma\": 2.0})"
    if "nested" in reason:
        return "a dict maps component values to a function, a (function, kwargs) pair or a list of them"
    return "see the four function patterns in the documentation"


def _check_components(step: FunctionStep, add: Any, components: Mapping[str, tuple[str, ...]] | None) -> None:
    for value in step.variable_components:
        if value not in COMPONENTS:
            hint = did_you_mean(str(value), COMPONENTS) or f"components are: {', '.join(COMPONENTS)}"
            add("unknown-component", "variable_components", f"{value!r} is not a plate component", hint)
    if step.group_by is not None:
        if step.group_by not in COMPONENTS:
            hint = did_you_mean(str(step.group_by), COMPONENTS) or f"components are: {', '.join(COMPONENTS)}"
            add("unknown-component", "group_by", f"{step.group_by!r} is not a plate component", hint)
        elif step.group_by in step.variable_components:
            add(
                "group-by-is-variable",
                "group_by",
                f"{step.group_by!r} is both the group_by component and a variable component",
                f"remove {step.group_by!r} from variable_components, or set group_by=None",
            )


def _check_dict_keys(step: FunctionStep, pattern: NormalizedPattern, add: Any, components: Mapping[str, tuple[str, ...]] | None) -> None:
    if step.group_by is None:
        guess = ""
        if components is not None:
            for component in ("channel", "z_index", "site", "timepoint"):
                if set(pattern.keys) <= set(components.get(component, ())):
                    guess = component
                    break
        hint = f"set group_by={guess!r}: the dict keys are values of {guess}" if guess else "set group_by to the component the dict keys are values of, e.g. group_by='channel'"
        add("dict-without-group-by", "group_by", "a dict pattern needs group_by to say which component its keys are values of", hint)
        return
    if components is None or step.group_by not in components:
        return
    values = components[step.group_by]
    for key in pattern.keys:
        if key not in values:
            add(
                "unknown-group-key",
                f"func[{key!r}]",
                f"{step.group_by} {key!r} does not exist on this plate",
                f"values of {step.group_by} on this plate: {', '.join(values)}",
            )
    for value in values:
        if value not in pattern.keys:
            add(
                "uncovered-group-value",
                "func",
                f"{step.group_by} {value!r} has no entry in the dict pattern; its images are not processed by this step",
                f"add an entry {value!r}: ... to process it",
            )


def _check_call(call: FunctionCall, add: Any) -> None:
    func = call.func
    try:
        signature = inspect.signature(func)
        params = describe_parameters(func)
    except (TypeError, ValueError):
        return  # builtins without a signature: nothing to check against
    positional = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    if not positional:
        add("bad-signature", call.field, f"{call.name}() has no parameter to take the image stack", "make the first parameter the (N, Y, X) image stack")
        return
    by_name = {p.name: p for p in params}
    special_inputs = set(get_special_inputs(func))
    takes_any = accepts_var_keyword(func)
    for key, value in call.kwargs.items():
        if key in special_inputs:
            add(
                "special-input-set-by-user",
                call.kwarg_field(key),
                f"{key!r} is a special input of {call.name}(); its value comes from the step that produces it",
                f"remove {key!r} from the keyword arguments",
            )
            continue
        param = by_name.get(key)
        if param is None:
            if not takes_any:
                hint = did_you_mean(key, by_name) or (f"{call.name}() takes: {', '.join(by_name)}" if by_name else f"{call.name}() takes no keyword arguments")
                add("unknown-kwarg", call.kwarg_field(key), f"{call.name}() has no parameter {key!r}", hint)
            continue
        problem = check_value(param, value)
        if problem:
            hint = f"{param.name}: {param.doc}" if param.doc else f"{param.name} is annotated {param.type_name}"
            add("invalid-kwarg-value", call.kwarg_field(key), f"{call.name}() {key}: {problem}", hint)
    for param in params:
        if param.required and param.name not in call.kwargs and param.name not in special_inputs:
            add(
                "missing-argument",
                call.kwarg_field(param.name),
                f"{call.name}() needs {param.name!r}, which has no default",
                f"set it in the step's kwargs, e.g. ({call.name}, {{{param.name!r}: ...}})",
            )


def _decorator_hint(call: FunctionCall) -> str:
    return f"add @numpy (or @torch, @cupy, ... for the array library it uses) above def {call.name.rsplit('.', 1)[-1]}"


def _declared_types(call: FunctionCall, add: Any) -> tuple[str, str] | None:
    """The call's (input, output) memory types, or ``None`` after reporting what is wrong."""
    declared = []
    for attribute in ("input_memory_type", "output_memory_type"):
        value = getattr(call.func, attribute, None)
        if value is None:
            add("missing-memory-type", call.field, f"{call.name}() declares no memory type", _decorator_hint(call))
            return None
        if value not in MEMORY_TYPES:
            hint = did_you_mean(str(value), MEMORY_TYPES) or f"memory types are: {', '.join(MEMORY_TYPES)}"
            add("unknown-memory-type", call.field, f"{call.name}() declares {attribute} {value!r}, which is not a memory type", hint)
            return None
        declared.append(value)
    for library in dict.fromkeys(declared):
        if not is_installed(library):
            extra = LIBRARIES[library].extra
            add(
                "library-not-installed",
                call.field,
                f"{call.name}() uses {library}, which is not installed",
                f"pip install 'plateflow[{extra}]'" if extra else f"pip install {LIBRARIES[library].pip_name}",
            )
    return declared[0], declared[1]


def _check_memory_types(pattern: NormalizedPattern, add: Any) -> tuple[str | None, str | None]:
    """Check declared types and their consistency; return the step's input and output types."""
    types = {call.place: _declared_types(call, add) for call in pattern.calls()}

    for chain in pattern.chains.values():
        for previous, current in zip(chain, chain[1:]):
            before, after = types[previous.place], types[current.place]
            if before is None or after is None or before[1] == after[0]:
                continue
            add(
                "chain-memory-mismatch",
                current.field,
                f"{previous.name}() returns {before[1]} arrays but {current.name}() takes {after[0]}",
                f"use a {before[1]} version of {current.name}, or declare output_type={after[0]!r} on {previous.name}",
            )
    ends = [(key, types[chain[0].place], types[chain[-1].place]) for key, chain in pattern.chains.items()]
    complete = [(key, first[0], last[1]) for key, first, last in ends if first is not None and last is not None]
    if not complete:
        return None, None
    first_key, in_type, out_type = complete[0]
    if pattern.is_dict:
        for key, entry_in, entry_out in complete[1:]:
            if (entry_in, entry_out) != (in_type, out_type):
                add(
                    "dict-memory-mismatch",
                    f"func[{key!r}]",
                    f"entry {key!r} takes {entry_in} and returns {entry_out}, entry {first_key!r} takes {in_type} and returns {out_type}",
                    "every entry of a dict pattern must use the same memory types; pick versions of one library",
                )
    if len(complete) != len(ends):
        return None, None
    return in_type, out_type
