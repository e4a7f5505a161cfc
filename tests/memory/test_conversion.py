"""convert() between memory types: values, dtypes, zero-copy, devices, errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from plateflow.memory import MEMORY_TYPES, convert
from plateflow.memory.conversion import (
    ADAPTERS,
    LibraryNotInstalledError,
    MemoryConversionError,
    detect_memory_type,
)
from plateflow.memory.devices import gpu_count, library_status

from ._helpers import ON_GPU_MACHINE, RUNNABLE, dtype_name, host

DTYPES = ["uint8", "uint16", "int32", "float32"]


def sample(dtype: str, shape: tuple[int, ...] = (5, 7)) -> np.ndarray:
    values = np.arange(int(np.prod(shape))).reshape(shape) * 3 + 1
    if np.dtype(dtype).kind == "f":
        return (values / 7).astype(dtype)
    return (values % min(np.iinfo(dtype).max, 2**31)).astype(dtype)


def make(memory_type: str, array: np.ndarray):
    return convert(array, "numpy", memory_type)


def aligned(shape: tuple[int, ...], dtype: str, alignment: int = 64) -> np.ndarray:
    """A C-contiguous array whose buffer starts on an ``alignment``-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def test_one_adapter_per_memory_type():
    assert list(ADAPTERS) == list(MEMORY_TYPES)
    assert all(adapter.memory_type == name for name, adapter in ADAPTERS.items())


# --- every pair, values and dtypes ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", RUNNABLE)
@pytest.mark.parametrize("source", RUNNABLE)
def test_every_pair_preserves_values_and_dtype(source, target, dtype):
    expected = sample(dtype)
    data = make(source, expected)
    result = convert(data, source, target)
    assert detect_memory_type(result) == target
    assert dtype_name(result) == dtype
    assert tuple(result.shape) == expected.shape
    np.testing.assert_array_equal(host(result), expected)


@pytest.mark.parametrize("target", RUNNABLE)
@pytest.mark.parametrize("source", RUNNABLE)
def test_three_d_stacks_convert(source, target):
    expected = sample("uint16", (3, 4, 5))
    result = convert(make(source, expected), source, target)
    np.testing.assert_array_equal(host(result), expected)


@pytest.mark.parametrize("pair", [("numpy", "torch"), ("torch", "numpy")])
def test_float64_and_int64_preserved_between_numpy_and_torch(pair):
    pytest.importorskip("torch")
    source, target = pair
    for dtype in ("float64", "int64"):
        expected = sample(dtype)
        result = convert(make(source, expected), source, target)
        assert dtype_name(result) == dtype
        np.testing.assert_array_equal(host(result), expected)


def test_non_contiguous_numpy_layouts_convert_correctly():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    base = sample("float32", (6, 8))
    # negative strides abort torch's DLPack import and jax refuses strided buffers,
    # so these layouts must be copied before export
    for view in (base[::-1], base[:, ::2], base.T, base[::2, ::-3]):
        for target in ("torch", "jax"):
            np.testing.assert_array_equal(host(convert(view, "numpy", target)), view)


@pytest.mark.parametrize("target", [p for p in RUNNABLE if p.values[0] != "numpy"])
def test_read_only_numpy_is_copied_not_shared(target):
    array = sample("float32")
    array.flags.writeable = False
    result = convert(array, "numpy", target)
    np.testing.assert_array_equal(host(result), array)
    if target == "torch":  # torch has no read-only tensors: a shared one could write into `array`
        assert not np.shares_memory(result.numpy(), array)


def test_jax_numpy_jax_round_trip():
    jnp = pytest.importorskip("jax.numpy")
    data = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
    back = convert(convert(data, "jax", "numpy"), "numpy", "jax")
    np.testing.assert_array_equal(np.asarray(back), np.asarray(data))


def test_torch_tensor_requiring_grad_converts():
    torch = pytest.importorskip("torch")
    tensor = torch.arange(6, dtype=torch.float32, requires_grad=True)
    np.testing.assert_array_equal(convert(tensor, "torch", "numpy"), np.arange(6, dtype=np.float32))


def test_torch_bfloat16_to_numpy_is_a_clear_error():
    torch = pytest.importorskip("torch")
    with pytest.raises(MemoryConversionError, match="bfloat16 has no numpy equivalent"):
        convert(torch.zeros(3, dtype=torch.bfloat16), "torch", "numpy")


# --- zero-copy ------------------------------------------------------------------------


def test_numpy_to_torch_shares_memory():
    pytest.importorskip("torch")
    array = sample("float32")
    tensor = convert(array, "numpy", "torch")
    assert np.shares_memory(tensor.numpy(), array)
    tensor[0, 0] = -5.0
    assert array[0, 0] == -5.0


def test_torch_to_numpy_shares_memory():
    torch = pytest.importorskip("torch")
    tensor = torch.arange(12, dtype=torch.int32).reshape(3, 4)
    array = convert(tensor, "torch", "numpy")
    assert np.shares_memory(array, tensor.numpy())
    array[1, 1] = 99
    assert int(tensor[1, 1]) == 99


def test_numpy_round_trip_through_torch_is_the_same_buffer():
    pytest.importorskip("torch")
    array = sample("uint16")
    back = convert(convert(array, "numpy", "torch"), "torch", "numpy")
    assert back.ctypes.data == array.ctypes.data


def test_jax_to_numpy_is_a_read_only_view():
    jnp = pytest.importorskip("jax.numpy")
    data = jnp.arange(64, dtype=jnp.float32)
    array = convert(data, "jax", "numpy")
    assert array.ctypes.data == data.unsafe_buffer_pointer()
    assert not array.flags.writeable  # jax arrays are immutable


def test_aligned_numpy_to_jax_is_zero_copy():
    pytest.importorskip("jax")
    array = aligned((16, 16), "float32")
    array[:] = sample("float32", (16, 16))
    data = convert(array, "numpy", "jax")
    assert data.unsafe_buffer_pointer() == array.ctypes.data


def test_torch_to_jax_is_zero_copy():
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    tensor = torch.arange(1024, dtype=torch.float32)
    assert convert(tensor, "torch", "jax").unsafe_buffer_pointer() == tensor.data_ptr()


@pytest.mark.parametrize("memory_type", RUNNABLE)
def test_same_type_without_gpu_id_returns_the_input(memory_type):
    data = make(memory_type, sample("uint8"))
    assert convert(data, memory_type, memory_type) is data


# --- dtypes the target cannot hold ------------------------------------------------------


@pytest.fixture
def jax_without_x64():
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("jax runs with JAX_ENABLE_X64 here, so it holds 64-bit data")
    return jax


@pytest.mark.parametrize("source", [p for p in RUNNABLE if p.values[0] in ("numpy", "torch")])
@pytest.mark.parametrize("dtype", ["float64", "int64", "uint64"])
def test_jax_refuses_to_truncate_64_bit_data(jax_without_x64, source, dtype):
    data = make(source, sample(dtype))
    with pytest.raises(MemoryConversionError, match=f"jax stores {dtype} as .*JAX_ENABLE_X64.*allow_downcast=True"):
        convert(data, source, "jax")


def test_jax_downcast_on_request(jax_without_x64):
    expected = sample("float64")
    result = convert(expected, "numpy", "jax", allow_downcast=True)
    assert dtype_name(result) == "float32"
    np.testing.assert_allclose(host(result), expected, rtol=1e-6)
    ints = convert(np.array([1, -2, 3], np.int64), "numpy", "jax", allow_downcast=True)
    assert dtype_name(ints) == "int32"


def test_downcast_refuses_integers_that_do_not_fit(jax_without_x64):
    with pytest.raises(MemoryConversionError, match=r"do not fit in int32"):
        convert(np.array([0, 2**40], np.int64), "numpy", "jax", allow_downcast=True)


@pytest.fixture
def cle():
    status = library_status("pyclesperanto")
    if not (status.installed and status.runs_on_cpu):
        pytest.skip(status.reason)
    return pytest.importorskip("pyclesperanto")


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint32"])
def test_pyclesperanto_keeps_its_native_dtypes(cle, dtype):
    expected = sample(dtype)
    result = convert(expected, "numpy", "pyclesperanto")
    assert dtype_name(result) == dtype
    np.testing.assert_array_equal(host(result), expected)


def test_pyclesperanto_stores_bool_as_uint8_and_float16_as_float32(cle):
    mask = np.array([[True, False], [False, True]])
    assert host(convert(mask, "numpy", "pyclesperanto")).tolist() == [[1, 0], [0, 1]]
    assert dtype_name(convert(mask, "numpy", "pyclesperanto")) == "uint8"
    half = np.array([[0.5, 1.25]], np.float16)
    result = convert(half, "numpy", "pyclesperanto")
    assert dtype_name(result) == "float32"
    np.testing.assert_array_equal(host(result), half.astype(np.float32))


@pytest.mark.parametrize("dtype", ["float64", "int64", "uint64"])
def test_pyclesperanto_refuses_to_truncate_64_bit_data(cle, dtype):
    with pytest.raises(MemoryConversionError, match=f"pyclesperanto stores {dtype} as .*allow_downcast=True"):
        convert(sample(dtype), "numpy", "pyclesperanto")
    result = convert(sample(dtype), "numpy", "pyclesperanto", allow_downcast=True)
    np.testing.assert_allclose(host(result), sample(dtype), rtol=1e-6)


def test_pyclesperanto_refuses_complex(cle):
    with pytest.raises(MemoryConversionError, match="cannot hold complex64"):
        convert(np.zeros((2, 2), np.complex64), "numpy", "pyclesperanto")


# --- validation ---------------------------------------------------------------------


def test_unknown_memory_type_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown target memory type 'numpyy'") as info:
        convert(np.zeros(2), "numpy", "numpyy")
    assert all(name in str(info.value) for name in MEMORY_TYPES)
    with pytest.raises(ValueError, match="unknown source memory type 'cuda'"):
        convert(np.zeros(2), "cuda", "numpy")


def test_data_of_the_wrong_type_names_what_was_received():
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"expected a torch array as source, got numpy\.ndarray \(a numpy array\)"):
        convert(np.zeros(2), "torch", "numpy")
    with pytest.raises(TypeError, match=r"expected a numpy array as source, got builtins\.list"):
        convert([1, 2], "numpy", "torch")


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (True, TypeError), ("0", TypeError), (0.0, TypeError)])
def test_bad_gpu_id(bad, error):
    with pytest.raises(error, match="gpu_id"):
        convert(np.zeros(2), "numpy", "numpy", gpu_id=bad)


def test_numpy_target_ignores_gpu_id():
    array = np.zeros(3)
    assert convert(array, "numpy", "numpy", gpu_id=0) is array


@pytest.mark.skipif(ON_GPU_MACHINE, reason="checks the behaviour of a machine without a GPU")
@pytest.mark.parametrize("target", [p for p in RUNNABLE if p.values[0] != "numpy"])
@pytest.mark.parametrize("source", ["numpy", "same"])
def test_gpu_id_without_a_gpu_is_a_clear_error(source, target):
    source = target if source == "same" else source
    data = make(source, sample("float32"))
    with pytest.raises(MemoryConversionError, match=f"gpu_id=0 was requested for {target}, .* no GPU .*gpu_id=None"):
        convert(data, source, target, gpu_id=0)


@pytest.mark.skipif(ON_GPU_MACHINE, reason="checks the behaviour of a machine without a GPU")
@pytest.mark.parametrize("target", [p for p in RUNNABLE if p.values[0] != "numpy"])
def test_gpu_id_none_on_a_cpu_machine_stays_on_the_cpu(target):
    result = convert(sample("float32"), "numpy", target)
    np.testing.assert_array_equal(host(result), sample("float32"))


# --- libraries that are not installed --------------------------------------------------


def hide_library(monkeypatch, module: str) -> None:
    """Make ``module`` look uninstalled: find_spec finds nothing and import fails."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError


@pytest.mark.parametrize(
    "memory_type, extra",
    [("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax"), ("pyclesperanto", "cle"), ("cupy", "cupy")],
)
def test_missing_library_names_the_extra(monkeypatch, fresh_device_cache, memory_type, extra):
    hide_library(monkeypatch, memory_type)
    with pytest.raises(LibraryNotInstalledError, match=rf"pip install 'plateflow\[{extra}\]'") as info:
        convert(np.zeros((2, 2), np.float32), "numpy", memory_type)
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, MemoryConversionError)
    assert isinstance(info.value, RuntimeError)
    assert not library_status(memory_type).installed


def test_tensorflow_missing_here_gives_the_extra():
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("tensorflow is installed here")
    with pytest.raises(LibraryNotInstalledError, match=r"plateflow\[tensorflow\]"):
        convert(np.zeros(2), "numpy", "tensorflow")


# --- detect_memory_type --------------------------------------------------------------


@pytest.mark.parametrize("memory_type", RUNNABLE)
def test_detect_memory_type(memory_type):
    assert detect_memory_type(make(memory_type, sample("uint8"))) == memory_type


def test_detect_memory_type_of_subclasses():
    torch = pytest.importorskip("torch")
    assert detect_memory_type(np.ma.masked_array([1, 2])) == "numpy"
    assert detect_memory_type(torch.nn.Parameter(torch.zeros(2))) == "torch"


@pytest.mark.parametrize("value", [[1, 2], 3.0, "image", None, np.float32(1.0), np.dtype("uint8"), np.add])
def test_detect_memory_type_rejects_non_arrays(value):
    with pytest.raises(TypeError, match="cannot tell the memory type of .*expected an array of one of: numpy, cupy"):
        detect_memory_type(value)


def test_detect_memory_type_imports_nothing():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from plateflow.memory.conversion import detect_memory_type
        assert detect_memory_type(np.zeros(2)) == "numpy"
        try:
            detect_memory_type([1])
        except TypeError:
            pass
        heavy = [m for m in ("torch", "jax", "cupy", "tensorflow", "pyclesperanto") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- cupy and tensorflow, where a GPU / the library exists ---------------------------------

needs_cupy_gpu = pytest.mark.skipif(
    gpu_count("cupy") == 0, reason="cupy pairs need cupy and an NVIDIA GPU: " + library_status("cupy").reason
)


@needs_cupy_gpu
@pytest.mark.parametrize("other", RUNNABLE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_pairs(other, dtype):
    expected = sample(dtype)
    on_gpu = convert(make(other, expected), other, "cupy")
    assert detect_memory_type(on_gpu) == "cupy"
    assert dtype_name(on_gpu) == dtype
    back = convert(on_gpu, "cupy", other)
    assert detect_memory_type(back) == other
    np.testing.assert_array_equal(host(back), expected)


@needs_cupy_gpu
def test_cupy_gpu_id_places_the_array():
    result = convert(sample("float32"), "numpy", "cupy", gpu_id=0)
    assert result.device.id == 0


@needs_cupy_gpu
def test_torch_cuda_to_cupy_shares_memory():
    torch = pytest.importorskip("torch")
    if gpu_count("torch") == 0:
        pytest.skip("torch sees no CUDA GPU")
    tensor = torch.arange(16, dtype=torch.float32, device="cuda:0")
    assert convert(tensor, "torch", "cupy").data.ptr == tensor.data_ptr()


@pytest.mark.skipif(gpu_count("torch") == 0, reason="needs a CUDA GPU visible to torch")
def test_torch_gpu_id_places_the_tensor():
    tensor = convert(sample("float32"), "numpy", "torch", gpu_id=0)
    assert str(tensor.device) == "cuda:0"
    np.testing.assert_array_equal(host(tensor), sample("float32"))


@pytest.mark.skipif(
    not library_status("tensorflow").installed, reason="tensorflow is not installed (pip install 'plateflow[tensorflow]')"
)
@pytest.mark.parametrize("other", RUNNABLE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tensorflow_pairs(other, dtype):
    expected = sample(dtype)
    tensor = convert(make(other, expected), other, "tensorflow")
    assert detect_memory_type(tensor) == "tensorflow"
    back = convert(tensor, "tensorflow", other)
    np.testing.assert_array_equal(host(back), expected)
