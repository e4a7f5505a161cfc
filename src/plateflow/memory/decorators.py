"""Memory-type decorators: ``@numpy``, ``@torch(input_type=..., output_type=...)``, ...

A decorator only attaches ``input_memory_type`` and ``output_memory_type`` to the
function and returns the same function object: calling it is unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar, overload

from .types import MemoryType, validate_memory_type

__all__ = ["memory_type", "numpy", "cupy", "torch", "tensorflow", "jax", "pyclesperanto"]

F = TypeVar("F", bound=Callable[..., Any])


def _attach(func: F, input_type: str, output_type: str) -> F:
    if not callable(func):
        raise TypeError(f"a memory-type decorator needs a function, got {type(func).__name__}")
    try:
        # setattr: a plain callable type declares no such attributes; the decorator adds them.
        setattr(func, "input_memory_type", input_type)
        setattr(func, "output_memory_type", output_type)
    except AttributeError:
        raise TypeError(f"cannot attach memory types to {type(func).__name__} {func!r}; wrap it in a def") from None
    return func


def memory_type(default: str) -> Callable[..., Any]:
    """Build the decorator for one memory type.

    The returned decorator works bare (``@numpy``) and with arguments
    (``@numpy(output_type="torch")``); an unknown type raises ``ValueError`` at
    decoration time.
    """
    default = validate_memory_type(default)

    @overload
    def decorator(func: F, /) -> F: ...
    @overload
    def decorator(*, input_type: str = ..., output_type: str = ...) -> Callable[[F], F]: ...

    def decorator(func: Any = None, /, *, input_type: str | None = None, output_type: str | None = None) -> Any:
        in_type = validate_memory_type(input_type if input_type is not None else default, what="input_type")
        out_type = validate_memory_type(output_type if output_type is not None else default, what="output_type")
        if func is not None:
            return _attach(func, in_type, out_type)
        return lambda f: _attach(f, in_type, out_type)

    decorator.__name__ = default
    decorator.__qualname__ = default
    decorator.__doc__ = (
        f"Declare that a function takes and returns {default} arrays.\n\n"
        f"Use bare (``@{default}``) or with ``input_type=``/``output_type=`` to declare a\n"
        "function that converts, e.g. ``@torch(input_type=\"torch\", output_type=\"numpy\")``."
    )
    return decorator


numpy = memory_type(MemoryType.NUMPY)
cupy = memory_type(MemoryType.CUPY)
torch = memory_type(MemoryType.TORCH)
tensorflow = memory_type(MemoryType.TENSORFLOW)
jax = memory_type(MemoryType.JAX)
pyclesperanto = memory_type(MemoryType.PYCLESPERANTO)
