"""stack_slices / unstack_slices: exact round trips per memory type and errors naming the slice."""

from __future__ import annotations

import re

import numpy as np
import pytest

from plateflow.memory import MemoryConversionError, convert, stack_slices, unstack_slices
from plateflow.memory.conversion import detect_memory_type

from ._helpers import CPU_CAPABLE, RUNNABLE, dtype_name, host, usable


def slices(n: int = 4, shape: tuple[int, int] = (6, 9), dtype: str = "uint16") -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        return [rng.random(shape).astype(dtype) for _ in range(n)]
    return [rng.integers(0, 200, shape).astype(dtype) for _ in range(n)]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32"])
@pytest.mark.parametrize("memory_type", RUNNABLE)
def test_round_trip_is_exact(memory_type, dtype):
    planes = slices(dtype=dtype)
    stack = stack_slices(planes, memory_type)
    assert detect_memory_type(stack) == memory_type
    assert tuple(stack.shape) == (4, 6, 9)
    assert dtype_name(stack) == dtype
    np.testing.assert_array_equal(host(stack), np.stack(planes))

    back = unstack_slices(stack, memory_type)
    assert len(back) == 4
    for plane, expected in zip(back, planes):
        assert detect_memory_type(plane) == memory_type
        assert tuple(plane.shape) == (6, 9)
        np.testing.assert_array_equal(host(plane), expected)


@pytest.mark.parametrize("target", RUNNABLE)
@pytest.mark.parametrize("source", RUNNABLE)
def test_slices_of_one_type_stack_into_another(source, target):
    planes = slices(3)
    stack = stack_slices([convert(p, "numpy", source) for p in planes], target)
    assert detect_memory_type(stack) == target
    np.testing.assert_array_equal(host(stack), np.stack(planes))
    back = unstack_slices(convert(np.stack(planes), "numpy", source), target)
    assert [detect_memory_type(p) for p in back] == [target] * 3
    np.testing.assert_array_equal(np.stack([host(p) for p in back]), np.stack(planes))


@pytest.mark.parametrize("target", RUNNABLE)
def test_mixed_memory_types_stack(target):
    available = [t for t in CPU_CAPABLE if usable(t)]
    planes = slices(len(available))
    mixed = [convert(p, "numpy", t) for p, t in zip(planes, available)]
    np.testing.assert_array_equal(host(stack_slices(mixed, target)), np.stack(planes))


def test_numpy_and_torch_unstack_are_views_of_the_stack():
    stack = np.stack(slices(3))
    assert all(np.shares_memory(p, stack) for p in unstack_slices(stack, "numpy"))
    pytest.importorskip("torch")
    tensors = unstack_slices(stack, "torch")
    assert all(np.shares_memory(t.numpy(), stack) for t in tensors)


def test_tuple_of_slices_is_accepted():
    np.testing.assert_array_equal(stack_slices(tuple(slices(2)), "numpy"), np.stack(slices(2)))


def test_single_two_d_image_unstacks_to_one_slice():
    image = slices(1)[0]
    result = unstack_slices(image, "numpy")
    assert len(result) == 1 and result[0] is image


# --- errors -----------------------------------------------------------------------------


def test_shape_mismatch_names_the_slice():
    planes = slices(4)
    planes[3] = np.zeros((6, 10), np.uint16)
    with pytest.raises(ValueError, match=r"slice 3 has shape \(6, 10\), slice 0 has \(6, 9\)"):
        stack_slices(planes, "numpy")


def test_dtype_mismatch_names_the_slice():
    pytest.importorskip("torch")
    planes = slices(3)
    planes[2] = convert(planes[2].astype(np.float32), "numpy", "torch")
    with pytest.raises(ValueError, match="slice 2 has dtype float32, slice 0 has uint16"):
        stack_slices(planes, "numpy")


@pytest.mark.parametrize("shape, ndim", [((2, 6, 9), 3), ((9,), 1), ((1, 1, 6, 9), 4)])
def test_slices_that_are_not_2d_are_rejected(shape, ndim):
    planes = slices(3)
    planes[1] = np.zeros(shape, np.uint16)
    with pytest.raises(ValueError, match=re.escape(f"slice 1 has {ndim} dimensions (shape {shape})")):
        stack_slices(planes, "numpy")


def test_empty_list_is_rejected():
    with pytest.raises(ValueError, match="at least one slice, got an empty list"):
        stack_slices([], "numpy")


@pytest.mark.parametrize("value", [np.zeros((2, 3, 3)), (s for s in slices(2)), "image"])
def test_slices_must_be_a_list_or_tuple(value):
    with pytest.raises(TypeError, match="slices must be a list or tuple of 2-D arrays"):
        stack_slices(value, "numpy")


def test_non_array_slice_is_named():
    with pytest.raises(TypeError, match=r"slice 1: cannot tell the memory type of builtins\.list"):
        stack_slices([np.zeros((2, 2)), [[0, 0], [0, 0]]], "numpy")


def test_unknown_memory_type():
    with pytest.raises(ValueError, match="unknown memory type 'numpyy'"):
        stack_slices(slices(2), "numpyy")
    with pytest.raises(ValueError, match="unknown memory type 'numpyy'"):
        unstack_slices(np.zeros((2, 3, 3)), "numpyy")


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4)])
def test_unstack_rejects_other_dimensions(shape):
    with pytest.raises(ValueError, match=rf"got {len(shape)} dimensions"):
        unstack_slices(np.zeros(shape), "numpy")


def test_unstack_of_an_empty_stack():
    with pytest.raises(ValueError, match=r"the stack has no slices \(shape \(0, 4, 4\)\)"):
        unstack_slices(np.zeros((0, 4, 4)), "numpy")
    assert unstack_slices(np.zeros((0, 4, 4)), "numpy", validate_slices=False) == []


def test_stack_to_jax_passes_allow_downcast():
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("jax holds 64-bit data here")
    planes = slices(2, dtype="float64")
    with pytest.raises(MemoryConversionError, match="allow_downcast=True"):
        stack_slices(planes, "jax")
    stack = stack_slices(planes, "jax", allow_downcast=True)
    assert dtype_name(stack) == "float32"
    unstacked = unstack_slices(np.stack(planes), "jax", allow_downcast=True)
    assert dtype_name(unstacked[0]) == "float32"
