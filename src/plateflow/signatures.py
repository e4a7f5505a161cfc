"""What a function's parameters accept: the seam between functions, forms and the compiler.

``describe_parameters(func)`` reads a function's signature, annotations and
numpydoc docstring into :class:`ParamInfo` records: annotation, default,
choices (from ``Literal`` or an ``Enum``), bounds and unit (from
``Annotated[float, Bounds(0, 10), Unit("px")]``) and the parameter's doc.
``check_value(param, value)`` says what is wrong with a value, or ``None``.

The first parameter is the image stack and is not described.
"""

from __future__ import annotations

import enum
import functools
import inspect
import numbers
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "Bounds",
    "Unit",
    "ParamInfo",
    "REQUIRED",
    "describe_parameters",
    "check_value",
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

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_DOC_SECTION = re.compile(r"^\s*(Parameters|Args|Arguments)\s*:?\s*$")
_DOC_OTHER_SECTION = re.compile(r"^\s*(Returns?|Yields?|Raises|Notes?|Examples?|See Also|References|Attributes)\s*:?\s*$")


def parse_param_docs(doc: str | None) -> dict[str, str]:
    """Per-parameter text from a numpydoc ``Parameters`` or Google ``Args:`` section."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, list[str]] = {}
    current: str | None = None
    in_section = False
    header_indent = 0
    for line in lines:
        if _DOC_SECTION.match(line):
            in_section, current = True, None
            header_indent = len(line) - len(line.lstrip())
            continue
        if not in_section:
            continue
        if _DOC_OTHER_SECTION.match(line):
            break
        stripped = line.strip()
        if not stripped or set(stripped) <= {"-"}:
            continue
        indent = len(line) - len(line.lstrip())
        # numpydoc: "name : type" at the header's indent; Google: "name (type): text" one level in.
        match = re.match(r"^(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$", stripped)
        if match and indent <= header_indent + 4 and (current is None or indent <= params_indent):
            current = match.group(1).lstrip("*")
            params_indent = indent
            rest = match.group(3)
            # numpydoc puts "name : type" at the header's indent; the type is not description.
            is_numpydoc = indent == header_indent
            params[current] = [] if is_numpydoc or not rest else [rest]
            continue
        if current is not None:
            params[current].append(stripped)
    return {name: " ".join(text).strip() for name, text in params.items()}


def summary_line(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _unwrap_annotation(annotation: Any) -> tuple[Any, Bounds | None, str | None]:
    bounds = unit = None
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


@functools.lru_cache(maxsize=4096)
def describe_parameters(func: Callable[..., Any]) -> tuple[ParamInfo, ...]:
    """The keyword parameters of ``func`` (all but the first, which takes the image stack)."""
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as error:  # unresolvable string annotations: fall back to the raw ones
        hints = {}
        _log_unresolved(func, error)
    docs = parse_param_docs(inspect.getdoc(func))
    described = []
    for index, parameter in enumerate(signature.parameters.values()):
        if index == 0 and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(parameter.name, parameter.annotation)
        base, bounds, unit = _unwrap_annotation(annotation)
        described.append(
            ParamInfo(
                name=parameter.name,
                annotation=base,
                default=REQUIRED if parameter.default is parameter.empty else parameter.default,
                choices=_choices(base),
                bounds=bounds,
                unit=unit,
                doc=docs.get(parameter.name, ""),
                keyword_only=parameter.kind is parameter.KEYWORD_ONLY,
            )
        )
    return tuple(described)


def _log_unresolved(func: Callable[..., Any], error: Exception) -> None:
    import logging

    logging.getLogger(__name__).debug("annotations of %r not resolved (%s); using raw annotations", func, error)


def accepts_var_keyword(func: Callable[..., Any]) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return True


def _matches(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits ``annotation``; unknown annotations accept anything."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return True
    annotation, _, _ = _unwrap_annotation(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(arg, value) for arg in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if origin is typing.Literal:
        return value in args
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        # Compared, not hashed: a wrong value may be a list or a dict.
        return (
            isinstance(value, annotation)
            or value in [m.value for m in annotation]
            or (isinstance(value, str) and value in annotation.__members__)
        )
    if annotation is bool:
        return isinstance(value, (bool,)) or type(value).__name__ == "bool_"
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence) or annotation in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_matches(a, v) for a, v in zip(args, value))
        return all(_matches(args[0], v) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # a forward reference or an exotic typing construct: do not guess


def check_value(param: ParamInfo, value: Any) -> str | None:
    """What is wrong with ``value`` for ``param``, or ``None`` when it fits."""
    if param.choices is not None:
        if _matches(param.annotation, value):
            return None
        shown = ", ".join(repr(c.value if isinstance(c, enum.Enum) else c) for c in param.choices)
        return f"{value!r} is not one of the choices: {shown}"
    if not _matches(param.annotation, value):
        return f"expected {_type_name(param.annotation)}, got {type(value).__name__} {value!r}"
    if param.bounds is not None and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return param.bounds.violation(value)
    return None
