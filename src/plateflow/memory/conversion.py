"""Conversion between memory types: ``convert(data, source, target, gpu_id=None)``.

Every array library is described by one adapter in :data:`ADAPTERS` (how to
reach numpy, how to come back from numpy, which DLPack devices it can import
from, how to move to a GPU, how to stack). A conversion is then

1. same memory type: the data itself, moved to ``gpu_id`` when one is given;
2. otherwise DLPack from source to target when the target can import from the
   device the data is on (zero-copy: numpy <-> torch on the CPU share memory,
   numpy -> jax shares memory when the buffer has the alignment XLA needs);
3. otherwise through a numpy array on the host.

The result shares memory with the input whenever DLPack or numpy allow it:
write into it only if you own the input. jax arrays are immutable, so a numpy
array obtained from jax is a read-only view.

dtypes are preserved, except where the target library cannot hold them:

- **jax** without 64-bit mode (``JAX_ENABLE_X64`` unset, jax's default) has no
  float64, int64, uint64 or complex128. Rather than let jax truncate silently,
  ``convert`` raises :class:`MemoryConversionError` saying so; pass
  ``allow_downcast=True`` to narrow to the 32-bit type (integers are checked to
  fit first), or set ``JAX_ENABLE_X64=1`` before jax is imported.
- **pyclesperanto** (OpenCL) has no 64-bit, float16, bool or complex images:
  bool becomes uint8 and float16 becomes float32 (both lossless, always done);
  64-bit types raise unless ``allow_downcast=True``; complex types raise.

Errors: :class:`MemoryConversionError` (a ``RuntimeError``) for conversions
that cannot be done here; its subclass :class:`LibraryNotInstalledError` (also
an ``ImportError``) when the library is missing, naming the extra to install.
``TypeError`` when ``data`` is not of the ``source`` type, ``ValueError`` for an
unknown memory type or a bad ``gpu_id``.

Optional libraries are imported inside the adapters, on first use.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np

from .. import _text
from .types import LIBRARIES, MEMORY_TYPES, validate_memory_type

__all__ = [
    "convert",
    "detect_memory_type",
    "MemoryConversionError",
    "LibraryNotInstalledError",
    "ArrayAdapter",
    "ADAPTERS",
    "get_adapter",
    "import_library",
    "validate_gpu_id",
]


class MemoryConversionError(RuntimeError):
    """Data cannot be converted between two memory types on this machine."""


class LibraryNotInstalledError(MemoryConversionError, ImportError):
    """The array library of a memory type is not installed (or fails to import)."""


def install_hint(memory_type: str) -> str:
    """How to install the library of ``memory_type``: its plateflow extra, else its pip package."""
    spec = LIBRARIES[memory_type]
    return _text.install_hint(spec.pip_name, spec.extra or None)


def import_library(memory_type: str, submodule: str | None = None) -> ModuleType:
    """Import the library of ``memory_type`` (or one of its submodules), or raise
    :class:`LibraryNotInstalledError` naming the extra that installs it."""
    spec = LIBRARIES[memory_type]
    name = spec.module if submodule is None else f"{spec.module}.{submodule}"
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise LibraryNotInstalledError(
            f"memory type {memory_type!r} needs {spec.module}, which could not be imported ({error}); "
            f"install it with: {install_hint(memory_type)}"
        ) from error


# DLPack device type codes (dlpack.h DLDeviceType) -> the device kinds used here.
_DLPACK_DEVICE_KINDS = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 10: "rocm", 13: "cuda_managed"}


def validate_gpu_id(gpu_id: object) -> int | None:
    """``None`` or a GPU index >= 0; bools are rejected (``True`` is not GPU 1)."""
    if gpu_id is None:
        return None
    if isinstance(gpu_id, bool) or not isinstance(gpu_id, (int, np.integer)):
        raise TypeError(f"gpu_id must be None or a GPU index (int >= 0), got {type(gpu_id).__name__} {gpu_id!r}")
    if gpu_id < 0:
        raise ValueError(f"gpu_id must be None or a GPU index >= 0, got {gpu_id}")
    return int(gpu_id)


class ArrayAdapter(Protocol):
    """What ``convert`` and the stacking functions need from one array library."""

    # Read-only properties: the adapters are frozen dataclasses.
    @property
    def memory_type(self) -> str: ...
    @property
    def dlpack_import_kinds(self) -> frozenset[str]:
        """DLPack device kinds this library can import from without a copy through the host."""
    @property
    def dlpack_export(self) -> bool:
        """Whether arrays of this library can be exported through ``__dlpack__``."""

    def lib(self) -> ModuleType: ...
    def to_numpy(self, data: Any) -> np.ndarray: ...
    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any: ...
    def from_dlpack(self, exported: Any) -> Any: ...
    def dlpack_view(self, data: Any) -> Any: ...
    def device_kind(self, data: Any) -> str: ...
    def to_gpu(self, data: Any, gpu_id: int) -> Any: ...
    def numpy_dtype(self, data: Any) -> np.dtype | None: ...
    def dtype_name(self, data: Any) -> str: ...
    def shape(self, data: Any) -> tuple[int, ...]: ...
    def storable_dtype(self, dtype: np.dtype) -> tuple[np.dtype, str]: ...
    def stack(self, arrays: Sequence[Any]) -> Any: ...
    def unstack(self, array: Any) -> list[Any]: ...


def _exportable(array: Any) -> Any:
    """``array`` if it can be shared through DLPack as it is, else a C-contiguous copy.

    Consumers differ: jax refuses non-compact strides and torch aborts the process
    on negative strides, so only C- or F-contiguous layouts are exported as views.
    Read-only numpy arrays are copied too: jax refuses them, and torch, which has
    no read-only tensors, would let writes reach memory its owner protected (a
    read-only memmap, a jax buffer).
    """
    flags = array.flags
    if (flags.c_contiguous or flags.f_contiguous) and getattr(flags, "writeable", True):
        return array
    return array.copy(order="C")


@dataclass(frozen=True)
class _Adapter:
    """Defaults shared by the adapters; each library overrides what differs."""

    memory_type: str
    dlpack_import_kinds: frozenset[str] = frozenset()
    dlpack_export: bool = True

    def lib(self) -> ModuleType:
        return import_library(self.memory_type)

    def from_dlpack(self, exported: Any) -> Any:
        raise MemoryConversionError(f"{self.memory_type} does not import DLPack here")

    def dlpack_view(self, data: Any) -> Any:
        return data

    def device_kind(self, data: Any) -> str:
        code = int(data.__dlpack_device__()[0])
        return _DLPACK_DEVICE_KINDS.get(code, f"dlpack-device-{code}")

    def numpy_dtype(self, data: Any) -> np.dtype | None:
        try:
            return np.dtype(data.dtype)
        except TypeError:  # a dtype numpy has no equivalent for
            return None

    def dtype_name(self, data: Any) -> str:
        dtype = self.numpy_dtype(data)
        return dtype.name if dtype is not None else str(data.dtype).rsplit(".", 1)[-1]

    def shape(self, data: Any) -> tuple[int, ...]:
        return tuple(int(n) for n in data.shape)

    def storable_dtype(self, dtype: np.dtype) -> tuple[np.dtype, str]:
        """The dtype this library stores ``dtype`` as, and how: ``"same"``,
        ``"widen"`` (lossless), ``"narrow"`` (lossy) or ``"unsupported"``."""
        return dtype, "same"

    def to_gpu(self, data: Any, gpu_id: int) -> Any:
        raise MemoryConversionError(f"{self.memory_type} arrays live in host memory; gpu_id={gpu_id} does not apply")

    def unstack(self, array: Any) -> list[Any]:
        return list(array)


class NumpyAdapter(_Adapter):
    def lib(self) -> ModuleType:
        return np

    def to_numpy(self, data: Any) -> np.ndarray:
        return data

    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any:
        return array  # host memory: there is no GPU to place it on

    def from_dlpack(self, exported: Any) -> Any:
        return np.from_dlpack(exported)

    def dlpack_view(self, data: Any) -> Any:
        return _exportable(data)

    def stack(self, arrays: Sequence[Any]) -> Any:
        return np.stack(arrays)


class TorchAdapter(_Adapter):
    def to_numpy(self, data: Any) -> np.ndarray:
        data = data.detach().resolve_conj().resolve_neg()
        if data.device.type != "cpu":
            data = data.cpu()
        return data.numpy()

    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any:
        torch = self.lib()
        tensor = torch.from_dlpack(_exportable(array))
        return tensor if gpu_id is None else self.to_gpu(tensor, gpu_id)

    def from_dlpack(self, exported: Any) -> Any:
        return self.lib().from_dlpack(exported)

    def dlpack_view(self, data: Any) -> Any:
        # Tensors that require grad, or carry lazy conj/neg bits, refuse to export.
        data = data.detach().resolve_conj().resolve_neg()
        return data if data.is_contiguous() else data.contiguous()

    def numpy_dtype(self, data: Any) -> np.dtype | None:
        torch = sys.modules["torch"]
        if data.dtype in (torch.bfloat16, getattr(torch, "float8_e4m3fn", None)):
            return None
        return np.dtype(str(data.dtype).rsplit(".", 1)[-1])

    def to_gpu(self, data: Any, gpu_id: int) -> Any:
        return data.to(f"cuda:{gpu_id}")

    def stack(self, arrays: Sequence[Any]) -> Any:
        return self.lib().stack(list(arrays))

    def unstack(self, array: Any) -> list[Any]:
        return list(array.unbind(0))


class JaxAdapter(_Adapter):
    def to_numpy(self, data: Any) -> np.ndarray:
        return np.asarray(data)  # a read-only view on the CPU, a host copy from a GPU

    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any:
        jax = self.lib()
        if gpu_id is not None:
            return jax.device_put(array, self._gpu(gpu_id))
        # Zero-copy when the buffer is aligned as XLA needs, a copy otherwise.
        return jax.dlpack.from_dlpack(_exportable(array))

    def from_dlpack(self, exported: Any) -> Any:
        return import_library("jax", "dlpack").from_dlpack(exported)

    def storable_dtype(self, dtype: np.dtype) -> tuple[np.dtype, str]:
        canonical = np.dtype(import_library("jax").dtypes.canonicalize_dtype(dtype))
        return (dtype, "same") if canonical == dtype else (canonical, "narrow")

    def _gpu(self, gpu_id: int) -> Any:
        return self.lib().devices("gpu")[gpu_id]

    def to_gpu(self, data: Any, gpu_id: int) -> Any:
        return self.lib().device_put(data, self._gpu(gpu_id))

    def stack(self, arrays: Sequence[Any]) -> Any:
        return import_library("jax", "numpy").stack(list(arrays))


class CupyAdapter(_Adapter):
    def to_numpy(self, data: Any) -> np.ndarray:
        return self.lib().asnumpy(data)

    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any:
        cupy = self.lib()
        if gpu_id is None:
            return cupy.asarray(array)  # the current CUDA device
        with cupy.cuda.Device(gpu_id):
            return cupy.asarray(array)

    def from_dlpack(self, exported: Any) -> Any:
        return self.lib().from_dlpack(exported)

    def dlpack_view(self, data: Any) -> Any:
        return _exportable(data)

    def to_gpu(self, data: Any, gpu_id: int) -> Any:
        cupy = self.lib()
        if data.device.id == gpu_id:
            return data
        with cupy.cuda.Device(gpu_id):
            return cupy.asarray(data)  # peer copy onto the current device

    def stack(self, arrays: Sequence[Any]) -> Any:
        return self.lib().stack(list(arrays))


class TensorflowAdapter(_Adapter):
    # TensorFlow exports DLPack only as legacy capsules, which newer consumers
    # (jax, numpy) refuse, so tensors leave TensorFlow through host memory.
    def to_numpy(self, data: Any) -> np.ndarray:
        return data.numpy()

    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any:
        tf = self.lib()
        if gpu_id is None:
            return tf.convert_to_tensor(array)
        with tf.device(f"/GPU:{gpu_id}"):
            return tf.identity(tf.convert_to_tensor(array))

    def from_dlpack(self, exported: Any) -> Any:
        return self.lib().experimental.dlpack.from_dlpack(exported.__dlpack__())

    def device_kind(self, data: Any) -> str:
        return "cuda" if ":GPU:" in data.device.upper() else "cpu"

    def numpy_dtype(self, data: Any) -> np.dtype | None:
        try:
            return np.dtype(data.dtype.as_numpy_dtype)
        except TypeError:
            return None

    def to_gpu(self, data: Any, gpu_id: int) -> Any:
        tf = self.lib()
        with tf.device(f"/GPU:{gpu_id}"):
            return tf.identity(data)

    def stack(self, arrays: Sequence[Any]) -> Any:
        return self.lib().stack(list(arrays))

    def unstack(self, array: Any) -> list[Any]:
        return list(self.lib().unstack(array))


class PyclesperantoAdapter(_Adapter):
    _WIDEN: ClassVar[dict[str, str]] = {"bool": "uint8", "float16": "float32"}
    _NARROW: ClassVar[dict[str, str]] = {"int64": "int32", "uint64": "uint32", "float64": "float32"}

    def to_numpy(self, data: Any) -> np.ndarray:
        return self.lib().pull(data)

    def from_numpy(self, array: np.ndarray, gpu_id: int | None) -> Any:
        cle = self.lib()
        # pyclesperanto runs kernels on its current device, so choosing the GPU
        # for this array also makes it the current device, as cle.select_device does.
        device = None if gpu_id is None else cle.select_device(gpu_id, "gpu")
        return cle.push(np.ascontiguousarray(array), device=device)

    def device_kind(self, data: Any) -> str:
        return "opencl"

    def storable_dtype(self, dtype: np.dtype) -> tuple[np.dtype, str]:
        if dtype.name in self._WIDEN:
            return np.dtype(self._WIDEN[dtype.name]), "widen"
        if dtype.name in self._NARROW:
            return np.dtype(self._NARROW[dtype.name]), "narrow"
        if dtype.kind not in "biuf":
            return dtype, "unsupported"
        return dtype, "same"

    def to_gpu(self, data: Any, gpu_id: int) -> Any:
        return self.from_numpy(self.to_numpy(data), gpu_id)

    def stack(self, arrays: Sequence[Any]) -> Any:
        # OpenCL buffers have no cheap stack: assemble on the host, push once.
        cle = self.lib()
        device = arrays[0].device
        return cle.push(np.stack([cle.pull(a) for a in arrays]), device=device)

    def unstack(self, array: Any) -> list[Any]:
        return [array[i] for i in range(array.shape[0])]


#: The adapter of every memory type.
ADAPTERS: dict[str, ArrayAdapter] = {
    "numpy": NumpyAdapter("numpy", frozenset({"cpu"})),
    "cupy": CupyAdapter("cupy", frozenset({"cuda"})),
    "torch": TorchAdapter("torch", frozenset({"cpu", "cuda"})),
    "tensorflow": TensorflowAdapter("tensorflow", frozenset({"cuda"}), dlpack_export=False),
    "jax": JaxAdapter("jax", frozenset({"cpu", "cuda"})),
    "pyclesperanto": PyclesperantoAdapter("pyclesperanto", frozenset(), dlpack_export=False),
}


def get_adapter(memory_type: str) -> ArrayAdapter:
    return ADAPTERS[validate_memory_type(memory_type)]


# Top-level module of a class (or of any class it derives from) -> memory type.
_MODULE_ROOTS = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "jax": "jax",
    "jaxlib": "jax",
    "pyclesperanto": "pyclesperanto",
}


def _memory_type_of_class(cls: type) -> str | None:
    for klass in cls.__mro__:
        root = (klass.__module__ or "").split(".", 1)[0]
        if root in _MODULE_ROOTS:
            return _MODULE_ROOTS[root]
        # backends ship as separate packages: pyclesperanto_opencl, pyclesperanto_cuda, ...
        if root.startswith("pyclesperanto"):
            return "pyclesperanto"
    return None


def detect_memory_type(data: Any) -> str:
    """The memory type of an array, from the module that defines its type.

    Imports nothing: a library that is not imported cannot have made ``data``.
    Raises ``TypeError`` for anything that is not an array of a known library.
    """
    found = _memory_type_of_class(type(data))
    if found is None or not _is_array(data, found):
        raise TypeError(
            f"cannot tell the memory type of {_describe(data)}; expected an array of one of: "
            f"{', '.join(MEMORY_TYPES)}"
        )
    return found


def _is_array(data: Any, memory_type: str) -> bool:
    if memory_type == "numpy":
        return isinstance(data, np.ndarray)  # not numpy scalars, dtypes or ufuncs
    return hasattr(data, "shape") and hasattr(data, "dtype")


def _describe(data: Any) -> str:
    cls = type(data)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_source(data: Any, source: str) -> None:
    found = _memory_type_of_class(type(data))
    if found != source or not _is_array(data, found):
        what = f"a {found} array" if found and _is_array(data, found) else "not an array of any memory type"
        raise TypeError(f"expected a {source} array as source, got {_describe(data)} ({what})")


def _check_gpu(target: str, gpu_id: int) -> None:
    from .devices import library_status

    status = library_status(target)
    if gpu_id not in status.gpu_ids:
        have = f"GPU ids {list(status.gpu_ids)}" if status.gpu_ids else "no GPU"
        raise MemoryConversionError(
            f"gpu_id={gpu_id} was requested for {target}, but {target} has {have} on this machine "
            f"({status.reason}); pass gpu_id=None to leave the data where it is"
        )


def _cast_plan(source_dtype: np.dtype, target: str, allow_downcast: bool) -> np.dtype | None:
    """The dtype to cast to before ``target`` can hold the data, or ``None`` for none."""
    stored, how = ADAPTERS[target].storable_dtype(source_dtype)
    if how == "same":
        return None
    if how == "widen":
        return stored
    if how == "unsupported":
        raise MemoryConversionError(f"{target} cannot hold {source_dtype.name} data; cast it to a real number dtype such as float32 first")
    if not allow_downcast:
        fix = "set JAX_ENABLE_X64=1 before jax is imported, or " if target == "jax" else ""
        raise MemoryConversionError(
            f"{target} stores {source_dtype.name} as {stored.name} here, which loses data; "
            f"{fix}pass allow_downcast=True to accept {stored.name}, or cast to {stored.name} first"
        )
    return stored


def _narrow(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise MemoryConversionError(
                f"values {low}..{high} do not fit in {dtype.name} ({info.min}..{info.max}); "
                "rescale them or use a memory type that holds 64-bit data"
            )
    return array.astype(dtype)


def convert(
    data: Any,
    source: str,
    target: str,
    gpu_id: int | None = None,
    *,
    allow_downcast: bool = False,
) -> Any:
    """Convert ``data`` from memory type ``source`` to ``target``.

    Args:
        data: an array of the ``source`` library.
        source, target: memory type names (see :data:`~plateflow.memory.MEMORY_TYPES`).
        gpu_id: for GPU memory types, the GPU to put the result on (``cuda:N`` for
            torch, ``Device(N)`` for cupy, ``jax.devices("gpu")[N]``, the N-th
            OpenCL GPU for pyclesperanto). ``None`` leaves the data on the device it
            is on when the target can hold it there, else the library's default
            device. numpy ignores it (host memory).
        allow_downcast: accept 64-bit data narrowed to 32 bits when the target
            cannot hold 64-bit data (jax without x64, pyclesperanto).

    Returns:
        An array of the ``target`` library with the same shape, dtype (see the
        module docstring for the exceptions) and values, sharing memory with
        ``data`` where DLPack allows it.
    """
    source = validate_memory_type(source, what="source memory type")
    target = validate_memory_type(target, what="target memory type")
    gpu_id = validate_gpu_id(gpu_id)
    _check_source(data, source)
    if target == "numpy":
        gpu_id = None
    src, dst = ADAPTERS[source], ADAPTERS[target]
    dst.lib()  # fail early, naming the extra, when the target is not installed
    if gpu_id is not None:
        _check_gpu(target, gpu_id)

    if source == target:
        return data if gpu_id is None else dst.to_gpu(data, gpu_id)

    source_dtype = src.numpy_dtype(data)
    cast = None if source_dtype is None else _cast_plan(source_dtype, target, allow_downcast)

    # numpy cannot import dtypes it has no name for (bfloat16), even through DLPack.
    representable = source_dtype is not None or target != "numpy"
    if cast is None and representable and src.dlpack_export and src.device_kind(data) in dst.dlpack_import_kinds:
        result = dst.from_dlpack(src.dlpack_view(data))
        return result if gpu_id is None else dst.to_gpu(result, gpu_id)

    if source_dtype is None:
        raise MemoryConversionError(
            f"{source} dtype {src.dtype_name(data)} has no numpy equivalent and {target} cannot import it "
            "directly; cast it (e.g. to float32) first"
        )
    host = src.to_numpy(data)
    if cast is not None:
        host = _narrow(host, cast) if np.dtype(cast).itemsize < host.dtype.itemsize else host.astype(cast)
    return dst.from_numpy(host, gpu_id)
