"""One spec per operation, one kernel per library.

An *operation* (``gaussian_filter``, ``top_hat``, ...) is written once as a spec
function in :mod:`plateflow.library.specs`: its signature (with ``Annotated``
bounds, units and ``Literal`` choices), its numpydoc docstring, its category,
its special I/O and any check that the annotations cannot express. Each array
library then supplies only a *kernel* that does the work.
:func:`implement` joins the two into the public function of one memory type:
it binds and validates the arguments against the spec, then calls the kernel,
so validation and documentation never repeat per library.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..memory import memory_type as _memory_type_decorator
from ..signatures import check_value, describe_parameters
from ..special_io import special_inputs, special_outputs

__all__ = ["Operation", "operation", "implement", "fill_doc"]


@dataclass(frozen=True)
class Operation:
    """What every library's version of one operation shares."""

    spec: Callable[..., Any]
    category: str
    special_inputs: tuple[str, ...] = ()
    special_outputs: tuple[str, ...] = ()
    #: special outputs that are results of the run (tables written to the output folder)
    materialize: bool = False

    @property
    def name(self) -> str:
        return self.spec.__name__

    def validate(self, options: dict[str, Any]) -> None:
        """Check ``options`` against the annotations, then the spec's own checks."""
        for param in describe_parameters(self.spec):
            problem = check_value(param, options[param.name])
            if problem is not None:
                raise ValueError(f"{self.name}: {param.name}={options[param.name]!r} is not valid: {problem}")
        self.spec(None, **options)


def fill_doc(**fragments: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace ``{name}`` lines of a docstring with shared text, at the line's indent.

    Lets operations that take the same parameters (segmentation and
    measurement) document them once.
    """

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        lines = []
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
    category: str, *, special_inputs: tuple[str, ...] = (), special_outputs: tuple[str, ...] = (), materialize: bool = False
) -> Callable[[Callable[..., Any]], Operation]:
    """Declare a spec function as an :class:`Operation`.

    The spec's body receives ``None`` for the stack and the bound options; it
    raises ``ValueError`` for combinations the annotations cannot check.
    """

    def declare(spec: Callable[..., Any]) -> Operation:
        return Operation(spec, category, tuple(special_inputs), tuple(special_outputs), materialize)

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
        op.validate(options)
        return kernel(stack, **options)

    functools.update_wrapper(function, op.spec)
    function.__module__ = module
    function.category = op.category  # type: ignore[attr-defined]
    function.operation = op.name  # type: ignore[attr-defined]
    _memory_type_decorator(memory_type)(function)
    if op.special_outputs:
        special_outputs(*op.special_outputs, materialize=op.materialize)(function)
    if op.special_inputs:
        special_inputs(*op.special_inputs)(function)
    return function
