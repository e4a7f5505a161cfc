"""One spec per operation, one kernel per library.

An *operation* (``gaussian_filter``, ``top_hat``, ...) is written once as a spec
function in :mod:`plateflow.library.specs`: its signature (with ``Annotated``
bounds, units and ``Literal`` choices), its numpydoc docstring, its category,
its special I/O and, as :class:`Constraint` records, every check that the
annotations cannot express. Each array library then supplies only a *kernel*
that does the work. :func:`implement` joins the two into the public function
of one memory type: it binds and validates the arguments against the spec,
then calls the kernel, so validation and documentation never repeat per library.

The compiler runs the same annotations and constraints before anything runs
(``plateflow.check``), with what it knows of the stacks from the plate
(:class:`StackFacts`): a value the check passes never fails these checks at
run time.

Declaring a constraint::

    @operation(
        "normalize",
        constraints=(
            Constraint(
                lambda kw, facts: kw["low"] < kw["high"],
                fields=("low", "high"),
                message="low ({low}) must be below high ({high})",
                example={"low": 90.0, "high": 10.0},
            ),
        ),
    )
    def normalize(stack, *, low: float = 1.0, high: float = 99.0): ...

``fields`` are the parameters the rule reads (the first is where the
diagnostic points); ``example`` is a set of values that breaks it (the test
suite checks both the compiler and the run reject it). A rule about the
stack sets ``needs_images=True`` and reads ``facts.images``, the number of
images in each stack (then ``example_images`` gives the stack size of the example).

Ready-made rules: :func:`odd`, :func:`less_than`, :func:`one_per_image`
(a weight or a name per image) and :func:`index_in_stack` (a channel index).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._text import short_repr
from ..memory import memory_type as _memory_type_decorator
from ..signatures import check_value, describe_parameters
from ..special_io import special_inputs, special_outputs

__all__ = [
    "Operation",
    "Constraint",
    "ConstraintProblem",
    "StackFacts",
    "operation",
    "implement",
    "fill_doc",
    "operation_of",
    "odd",
    "less_than",
    "one_per_image",
    "index_in_stack",
]


@dataclass(frozen=True)
class StackFacts:
    """What is known about the stacks a function receives: before a run from the plate, at run time from the stack.

    ``images``: images in each stack (the product of the step's variable
    components' value counts on the plate); ``None`` when it cannot be known
    before the run (no plate, or an earlier function of unknown effect).
    """

    images: int | None = None


class _Keep(dict[str, Any]):
    """Formatting values that leaves unknown ``{names}`` as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Constraint:
    """One rule about an operation's options that their annotations cannot say.

    Args:
        test: ``(options, facts) -> bool``, true when the options are fine.
            ``options`` holds every keyword option (defaults filled in).
        fields: the options the rule reads; the first is the one a diagnostic points at.
        message: what is wrong, in words; ``{name}`` is replaced by the option's
            value and ``{images}`` by the stack size. Or ``(options, facts) -> str``.
        example: options (besides the defaults) that break the rule; the tests
            check the compiler and the run both reject them.
        hint: how to fix it.
        needs_images: the rule reads ``facts.images``; skipped while it is unknown.
        example_images: the stack size the example is meant for (with ``needs_images``).
    """

    test: Callable[[Mapping[str, Any], StackFacts], bool]
    fields: tuple[str, ...]
    message: str | Callable[[Mapping[str, Any], StackFacts], str]
    example: Mapping[str, Any]
    hint: str = ""
    needs_images: bool = False
    example_images: int | None = None

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a Constraint needs the names of the options it reads in fields=")
        if isinstance(self.fields, str):
            raise ValueError(f"fields must be a tuple of option names, e.g. ({self.fields!r},)")
        if self.needs_images and self.example_images is None:
            raise ValueError("a Constraint with needs_images=True needs example_images= for its example")

    def applies(self, options: Mapping[str, Any], facts: StackFacts) -> bool:
        return all(name in options for name in self.fields) and not (self.needs_images and facts.images is None)

    def broken(self, options: Mapping[str, Any], facts: StackFacts) -> bool:
        """Whether ``options`` break this rule (``False`` when it does not apply)."""
        return self.applies(options, facts) and not self.test(options, facts)

    def describe(self, options: Mapping[str, Any], facts: StackFacts) -> str:
        if callable(self.message):
            return self.message(options, facts)
        values = _Keep({name: short_repr(value) for name, value in options.items()})
        values["images"] = "?" if facts.images is None else str(facts.images)
        return self.message.format_map(values)


def odd(name: str, *, example: int = 4) -> Constraint:
    """``name`` must be odd (a window with a centre pixel)."""
    return Constraint(
        lambda kw, facts: kw[name] % 2 == 1,
        fields=(name,),
        message=f"{name}={{{name}}} must be odd (3, 5, 7, ...) so the window has a centre pixel",
        hint=f"use an odd number, e.g. {example - 1} or {example + 1}",
        example={name: example},
    )


def less_than(low: str, high: str, *, example: Mapping[str, Any]) -> Constraint:
    """Option ``low`` must be below option ``high``; ``example`` breaks it."""
    return Constraint(
        lambda kw, facts: kw[low] < kw[high],
        fields=(low, high),
        message=f"{low}={{{low}}} must be below {high}={{{high}}}",
        hint=f"make {low} smaller than {high}",
        example=example,
    )


def one_per_image(name: str, *, what: str = "values", example_images: int = 2) -> Constraint:
    """Option ``name`` (a sequence, or ``None``) holds one item per image of the stack."""
    return Constraint(
        lambda kw, facts: kw[name] is None or len(kw[name]) == facts.images,
        fields=(name,),
        message=lambda kw, facts: f"{name} has {len(kw[name])} {what} but the stack has {facts.images} images; give one per image",
        hint=f"give one of the {what} per image of the stack (per channel when the step varies channel)",
        example={name: tuple(f"x{i}" if what == "names" else 1.0 for i in range(example_images + 1))},
        needs_images=True,
        example_images=example_images,
    )


def index_in_stack(name: str, *, example_images: int = 2) -> Constraint:
    """Option ``name`` is the index of an image of the stack (a channel, say): below the stack size."""
    return Constraint(
        lambda kw, facts: kw[name] is None or 0 <= kw[name] < (facts.images or 0),
        fields=(name,),
        message=lambda kw, facts: (
            f"{name}={kw[name]} but the stack has {facts.images} images (0 to {(facts.images or 1) - 1}); "
            "the step's variable_components must give it the channels of one site"
        ),
        hint="count images from 0; vary the channel in the step (variable_components=('channel',)) to stack the channels",
        example={name: example_images},
        needs_images=True,
        example_images=example_images,
    )


@dataclass(frozen=True)
class ConstraintProblem:
    """A broken rule: the constraint (``None`` for a check in the spec's body) and its message."""

    constraint: Constraint | None
    message: str

    @property
    def fields(self) -> tuple[str, ...]:
        return self.constraint.fields if self.constraint is not None else ()

    @property
    def hint(self) -> str:
        return self.constraint.hint if self.constraint is not None else ""


@dataclass(frozen=True)
class Operation:
    """What every library's version of one operation shares."""

    spec: Callable[..., Any]
    category: str
    special_inputs: tuple[str, ...] = ()
    special_outputs: tuple[str, ...] = ()
    #: special outputs that are results of the run (tables written to the output folder)
    materialize: bool = False
    constraints: tuple[Constraint, ...] = ()
    #: the result is one image whatever the stack's size (projections, composites, mosaics)
    returns_one_image: bool = False

    @property
    def name(self) -> str:
        return self.spec.__name__

    @functools.cached_property
    def option_names(self) -> tuple[str, ...]:
        return tuple(list(inspect.signature(self.spec).parameters)[1:])

    def problems(self, options: Mapping[str, Any], facts: StackFacts = StackFacts()) -> list[ConstraintProblem]:
        """Every rule ``options`` break; then the spec body's own checks, when every option is there.

        ``options`` must already fit the annotations (the rules assume the types).
        """
        found = [
            ConstraintProblem(rule, rule.describe(options, facts)) for rule in self.constraints if rule.broken(options, facts)
        ]
        if not found and all(name in options for name in self.option_names):
            try:
                self.spec(None, **{name: options[name] for name in self.option_names})
            except ValueError as error:  # a check written in the spec's body (not yet a Constraint)
                found.append(ConstraintProblem(None, str(error)))
        return found

    def validate(self, options: dict[str, Any], facts: StackFacts = StackFacts()) -> None:
        """Check ``options`` against the annotations, then the constraints; raise once with every problem."""
        messages = []
        for param in describe_parameters(self.spec):
            if param.name not in options:
                continue
            problem = check_value(param, options[param.name])
            if problem is not None:
                messages.append(f"{self.name}: {param.name}={short_repr(options[param.name])} is not valid: {problem}")
        if not messages:
            messages = [f"{self.name}: {problem.message}" for problem in self.problems(options, facts)]
        if messages:
            raise ValueError("; ".join(messages))


def operation_of(func: Any) -> Operation | None:
    """The :class:`Operation` a bundled function implements (through partials and wrappers), or ``None``."""
    from .._callables import declared

    found = declared(func, "operation_spec", None)
    return found if isinstance(found, Operation) else None


def fill_doc(**fragments: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace ``{name}`` lines of a docstring with shared text, at the line's indent.

    Lets operations that take the same parameters (segmentation and
    measurement) document them once.
    """

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        lines: list[str] = []
        for line in (func.__doc__ or "").splitlines():
            key = line.strip()
            if key.startswith("{") and key.endswith("}") and key[1:-1] in fragments:
                indent = line[: len(line) - len(line.lstrip())]
                lines.extend(indent + part if part else "" for part in inspect.cleandoc(fragments[key[1:-1]]).splitlines())
            else:
                lines.append(line)
        func.__doc__ = "\n".join(lines)
        return func

    return apply


def operation(
    category: str,
    *,
    special_inputs: tuple[str, ...] = (),
    special_outputs: tuple[str, ...] = (),
    materialize: bool = False,
    constraints: tuple[Constraint, ...] = (),
    returns_one_image: bool = False,
) -> Callable[[Callable[..., Any]], Operation]:
    """Declare a spec function as an :class:`Operation`.

    ``constraints``: the rules about the options that the annotations cannot
    say (see :class:`Constraint`); the compiler checks them before a run.
    ``returns_one_image``: the operation turns a stack of any size into one
    image (the compiler then knows the next function's stack size).
    The spec's body receives ``None`` for the stack and the bound options; it
    may still raise ``ValueError`` (run before the run too), but a
    ``Constraint`` points the diagnostic at its field.
    """
    rules = tuple(constraints)
    for rule in rules:
        if not isinstance(rule, Constraint):
            raise TypeError(f"constraints= takes Constraint records, got {type(rule).__name__}")

    def declare(spec: Callable[..., Any]) -> Operation:
        names = list(inspect.signature(spec).parameters)[1:]
        for rule in rules:
            unknown = [name for name in (*rule.fields, *rule.example) if name not in names]
            if unknown:
                raise ValueError(f"{spec.__name__}: constraint names options it does not have: {unknown}; options: {names}")
        return Operation(spec, category, tuple(special_inputs), tuple(special_outputs), materialize, rules, returns_one_image)

    return declare


def _check_stack(name: str, stack: Any) -> None:
    """Every operation takes an (N, Y, X) stack of at least one image; say so before a kernel fails obscurely."""
    shape = getattr(stack, "shape", None)
    if shape is None:  # not an array (a nested list, say): the kernel converts it or says what is wrong
        return
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        fix = "; pass image[None] for one 2-D image" if len(shape) == 2 else ""
        raise ValueError(f"{name}: expected an (N, Y, X) image stack, got an array of shape {shape}{fix}")
    if 0 in shape:
        raise ValueError(f"{name}: the stack of shape {shape} holds no pixels; it needs at least one image of at least 1 x 1")


def implement(op: Operation, kernel: Callable[..., Any], *, memory_type: str, module: str) -> Callable[..., Any]:
    """The public function of ``op`` for ``memory_type``, running ``kernel``.

    The result has the spec's name, signature, annotations and docstring, lives
    in ``module`` under the spec's name (so pickling and ``import`` by name
    work), and carries the memory-type and special I/O metadata.
    """
    signature = inspect.signature(op.spec)
    stack_name = next(iter(signature.parameters))

    def function(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        options = dict(bound.arguments)
        stack = options.pop(stack_name)
        _check_stack(op.name, stack)
        shape = getattr(stack, "shape", None)
        op.validate(options, StackFacts(images=int(shape[0]) if shape is not None and len(shape) == 3 else None))
        return kernel(stack, **options)

    functools.update_wrapper(function, op.spec)
    function.__module__ = module
    function.category = op.category  # type: ignore[attr-defined]
    function.operation = op.name  # type: ignore[attr-defined]
    function.operation_spec = op  # type: ignore[attr-defined]
    _memory_type_decorator(memory_type)(function)
    if op.special_outputs:
        special_outputs(*op.special_outputs, materialize=op.materialize)(function)
    if op.special_inputs:
        special_inputs(*op.special_inputs)(function)
    return function
