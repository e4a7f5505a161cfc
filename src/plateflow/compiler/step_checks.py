"""Checks of one step on its own: its pattern, components, signatures, kwargs and memory types.

These are well-independent, so the compiler runs them once per compile, not once per well.
Every check here is about what the user wrote, and says so in the user's words
first; a step whose check itself fails is reported on that step and the others
are still checked.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._callables import declared, readable_name, signature_of
from .._text import did_you_mean, install_hint, short_repr
from ..config import GlobalConfig
from ..memory.types import LIBRARIES, MEMORY_TYPES, is_installed
from ..patterns import FunctionCall, NormalizedPattern, PatternError, normalize_pattern
from ..signatures import describe_parameters, explain_value
from ..special_io import get_materialized_outputs, get_special_inputs, get_special_outputs, is_chain_breaker
from ..steps import COMPONENTS, FunctionStep
from .diagnostics import DiagnosticSink, FieldPath

__all__ = ["StepState", "check_step", "plate_image_counts"]

#: ``add(code, path, message, hint="")``: report one finding on the step being checked.
Report = Callable[..., None]


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
    #: ``False`` when variable_components or group_by are wrong (images cannot be grouped by them)
    components_ok: bool = True
    #: values of each component in the images this step reads (``None``: not known before the run)
    image_counts_in: Mapping[str, int | None] | None = None
    #: the same after this step (a projection leaves one value of the components it varied over)
    image_counts_out: Mapping[str, int | None] | None = None


def plate_image_counts(components: Mapping[str, tuple[str, ...]] | None) -> dict[str, int | None] | None:
    """Values of each component on the plate, as the first step sees them (one well at a time)."""
    if components is None:
        return None
    counts: dict[str, int | None] = {}
    for name in COMPONENTS:
        values = components.get(name, ())
        counts[name] = 1 if name == "well" else (len(values) or None)
    return counts


def check_step(
    step: FunctionStep,
    index: int,
    sink: DiagnosticSink,
    components: Mapping[str, tuple[str, ...]] | None,
    *,
    previous: StepState | None = None,
) -> StepState:
    """Check one step; every finding goes to ``sink``.

    ``previous``: the state of the step before it, when the caller has it; it
    tells how many images each stack holds after earlier projections. Without
    it only the first step (which reads the plate) knows its stack sizes.
    """
    state = StepState(step=step, index=index)
    name = step.name if isinstance(step.name, str) else short_repr(step.name)

    def add(code: str, path: FieldPath, message: str, hint: str = "", **kw: Any) -> None:
        sink.add(code, index, name, None, message, hint, path=path, **kw)

    try:
        _check(state, add, components, previous)
    except Exception as error:  # noqa: BLE001 - a failing check must not hide the other steps' findings
        add(
            "internal-error",
            ("func",),
            f"plateflow could not finish checking this step ({type(error).__name__}: {_error_text(error)})",
            "this is a plateflow bug; please report it with the pipeline. The other steps were checked.",
        )
    return state


def _error_text(error: BaseException) -> str:
    try:
        text = " ".join(str(error).split())
    except Exception:  # noqa: BLE001 - an exception whose text fails is still named by its type
        return "no message"
    return text if len(text) <= 120 else text[:117] + "..."


def _check(state: StepState, add: Report, components: Mapping[str, tuple[str, ...]] | None, previous: StepState | None) -> None:
    step = state.step
    components_ok = state.components_ok = _check_components(step, add, components)

    func = step.func
    if func is None or (isinstance(func, (list, dict)) and not func):
        add("empty-step", ("func",), "the step has no function to run", "give it a function, e.g. FunctionStep(func=numpy.gaussian_filter)")
        return
    try:
        pattern = normalize_pattern(func)
    except PatternError as error:
        add("malformed-pattern", _bad_place(func, error), error.reason, _pattern_hint(error.reason))
        return
    except Exception as error:  # noqa: BLE001 - a value in the pattern that cannot even be shown
        add(
            "malformed-pattern",
            _bad_place(func),
            f"the function pattern cannot be read ({type(error).__name__})",
            "use a function, (function, {\"name\": value}), a list of those, or a dict of them",
        )
        return
    state.pattern = pattern

    if pattern.is_dict and components_ok:
        _check_dict_keys(step, pattern, add, components)

    _check_special_io(state, pattern, add)
    state.image_counts_in = _counts_in(state, components, previous)
    images = _images_per_stack(step, state.image_counts_in) if components_ok else None
    chain_outputs: list[int | None] = []
    for chain in pattern.chains.values():
        count = images
        for call in chain:
            _check_call(call, add, count)
            count = _images_after(call, count)
        chain_outputs.append(count)
    state.image_counts_out = _counts_out(step, state.image_counts_in, images, chain_outputs)
    state.input_memory_type, state.output_memory_type = _check_memory_types(pattern, add)


# -- paths -----------------------------------------------------------------------------


def _base(call: FunctionCall) -> FieldPath:
    """The function's place in the pattern as a path (``()`` for a single function)."""
    return tuple(getattr(call, "path", ()) or ())


def _function_path(call: FunctionCall) -> FieldPath:
    return _base(call) or ("func",)


def _kwarg_path(call: FunctionCall, name: str) -> FieldPath:
    return (*_base(call), "kwargs", name)


def _bad_place(func: Any, error: PatternError | None = None) -> FieldPath:
    """The place of a malformed part, from the raw pattern (never by parsing the field text)."""
    path = getattr(error, "path", None)
    if isinstance(path, tuple) and path:
        return path
    if isinstance(func, list):
        for position, item in enumerate(func):
            if not _is_single(item):
                return ("func", position)
    if isinstance(func, Mapping):
        for key, value in func.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                return ("func",)
            items = value if isinstance(value, list) else [value]
            if isinstance(value, list) and value:
                for position, item in enumerate(items):
                    if not _is_single(item):
                        return ("func", str(key), position)
            if not (isinstance(value, list) and value) and not _is_single(value):
                return ("func", str(key))
    return ("func",)


def _is_single(item: Any) -> bool:
    if isinstance(item, tuple):
        return len(item) == 2 and callable(item[0]) and isinstance(item[1], Mapping) and all(isinstance(k, str) for k in item[1])
    return callable(item) and not isinstance(item, (list, Mapping))


def _pattern_hint(reason: str) -> str:
    if "tuple" in reason:
        return "write (function, {\"name\": value}), e.g. (gaussian_filter, {\"sigma\": 2.0})"
    if "nested" in reason:
        return "a dict maps component values to a function, a (function, kwargs) pair or a list of them"
    return "see the four function patterns in the documentation"


# -- components --------------------------------------------------------------------------


def _check_components(step: FunctionStep, add: Report, components: Mapping[str, tuple[str, ...]] | None) -> bool:
    """Report bad component settings; ``True`` when they are sound enough to group images by."""
    ok = True
    where: FieldPath = ("variable_components",)
    seen: list[str] = []
    for value in step.variable_components:
        if not isinstance(value, str):
            ok = False
            add("unknown-component", where, f"{short_repr(value)} is not a component name", f"write component names as text: {', '.join(COMPONENTS)}")
            continue
        if value not in COMPONENTS:
            ok = False
            hint = did_you_mean(value, COMPONENTS) or f"components are: {', '.join(COMPONENTS)}"
            add("unknown-component", where, f"{value!r} is not a plate component", hint)
            continue
        if value in seen:
            ok = False
            add("duplicate-component", where, f"{value!r} is listed twice in variable_components", f"list each component once, e.g. variable_components={tuple(dict.fromkeys(seen + [value]))!r}")
            continue
        seen.append(value)
        if value == "well":
            ok = False
            add(
                "well-is-variable",
                where,
                "'well' cannot vary inside a stack: each well is processed on its own",
                "remove 'well' from variable_components; to combine wells, use a plate-level step",
            )
    group_by = step.group_by
    if group_by is None:
        return ok
    where = ("group_by",)
    if isinstance(group_by, (list, tuple, set, frozenset)):
        names = [short_repr(v) for v in group_by]
        one = next((v for v in group_by if isinstance(v, str)), "channel")
        add(
            "group-by-list",
            where,
            f"group_by takes one component, not a list ({', '.join(names)})",
            f"write group_by={one!r}; images that share the other components are still stacked by variable_components",
        )
        return False
    if not isinstance(group_by, str):
        add("unknown-component", where, f"{short_repr(group_by)} is not a component name", f"set group_by to one of: {', '.join(COMPONENTS)}")
        return False
    if group_by not in COMPONENTS:
        hint = did_you_mean(group_by, COMPONENTS) or f"components are: {', '.join(COMPONENTS)}"
        add("unknown-component", where, f"{group_by!r} is not a plate component", hint)
        return False
    if group_by in step.variable_components:
        add(
            "group-by-is-variable",
            where,
            f"{group_by!r} is both the group_by component and a variable component",
            f"remove {group_by!r} from variable_components, or set group_by=None",
        )
        return False
    return ok


def _check_dict_keys(step: FunctionStep, pattern: NormalizedPattern, add: Report, components: Mapping[str, tuple[str, ...]] | None) -> None:
    if step.group_by is None:
        guess = ""
        if components is not None:
            for component in ("channel", "z_index", "site", "timepoint"):
                if set(pattern.keys) <= set(components.get(component, ())):
                    guess = component
                    break
        hint = f"set group_by={guess!r}: the dict keys are values of {guess}" if guess else "set group_by to the component the dict keys are values of, e.g. group_by='channel'"
        add("dict-without-group-by", ("group_by",), "a dict pattern needs group_by to say which component its keys are values of", hint)
        return
    if components is None or step.group_by not in components:
        return
    values = components[step.group_by]
    for key in pattern.keys:
        if key not in values:
            add(
                "unknown-group-key",
                ("func", key),
                f"{step.group_by} {key!r} does not exist on this plate",
                f"values of {step.group_by} on this plate: {', '.join(values)}",
            )
    for value in values:
        if value not in pattern.keys:
            add(
                "uncovered-group-value",
                ("func",),
                f"{step.group_by} {value!r} has no entry in the dict pattern; its images are not processed by this step",
                f"add an entry {value!r}: ... to process it",
            )


# -- special inputs and outputs ------------------------------------------------------------


def _label(call: FunctionCall, chain: tuple[FunctionCall, ...]) -> str:
    """``blur`` or, when the chain holds the name twice, ``blur (item 2)``."""
    name = readable_name(call.func)
    if len(chain) > 1 and sum(readable_name(c.func) == name for c in chain) > 1:
        return f"{name} (item {chain.index(call) + 1})"
    return name


def _check_special_io(state: StepState, pattern: NormalizedPattern, add: Report) -> None:
    produces: list[str] = []
    consumes: list[str] = []
    materialized: list[str] = []
    for chain in pattern.chains.values():
        made: set[str] = set()
        for position, call in enumerate(chain):
            for name in get_special_inputs(call.func):
                if name in made:
                    continue  # an earlier function of this chain makes it: the runner hands it on
                later = next((c for c in chain[position + 1 :] if name in get_special_outputs(c.func)), None)
                if later is not None:
                    add(
                        "special-input-later",
                        (*_base(call), "special_inputs", name),
                        f"{_label(call, chain)} uses {name!r} before {_label(later, chain)} makes it, later in the same chain",
                        f"in this step's chain, put {_label(later, chain)} (item {chain.index(later) + 1}) before "
                        f"{_label(call, chain)} (item {position + 1})",
                    )
                elif name not in consumes:
                    consumes.append(name)
            for name in get_special_outputs(call.func):
                made.add(name)
                if name not in produces:
                    produces.append(name)
            for name in get_materialized_outputs(call.func):
                if name not in materialized:
                    materialized.append(name)
            state.chain_breaker = state.chain_breaker or is_chain_breaker(call.func)
    state.produces, state.consumes = tuple(produces), tuple(consumes)
    state.materialized = tuple(materialized)


# -- stack sizes ---------------------------------------------------------------------------


def _counts_in(state: StepState, components: Mapping[str, tuple[str, ...]] | None, previous: StepState | None) -> Mapping[str, int | None] | None:
    if state.index == 0 or (previous is not None and previous.chain_breaker):
        return plate_image_counts(components)
    return previous.image_counts_out if previous is not None else None


def _images_per_stack(step: FunctionStep, counts: Mapping[str, int | None] | None) -> int | None:
    if counts is None:
        return None
    sizes = [counts.get(component) for component in step.variable_components]
    if any(size is None for size in sizes):
        return None
    return math.prod(size for size in sizes if size is not None)


def _images_after(call: FunctionCall, images: int | None) -> int | None:
    from ..library._spec import operation_of  # compiler > library: a downward import, deferred for import speed

    operation = operation_of(call.func)
    if operation is None:
        return None  # a function of the user's: it may return any number of images
    # a projection returns one image even when its spec forgot to say so
    return 1 if operation.returns_one_image or operation.category == "projection" else images


def _counts_out(step: FunctionStep, counts: Mapping[str, int | None] | None, images: int | None, outputs: list[int | None]) -> Mapping[str, int | None] | None:
    if counts is None:
        return None
    result = set(outputs)
    out = result.pop() if len(result) == 1 else None
    if out is not None and out == images:
        return counts
    changed = dict(counts)
    for component in step.variable_components:
        if component in changed:
            changed[component] = 1 if out == 1 else None
    return changed


# -- one function ----------------------------------------------------------------------------


def _check_call(call: FunctionCall, add: Report, images: int | None) -> None:
    func = call.func
    name = readable_name(func)
    try:
        signature = signature_of(func)
    except (TypeError, ValueError):
        return  # builtins without a signature: nothing to check against
    except Exception as error:  # noqa: BLE001 - a callable whose __signature__ itself fails
        add("bad-signature", _function_path(call), f"the parameters of {name}() cannot be read ({type(error).__name__})", "use a plain function (def) or a functools.partial of one")
        return
    parameters = list(signature.parameters.values())
    first = parameters[0] if parameters else None
    if first is None or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD, first.VAR_POSITIONAL):
        add("bad-signature", _function_path(call), f"{name}() has no parameter to take the image stack", "make the first parameter the (N, Y, X) image stack")
        return
    stack_name = first.name if first.kind is not first.VAR_POSITIONAL else None
    positional_only = {p.name: p for p in parameters[1:] if p.kind is p.POSITIONAL_ONLY}
    for parameter in positional_only.values():
        if parameter.default is parameter.empty:
            add(
                "bad-signature",
                _function_path(call),
                f"{name}() needs {parameter.name!r}, which can only be given by position, but a step passes only the image stack by position",
                f"give {parameter.name!r} a default, or make it a keyword parameter (move it after the / in def {name})",
            )
    params = {p.name: p for p in describe_parameters(func)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    special_inputs = get_special_inputs(func)
    for special in special_inputs:
        if special in positional_only or special == stack_name or (special not in named and not takes_any):
            why = "only by position" if special in positional_only else ("as its image stack" if special == stack_name else "at all")
            add(
                "special-input-not-a-parameter",
                (*_base(call), "special_inputs", special),
                f"{name}() is declared to receive {special!r} from an earlier step, but cannot take it {why}",
                f"add a keyword parameter {special!r} to def {name}, or remove {special!r} from @special_inputs",
            )

    problems = False
    for key, value in call.kwargs.items():
        where = _kwarg_path(call, key)
        if key == stack_name:
            problems = True
            add(
                "stack-as-kwarg",
                where,
                f"{key!r} is the image stack, which the step hands to {name}() itself",
                f"remove {key!r} from the keyword arguments: the step passes the images",
            )
            continue
        if key in special_inputs:
            problems = True
            add(
                "special-input-set-by-user",
                where,
                f"{key!r} is a special input of {name}(); its value comes from the step that produces it",
                f"remove {key!r} from the keyword arguments",
            )
            continue
        if key in positional_only:
            problems = True
            add(
                "positional-only-kwarg",
                where,
                f"{name}() takes {key!r} only by position, so it cannot be set by name",
                f"make {key!r} a keyword parameter of def {name} (move it after the /), or remove it from the keyword arguments",
            )
            continue
        param = params.get(key)
        if param is None:
            if not takes_any:
                problems = True
                hint = did_you_mean(key, params) or (f"{name}() takes: {', '.join(params)}" if params else f"{name}() takes no keyword arguments")
                add("unknown-kwarg", where, f"{name}() has no parameter {key!r}", hint)
            continue
        problem = explain_value(param, value)
        if problem is not None:
            problems = True
            detail = f"{name}() {param.name}: {problem.detail}"
            add("invalid-kwarg-value", where, problem.message, "; ".join(part for part in (problem.hint, detail) if part))
    for param in params.values():
        if param.required and param.name not in call.kwargs and param.name not in special_inputs:
            problems = True
            add(
                "missing-argument",
                _kwarg_path(call, param.name),
                f"{name}() needs {param.name!r}, which has no default",
                f"set it in the step's kwargs, e.g. ({name}, {{{param.name!r}: ...}})",
            )
    if not problems:
        _check_constraints(call, name, params, special_inputs, add, images)


def _check_constraints(call: FunctionCall, name: str, params: Mapping[str, Any], special_inputs: tuple[str, ...], add: Report, images: int | None) -> None:
    """The rules a bundled operation declares beyond its annotations, with the stack size when known."""
    from ..library._spec import StackFacts, operation_of  # compiler > library: a downward import

    operation = operation_of(call.func)
    if operation is None:
        return
    options = {key: call.kwargs.get(key, param.default) for key, param in params.items() if key not in special_inputs}
    for problem in operation.problems(options, StackFacts(images=images)):
        rule = problem.constraint
        fields = [f for f in problem.fields if f in call.kwargs] or list(problem.fields)
        where = _kwarg_path(call, fields[0]) if fields else _function_path(call)
        if rule is not None and rule.needs_images:
            code = "stack-size-mismatch"
            hint = f"{problem.hint}; each stack holds {images} images: the step's variable_components on this plate".lstrip("; ")
        else:
            code = "kwargs-conflict" if len(problem.fields) > 1 else "invalid-kwarg-value"
            hint = problem.hint
        add(code, where, problem.message, hint or f"see the documentation of {name}")


# -- memory types -----------------------------------------------------------------------------


def _decorator_hint(name: str) -> str:
    return f"add @numpy (or @torch, @cupy, ... for the array library it uses) above def {name.rsplit('.', 1)[-1]}"


def _declared_types(call: FunctionCall, add: Report) -> tuple[str, str] | None:
    """The call's (input, output) memory types, or ``None`` after reporting what is wrong."""
    name = readable_name(call.func)
    declared_types = []
    for attribute in ("input_memory_type", "output_memory_type"):
        value = declared(call.func, attribute, None)
        if value is None:
            add("missing-memory-type", _function_path(call), f"{name}() does not say which array library it works with", _decorator_hint(name))
            return None
        if not isinstance(value, str) or value not in MEMORY_TYPES:
            hint = (did_you_mean(value, MEMORY_TYPES) if isinstance(value, str) else "") or f"memory types are: {', '.join(MEMORY_TYPES)}"
            add("unknown-memory-type", _function_path(call), f"{name}() declares {attribute} {short_repr(value)}, which is not a memory type", hint)
            return None
        declared_types.append(str(value))
    for library in dict.fromkeys(declared_types):
        if not is_installed(library):
            spec = LIBRARIES[library]
            add(
                "library-not-installed",
                _function_path(call),
                f"{name}() uses {library}, which is not installed",
                install_hint(spec.pip_name, spec.extra),
            )
    return declared_types[0], declared_types[1]


def _alternative(call: FunctionCall, memory_type: str) -> str | None:
    """The registry name of ``call``'s operation in ``memory_type`` (``torch.gaussian_filter``), if bundled."""
    from ..library._spec import operation_of

    operation = operation_of(call.func)
    if operation is None:
        return None
    from ..library import registry

    candidate = f"{memory_type}.{operation.name}"
    return candidate if candidate in registry.names() else None


def _chain_fix(previous: FunctionCall, current: FunctionCall, before: str, after: str, labels: tuple[str, str]) -> str:
    fixes = []
    swap = _alternative(current, before)
    if swap:
        fixes.append(f"use {swap} for {labels[1]}")
    swap = _alternative(previous, after)
    if swap:
        fixes.append(f"use {swap} for {labels[0]}")
    fixes.append("or split the chain into two steps: steps convert between array types on their own")
    return "; ".join(fixes) if len(fixes) > 1 else fixes[0][3:]


def _check_memory_types(pattern: NormalizedPattern, add: Report) -> tuple[str | None, str | None]:
    """Check declared types and their consistency; return the step's input and output types."""
    types = {call.place: _declared_types(call, add) for call in pattern.calls()}

    for chain in pattern.chains.values():
        for previous, current in zip(chain, chain[1:]):
            before, after = types[previous.place], types[current.place]
            if before is None or after is None or before[1] == after[0]:
                continue
            labels = (_label(previous, chain), _label(current, chain))
            add(
                "chain-memory-mismatch",
                _function_path(current),
                f"{labels[0]} hands on {before[1]} arrays but {labels[1]} takes {after[0]} arrays; "
                "functions in one chain must use the same array type",
                _chain_fix(previous, current, before[1], after[0], labels),
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
                    ("func", key) if key is not None else ("func",),
                    f"entry {key!r} works on {entry_in} arrays (returning {entry_out}) but entry {first_key!r} on {in_type} (returning {out_type}); "
                    "every entry of a dict must use the same array types",
                    "pick the functions of one library for every entry, e.g. numpy versions throughout",
                )
    if len(complete) != len(ends):
        return None, None
    return in_type, out_type
