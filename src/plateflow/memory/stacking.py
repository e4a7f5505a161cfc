"""Stacks of 2-D slices: ``stack_slices`` and ``unstack_slices``.

A stack is one (N, Y, X) array handed to a step's function; the VFS stores its
slices one 2-D image per file. Slices must agree in shape and dtype: mixed
dtypes are an error naming the slice (no silent promotion), because a
promoted stack would change what the function computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .conversion import ADAPTERS, _memory_type_of_class, convert, detect_memory_type
from .types import validate_memory_type

__all__ = ["stack_slices", "unstack_slices"]


def _slice_type(item: Any, index: int) -> str:
    try:
        return detect_memory_type(item)
    except TypeError as error:
        raise TypeError(f"slice {index}: {error}") from None


def stack_slices(
    slices: Sequence[Any],
    memory_type: str,
    gpu_id: int | None = None,
    *,
    allow_downcast: bool = False,
) -> Any:
    """Stack 2-D arrays of any memory types into one (N, Y, X) array of ``memory_type``.

    Args:
        slices: a non-empty list (or tuple) of 2-D arrays, all of one shape and dtype.
        memory_type: memory type of the result.
        gpu_id: GPU for the result, as in :func:`~plateflow.memory.convert`.
        allow_downcast: as in :func:`~plateflow.memory.convert`.

    Raises:
        ValueError: an empty list, a slice that is not 2-D, or shapes or dtypes
            that differ (naming the slice and slice 0).
        TypeError: ``slices`` is not a list or tuple, or holds a non-array.
    """
    memory_type = validate_memory_type(memory_type)
    if not isinstance(slices, (list, tuple)):
        raise TypeError(f"slices must be a list or tuple of 2-D arrays, got {type(slices).__name__}")
    if not slices:
        raise ValueError("stack_slices needs at least one slice, got an empty list")

    types = [_slice_type(item, i) for i, item in enumerate(slices)]
    shapes, dtypes = [], []
    for i, (item, kind) in enumerate(zip(slices, types)):
        adapter = ADAPTERS[kind]
        shape = adapter.shape(item)
        if len(shape) != 2:
            raise ValueError(f"slice {i} has {len(shape)} dimensions (shape {shape}); stack_slices takes 2-D slices")
        shapes.append(shape)
        dtypes.append(adapter.dtype_name(item))
        if shape != shapes[0]:
            raise ValueError(f"slice {i} has shape {shape}, slice 0 has {shapes[0]}; all slices must have one shape")
        if dtypes[i] != dtypes[0]:
            raise ValueError(
                f"slice {i} has dtype {dtypes[i]}, slice 0 has {dtypes[0]}; convert the slices to one dtype first"
            )

    if len(set(types)) == 1:
        # Stack where the data is, then convert once: one host->device transfer
        # for a stack of numpy slices bound for a GPU, instead of one per slice.
        source = types[0]
        stacked = ADAPTERS[source].stack(list(slices))
        return convert(stacked, source, memory_type, gpu_id, allow_downcast=allow_downcast)
    converted = [
        convert(item, kind, memory_type, gpu_id, allow_downcast=allow_downcast) for item, kind in zip(slices, types)
    ]
    return ADAPTERS[memory_type].stack(converted)


def unstack_slices(
    array: Any,
    memory_type: str,
    gpu_id: int | None = None,
    validate_slices: bool = True,
    *,
    allow_downcast: bool = False,
) -> list[Any]:
    """Split an (N, Y, X) array (or one 2-D image) into a list of 2-D arrays of ``memory_type``.

    The array is converted once, then split in the target library (numpy and
    torch slices are views of the converted stack).

    Args:
        array: a 3-D stack or a single 2-D image, of any memory type.
        memory_type: memory type of the slices.
        gpu_id: GPU for the slices, as in :func:`~plateflow.memory.convert`.
        validate_slices: check that every slice is 2-D and of ``memory_type``,
            and that the stack is not empty.
        allow_downcast: as in :func:`~plateflow.memory.convert`.
    """
    memory_type = validate_memory_type(memory_type)
    source = detect_memory_type(array)
    shape = ADAPTERS[source].shape(array)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"unstack_slices takes an (N, Y, X) stack or a 2-D image, got {len(shape)} dimensions (shape {shape})"
        )
    if validate_slices and len(shape) == 3 and shape[0] == 0:
        raise ValueError(f"the stack has no slices (shape {shape})")
    converted = convert(array, source, memory_type, gpu_id, allow_downcast=allow_downcast)
    if len(shape) == 2:
        return [converted]
    adapter = ADAPTERS[memory_type]
    result = adapter.unstack(converted)
    if validate_slices:
        for i, item in enumerate(result):
            if _memory_type_of_class(type(item)) != memory_type or len(adapter.shape(item)) != 2:
                raise ValueError(
                    f"slice {i} came out as {type(item).__name__} with shape {adapter.shape(item)}, "
                    f"not a 2-D {memory_type} array"
                )
    return result
