"""What a function's parameters accept: the seam between functions, forms and the compiler.

``describe_parameters(func)`` reads a function's signature, annotations and
docstring (numpydoc or Google style) into :class:`ParamInfo` records: annotation, default,
choices (from ``Literal`` or an ``Enum``), bounds and unit (from
``Annotated[float, Bounds(0, 10), Unit("px")]``) and the parameter's doc.
``check_value(param, value)`` says what is wrong with a value, or ``None``.

The first parameter is the image stack and is not described.
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import inspect
import logging
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from ._callables import hint_source
from ._text import did_you_mean, short_repr

__all__ = [
    "Bounds",
    "Unit",
    "ParamInfo",
    "REQUIRED",
    "describe_parameters",
    "check_value",
    "explain_value",
    "ValueProblem",
    "describe_type",
    "describe_value",
    "stack_parameter",
    "accepts_var_keyword",
    "parse_param_docs",
    "summary_line",
]


class _Required:
    """Sentinel for a parameter without a default."""

    _instance: "_Required | None" = None

    def __new__(cls) -> "_Required":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Bounds:
    """Inclusive limits of a numeric parameter, for ``Annotated``; ``None`` means open."""

    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> str | None:
        if value != value:  # NaN compares false with everything, so it would pass both limits
            low = "-inf" if self.min is None else repr(self.min)
            high = "inf" if self.max is None else repr(self.max)
            return f"{value!r} is not a number; use a value from {low} to {high}"
        if self.min is not None and value < self.min:
            return f"{value!r} is below the minimum {self.min!r}"
        if self.max is not None and value > self.max:
            return f"{value!r} is above the maximum {self.max!r}"
        return None


@dataclass(frozen=True)
class Unit:
    """The unit of a parameter ("px", "µm", "%"), for ``Annotated``; shown in form labels."""

    name: str


@dataclass(frozen=True)
class ParamInfo:
    name: str
    annotation: Any = inspect.Parameter.empty
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None
    bounds: Bounds | None = None
    unit: str | None = None
    doc: str = ""
    keyword_only: bool = False
    #: ``False`` when the annotation could not be resolved (a name not importable where the
    #: function lives): the value of this parameter is then not checked
    resolved: bool = True

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


def _type_name(annotation: Any) -> str:
    """An annotation as code, without ``Annotated`` metadata: ``tuple[int, int] | None``."""
    if annotation is inspect.Parameter.empty:
        return "any"
    if annotation is type(None) or annotation is None:
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_type_name(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        return f"{name}[{', '.join(_type_name(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def parse_param_docs(doc: str | None) -> dict[str, str]:
    """Per-parameter text from a numpydoc ``Parameters``, Google ``Args:``, reST or Epydoc section.

    docstring_parser reads the docstring (its style detected); a description
    over several lines becomes one line, as a form's tooltip shows it.
    """
    if not doc or not doc.strip():
        return {}
    # Imported here: `import plateflow` stays fast, and only describing a function needs it.
    import docstring_parser

    try:
        parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError as error:
        # A docstring no style can read still describes the function; its parameters just go undocumented.
        logging.getLogger(__name__).debug("no parameter docs from the docstring: %s", error)
        return {}
    return {
        param.arg_name.lstrip("*"): " ".join(line.strip() for line in (param.description or "").splitlines() if line.strip())
        for param in parsed.params
    }


def summary_line(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _unwrap_annotation(annotation: Any) -> tuple[Any, Bounds | None, str | None]:
    """``(base, bounds, unit)`` of ``Annotated[base, Bounds(...), Unit(...)]``.

    ``Optional[Annotated[float, Bounds(0, 1)]]`` keeps its base as written and
    reports the inner bounds and unit, so forms show them too.
    """
    bounds = unit = None
    if _is_union(annotation):
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        if len(arms) == 1:
            _, bounds, unit = _unwrap_annotation(arms[0])
        return annotation, bounds, unit
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        for extra in extras:
            if isinstance(extra, Bounds):
                bounds = extra
            elif isinstance(extra, Unit):
                unit = extra.name
        annotation = base
    return annotation, bounds, unit


def _choices(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(annotation)
    return None




def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is types.UnionType


def _resolved_hints(func: Callable[..., Any], signature: inspect.Signature) -> tuple[dict[str, Any], set[str]]:
    """Each parameter's annotation, resolved one by one; and the names that could not be.

    ``typing.get_type_hints`` fails as a whole when one string annotation names
    something it cannot import; resolving each on its own keeps the checks of
    every other parameter.
    """
    source = hint_source(func)
    raw = {name: p.annotation for name, p in signature.parameters.items() if p.annotation is not p.empty}
    if source is None:
        return raw, {name for name, a in raw.items() if isinstance(a, (str, typing.ForwardRef))}
    try:
        hints = typing.get_type_hints(source, include_extras=True)
        return {name: hints.get(name, annotation) for name, annotation in raw.items()}, set()
    except Exception as error:  # noqa: BLE001 - any failure here means "resolve one by one"
        _log_unresolved(func, error)
    resolved: dict[str, Any] = {}
    unresolved: set[str] = set()
    namespace = getattr(source, "__globals__", {})
    for name, annotation in raw.items():
        if not isinstance(annotation, (str, typing.ForwardRef)):
            resolved[name] = annotation
            continue
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            resolved[name] = typing.get_type_hints(holder, globalns=namespace, include_extras=True)[name]
        except Exception:  # noqa: BLE001 - unresolvable: this parameter goes unchecked
            resolved[name] = annotation
            unresolved.add(name)
    return resolved, unresolved


def _log_unresolved(func: Callable[..., Any], error: Exception) -> None:
    logging.getLogger(__name__).debug("annotations of %r not all resolved (%s); resolving one by one", func, error)


def stack_parameter(func: Callable[..., Any]) -> inspect.Parameter | None:
    """The parameter that takes the image stack (the first positional one), or ``None``."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    if parameters and parameters[0].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
        return parameters[0]
    return None


def describe_parameters(func: Callable[..., Any]) -> tuple[ParamInfo, ...]:
    """The keyword parameters of ``func`` (all but the first, which takes the image stack).

    Positional-only parameters are left out: a step passes only the stack by
    position, so no keyword can set them. Works for functions, partials, bound
    methods and callable instances (hashable or not).
    """
    try:
        hash(func)
    except TypeError:
        return _describe(func)
    return _describe_cached(func)


@functools.lru_cache(maxsize=4096)
def _describe_cached(func: Callable[..., Any]) -> tuple[ParamInfo, ...]:
    return _describe(func)


def _describe(func: Callable[..., Any]) -> tuple[ParamInfo, ...]:
    signature = inspect.signature(func)
    hints, unresolved = _resolved_hints(func, signature)
    source = hint_source(func)
    docs = parse_param_docs(inspect.getdoc(source if source is not None else func))
    described = []
    for index, parameter in enumerate(signature.parameters.values()):
        if index == 0 and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            continue
        annotation = hints.get(parameter.name, parameter.annotation)
        ok = parameter.name not in unresolved
        base, bounds, unit = _unwrap_annotation(annotation) if ok else (annotation, None, None)
        described.append(
            ParamInfo(
                name=parameter.name,
                annotation=base,
                default=REQUIRED if parameter.default is parameter.empty else parameter.default,
                choices=_choices(base) if ok else None,
                bounds=bounds,
                unit=unit,
                doc=docs.get(parameter.name, ""),
                keyword_only=parameter.kind is parameter.KEYWORD_ONLY,
                resolved=ok,
            )
        )
    return tuple(described)


def accepts_var_keyword(func: Callable[..., Any]) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return True


# -- matching values against annotations ----------------------------------------------

_SEQUENCE_ORIGINS = (tuple, list, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Collection, collections.abc.Iterable)
_SET_ORIGINS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPPING_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _is_bool(value: Any) -> bool:
    """``True``/``False`` and numpy's ``np.bool_``."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "tolist")


def _same_literal(choice: Any, value: Any) -> bool:
    """``value`` is the literal ``choice``: ``True`` is not ``1``, ``np.int64(1)`` is."""
    if isinstance(choice, bool):
        return _is_bool(value) and bool(value) is choice
    if isinstance(choice, int):
        return _is_int(value) and int(value) == choice
    if isinstance(choice, float):
        return _is_real(value) and float(value) == choice
    if isinstance(choice, str):
        return isinstance(value, str) and value == choice
    if choice is None:
        return value is None
    try:
        return type(value) is type(choice) and bool(value == choice)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is not this choice
        return False


def _items(value: Any) -> list[Any] | None:
    """The elements of a list, tuple or 1-D array value, else ``None``."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if _is_array(value) and len(getattr(value, "shape", ())) == 1:
        return list(value.tolist())
    return None


def _fits(annotation: Any, value: Any) -> bool:
    """Whether ``value`` is of type ``annotation``, element types included; unknown annotations accept anything."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return True
    if isinstance(annotation, (str, typing.ForwardRef, typing.TypeVar)):
        return True  # not resolvable here: do not guess
    if typing.get_origin(annotation) is typing.Annotated:
        return _fits(typing.get_args(annotation)[0], value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_union(annotation):
        return any(_fits(arm, value) for arm in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if origin is typing.Literal:
        return any(_same_literal(choice, value) for choice in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(value, annotation):
            return True
        if isinstance(value, str) and value in annotation.__members__:
            return True
        return any(_same_literal(member.value, value) for member in annotation)
    if annotation is bool:
        return _is_bool(value)
    if annotation is int:
        return _is_int(value)
    if annotation is float:
        return _is_real(value)
    if annotation is complex:
        return isinstance(value, numbers.Number) and not _is_bool(value)
    if annotation is str:
        return isinstance(value, str)
    if origin in _MAPPING_ORIGINS or annotation in (dict,):
        if not isinstance(value, collections.abc.Mapping):
            return False
        if len(args) != 2:
            return True
        return all(_fits(args[0], k) and _fits(args[1], v) for k, v in value.items())
    if origin in _SET_ORIGINS or annotation in (set, frozenset):
        if not isinstance(value, (set, frozenset, list, tuple)):
            return False
        return not args or all(_fits(args[0], v) for v in value)
    if origin in _SEQUENCE_ORIGINS or annotation in (tuple, list):
        if isinstance(value, (str, bytes)):
            return False
        items = _items(value)
        if items is None:
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if args == ((),):  # tuple[()]: the empty tuple
                return not items
            return len(items) == len(args) and all(_fits(a, v) for a, v in zip(args, items))
        return all(_fits(args[0], v) for v in items)
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return callable(value)
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _fits(supertype, value)
    if isinstance(annotation, type):
        try:
            return isinstance(value, annotation)
        except TypeError:
            return True
    return True  # an exotic typing construct: do not guess


def _range_words(bounds: Bounds, unit: str | None) -> str:
    suffix = f" {unit}" if unit else ""
    if bounds.min is not None and bounds.max is not None:
        return f"between {bounds.min:g} and {bounds.max:g}{suffix}"
    if bounds.min is not None:
        return f"at least {bounds.min:g}{suffix}"
    return f"at most {bounds.max:g}{suffix}"


def _bounds_problems(annotation: Any, value: Any, unit: str | None = None) -> tuple[str, str] | None:
    """``(code-level text, words)`` for a bound that ``value`` breaks inside ``annotation``.

    Looks into ``Optional``/``Union`` (the arm the value fits) and into the
    elements of lists, tuples and mappings.
    """
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        inner_unit = next((e.name for e in extras if isinstance(e, Unit)), unit)
        if _is_real(value):
            for extra in extras:
                if isinstance(extra, Bounds):
                    problem = extra.violation(value)
                    if problem is not None:
                        return problem, f"must be {_range_words(extra, inner_unit)}, not {short_repr(value)}"
        return _bounds_problems(base, value, inner_unit)
    if _is_union(annotation):
        for arm in typing.get_args(annotation):
            if _fits(arm, value):
                return _bounds_problems(arm, value, unit)
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in _MAPPING_ORIGINS and len(args) == 2 and isinstance(value, collections.abc.Mapping):
        for key, item in value.items():
            found = _bounds_problems(args[1], item, unit)
            if found is not None:
                return f"[{short_repr(key)}]: {found[0]}", f"entry {short_repr(key)} {found[1]}"
        return None
    if origin in _SEQUENCE_ORIGINS and args:
        items = _items(value)
        if items is None:
            return None
        fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        for position, item in enumerate(items):
            arm = (args[position] if position < len(args) else None) if fixed else args[0]
            inner = _bounds_problems(arm, item, unit) if arm is not None else None
            if inner is not None:
                return f"item {position}: {inner[0]}", f"item {position + 1} {inner[1]}"
    return None


# -- words for people ------------------------------------------------------------------

_PLURALS = {
    "a whole number": "whole numbers",
    "a number": "numbers",
    "a text": "texts",
    "True or False": "True/False values",
    "any value": "values",
}


def _plural(words: str) -> str:
    if words in _PLURALS:
        return _PLURALS[words]
    if words.startswith("a list of"):
        return "lists" + words[len("a list"):]
    return f"values that are each {words}"


def describe_type(annotation: Any) -> str:
    """An annotation in words: ``"a number"``, ``"a list of whole numbers, or None"``."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return "any value"
    if isinstance(annotation, (str, typing.ForwardRef)):
        return f"a {annotation if isinstance(annotation, str) else annotation.__forward_arg__}"
    if typing.get_origin(annotation) is typing.Annotated:
        return describe_type(typing.get_args(annotation)[0])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_union(annotation):
        arms = [describe_type(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(arms))
        return f"{text}, or None" if type(None) in args else text
    if annotation is type(None) or annotation is None:
        return "None"
    if origin is typing.Literal:
        return "one of " + ", ".join(short_repr(c) for c in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(short_repr(m.value) for m in annotation)
    simple = {bool: "True or False", int: "a whole number", float: "a number", str: "a text", complex: "a number"}
    if annotation in simple:
        return simple[annotation]
    if origin in _MAPPING_ORIGINS or annotation is dict:
        if len(args) == 2:
            return f"a mapping of {_plural(describe_type(args[0]))} to {_plural(describe_type(args[1]))}"
        return "a mapping"
    if origin in _SEQUENCE_ORIGINS or origin in _SET_ORIGINS or annotation in (tuple, list, set, frozenset):
        if not args:
            return "a list"
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            words = [describe_type(a) for a in args]
            if len(set(words)) == 1:
                return f"a list of {len(args)} {_plural(words[0])}"
            return f"a list of {len(args)} values ({', '.join(words)})"
        return f"a list of {_plural(describe_type(args[0]))}"
    if isinstance(annotation, type):
        return f"a {annotation.__name__}"
    return f"a {_type_name(annotation)}"


def describe_value(value: Any) -> str:
    """A value in words: ``"the text 'abc'"``, ``"a list of 3 values"``, ``"an array of shape (3, 4)"``."""
    if value is None:
        return "None (nothing)"
    if _is_bool(value):
        return str(bool(value))
    if isinstance(value, str):
        return f"the text {short_repr(value)}"
    if _is_real(value) or _is_int(value):
        return short_repr(value)
    if _is_array(value):
        try:
            return f"an array of shape {tuple(int(n) for n in value.shape)}"
        except Exception:  # noqa: BLE001 - a strange shape is still an array
            return "an array"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} value{'s' if len(value) != 1 else ''} {short_repr(value, 40)}"
    if isinstance(value, collections.abc.Mapping):
        return f"a mapping {short_repr(value, 40)}"
    return f"a {type(value).__name__} ({short_repr(value, 40)})"


# -- the checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueProblem:
    """What is wrong with one value: ``message`` in the user's words, ``detail`` at code level.

    ``hint`` says how to fix it (a close choice, the parameter's doc, its range).
    Reused wherever values are checked: the compiler, pipeline files, forms.
    """

    message: str
    detail: str
    hint: str = ""


def _shown_choices(param: ParamInfo) -> str:
    return ", ".join(short_repr(c.value if isinstance(c, enum.Enum) else c) for c in param.choices or ())


def explain_value(param: ParamInfo, value: Any) -> ValueProblem | None:
    """What is wrong with ``value`` for ``param``, or ``None`` when it fits; never raises.

    ``message`` leads with what is wrong in words ("sigma must be a number, not
    the text 'big'"); ``detail`` is :func:`check_value`'s code-level text;
    ``hint`` says how to fix it.
    """
    if not param.resolved:
        return None
    detail = check_value(param, value)
    if detail is None:
        return None
    about = f"{param.name}: {param.doc}" if param.doc else ""
    if param.choices is not None and not _fits(param.annotation, value):
        choices = [c.value if isinstance(c, enum.Enum) else c for c in param.choices]
        close = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
        if not close and _is_bool(value) and any(_is_int(c) for c in choices):
            close = "True and False are not numbers here; give one of the numbers"
        return ValueProblem(
            f"{param.name} must be one of {_shown_choices(param)}, not {describe_value(value)}",
            detail,
            "; ".join(part for part in (close, about) if part),
        )
    if not _fits(param.annotation, value):
        return ValueProblem(
            f"{param.name} must be {describe_type(param.annotation)}, not {describe_value(value)}",
            detail,
            about,
        )
    words = ""
    if param.bounds is not None and _is_real(value) and param.bounds.violation(value) is not None:
        if value != value:
            words = f"must be a number {_range_words(param.bounds, param.unit)}, not NaN (not a number)"
        else:
            words = f"must be {_range_words(param.bounds, param.unit)}, not {short_repr(value)}"
    else:
        nested = _bounds_problems(param.annotation, value, param.unit)
        if nested is not None:
            words = nested[1]
    return ValueProblem(f"{param.name} {words}" if words else f"{param.name}: {detail}", detail, about)


def check_value(param: ParamInfo, value: Any) -> str | None:
    """What is wrong with ``value`` for ``param`` (code-level text), or ``None`` when it fits.

    Never raises, whatever the value (arrays, objects whose repr fails).
    """
    if not param.resolved:
        return None
    if param.choices is not None:
        if _fits(param.annotation, value):
            return None
        return f"{short_repr(value)} is not one of the choices: {_shown_choices(param)}"
    if not _fits(param.annotation, value):
        return f"expected {_type_name(param.annotation)}, got {type(value).__name__} {short_repr(value)}"
    if param.bounds is not None and _is_real(value):
        problem = param.bounds.violation(value)
        if problem is not None:
            return problem
    nested = _bounds_problems(param.annotation, value, param.unit)
    return nested[0] if nested is not None else None
