"""Memory-type decorators attach two attributes and change nothing else."""

from __future__ import annotations

import inspect

import pytest

from plateflow import chain_breaker, special_inputs, special_outputs
from plateflow.memory import MEMORY_TYPES, MemoryType, memory_type
from plateflow.memory import decorators as deco

DECORATORS = {name: getattr(deco, name) for name in MEMORY_TYPES}


def make_function():
    def scale(stack, factor: float = 2.0, *, offset: int = 0):
        """Scale a stack."""
        return [x * factor + offset for x in stack]

    return scale


def test_every_memory_type_has_a_decorator():
    assert set(DECORATORS) == set(MEMORY_TYPES)
    for name, decorator in DECORATORS.items():
        assert decorator.__name__ == name


@pytest.mark.parametrize("name", MEMORY_TYPES)
def test_bare_decorator_sets_attributes_and_nothing_else(name):
    func = make_function()
    before = dict(func.__dict__)
    signature = inspect.signature(func)
    result = DECORATORS[name](func)
    assert result is func
    assert func.input_memory_type == name and func.output_memory_type == name
    assert type(func.input_memory_type) is str
    assert set(func.__dict__) - set(before) == {"input_memory_type", "output_memory_type"}
    assert not hasattr(func, "__wrapped__")
    assert inspect.signature(func) == signature
    assert func.__name__ == "scale" and func.__doc__ == "Scale a stack."
    assert func([1, 2], 3.0, offset=1) == make_function()([1, 2], 3.0, offset=1) == [4.0, 7.0]


def test_bare_decorator_syntax():
    @deco.numpy
    def f(stack):
        return stack

    assert (f.input_memory_type, f.output_memory_type) == ("numpy", "numpy")
    sentinel = object()
    assert f(sentinel) is sentinel


@pytest.mark.parametrize("name", MEMORY_TYPES)
def test_decorator_with_arguments(name):
    func = make_function()
    result = DECORATORS[name](input_type=name, output_type="numpy")(func)
    assert result is func
    assert (func.input_memory_type, func.output_memory_type) == (name, "numpy")
    assert not hasattr(func, "__wrapped__")


def test_empty_parentheses_and_partial_arguments():
    @deco.torch()
    def a(stack):
        return stack

    @deco.torch(output_type="numpy")
    def b(stack):
        return stack

    @deco.torch(input_type="numpy")
    def c(stack):
        return stack

    assert (a.input_memory_type, a.output_memory_type) == ("torch", "torch")
    assert (b.input_memory_type, b.output_memory_type) == ("torch", "numpy")
    assert (c.input_memory_type, c.output_memory_type) == ("numpy", "torch")


def test_memory_type_enum_values_are_stored_as_plain_strings():
    func = deco.torch(output_type=MemoryType.NUMPY)(make_function())
    assert func.output_memory_type == "numpy" and type(func.output_memory_type) is str


@pytest.mark.parametrize("keyword", ["input_type", "output_type"])
def test_unknown_memory_type_lists_the_valid_names(keyword):
    with pytest.raises(ValueError, match=f"unknown {keyword} 'numpyy'") as info:
        deco.numpy(**{keyword: "numpyy"})
    assert all(name in str(info.value) for name in MEMORY_TYPES)


def test_unknown_default_memory_type():
    with pytest.raises(ValueError, match="unknown memory type 'cuda'; valid memory types are: numpy, cupy"):
        memory_type("cuda")


def test_bad_argument_fails_at_definition_not_at_call():
    with pytest.raises(ValueError):

        @deco.cupy(output_type="gpu")
        def never(stack):
            return stack


def test_non_callable_is_a_type_error():
    with pytest.raises(TypeError, match="needs a function, got int"):
        deco.numpy(3)
    with pytest.raises(TypeError, match="needs a function, got str"):
        deco.numpy("torch")  # the user meant @numpy(output_type="torch")


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        deco.numpy(None, "torch")


def test_callable_objects_can_be_decorated():
    class Filter:
        def __call__(self, stack):
            return stack

    instance = Filter()
    assert deco.jax(instance) is instance and instance.input_memory_type == "jax"


# --- composition with special I/O -------------------------------------------------------


def test_special_outputs_above_memory_decorator():
    func = make_function()
    result = special_outputs("positions")(deco.numpy(func))
    assert result is func
    assert func.special_outputs == ("positions",)
    assert (func.input_memory_type, func.output_memory_type) == ("numpy", "numpy")


def test_memory_decorator_above_special_outputs():
    func = make_function()
    result = deco.torch(output_type="numpy")(special_outputs("positions", "areas")(func))
    assert result is func
    assert func.special_outputs == ("positions", "areas")
    assert (func.input_memory_type, func.output_memory_type) == ("torch", "numpy")


def test_full_stack_in_either_order_gives_the_same_attributes():
    def attributes(func):
        return {k: v for k, v in func.__dict__.items()}

    first = make_function()
    chain_breaker(special_inputs("positions")(special_outputs("mask")(deco.pyclesperanto(first))))
    second = make_function()
    deco.pyclesperanto(special_outputs("mask")(special_inputs("positions")(chain_breaker(second))))
    assert attributes(first) == attributes(second)
    assert attributes(first).items() >= {
        "input_memory_type": "pyclesperanto",
        "output_memory_type": "pyclesperanto",
        "special_outputs": ("mask",),
        "special_inputs": ("positions",),
        "chain_breaker": True,
    }.items()
    assert not hasattr(first, "__wrapped__") and not hasattr(second, "__wrapped__")
    assert first([1], 2.0) == second([1], 2.0) == [2.0]


def test_decorator_syntax_composition():
    @special_outputs("positions")
    @deco.numpy
    def find_positions(stack):
        return stack, [(1, 2)]

    @special_inputs("positions")
    @deco.numpy
    def assemble(stack, positions):
        return stack

    assert find_positions.special_outputs == ("positions",)
    assert assemble.special_inputs == ("positions",)
    assert find_positions("s") == ("s", [(1, 2)])
    assert assemble("s", positions=[]) == "s"
