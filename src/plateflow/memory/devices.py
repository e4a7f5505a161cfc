"""Which devices each memory type's library can use on this machine.

The compiler's GPU-assignment phase asks :func:`library_status` for every GPU
memory type in a pipeline, on every compile, so results are cached for the
life of the process (:func:`clear_device_cache` forgets them). Whether a
library is installed is found without importing it; installed libraries are
imported and asked for their devices. A probe that fails is reported in
``reason``, never hidden.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from .._text import install_hint
from .types import LIBRARIES, validate_memory_type

__all__ = ["LibraryStatus", "library_status", "gpu_count", "clear_device_cache"]

OPENCL_DRIVER_FIX = "apt-get install pocl-opencl-icd"


@dataclass(frozen=True)
class LibraryStatus:
    """What one memory type's library can run on here.

    Attributes:
        installed: the library can be found (it may still fail to import; see ``reason``).
        devices: readable names of the devices it can use, e.g. ``("cpu", "cuda:0 NVIDIA H100")``.
        gpu_ids: the values ``gpu_id`` may take for this memory type.
        runs_on_cpu: the library can compute here without a GPU.
        reason: one sentence on the state found, including any probe error and its fix.
        extra: the plateflow extra that installs the library (``pip install 'plateflow[extra]'``).
    """

    installed: bool
    devices: tuple[str, ...]
    gpu_ids: tuple[int, ...]
    runs_on_cpu: bool
    reason: str
    extra: str

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpu_ids)


def gpu_count(memory_type: str) -> int:
    """Number of GPUs the library of ``memory_type`` can use here (0 when not installed)."""
    return len(library_status(memory_type).gpu_ids)


def library_status(memory_type: str) -> LibraryStatus:
    """Installed or not, devices, GPU ids and CPU fallback of ``memory_type``'s library."""
    return _library_status(validate_memory_type(memory_type))


def clear_device_cache() -> None:
    """Forget cached probes, e.g. after installing a library or a driver."""
    _library_status.cache_clear()


@functools.cache
def _library_status(memory_type: str) -> LibraryStatus:
    spec = LIBRARIES[memory_type]
    if memory_type == "numpy":
        return LibraryStatus(True, ("cpu",), (), True, "numpy runs on the CPU", spec.extra)
    if importlib.util.find_spec(spec.module) is None:
        return LibraryStatus(
            False,
            (),
            (),
            False,
            f"{spec.module} is not installed; install it with: {install_hint(spec.pip_name, spec.extra or None)}",
            spec.extra,
        )
    try:
        module = importlib.import_module(spec.module)
    # A broken optional install can fail in any way while importing (missing CUDA
    # libraries, ABI mismatches); the compiler must report it, not crash on it.
    except Exception as error:  # noqa: BLE001
        return LibraryStatus(
            True,
            (),
            (),
            False,
            f"{spec.module} is installed but failed to import: {type(error).__name__}: {error}",
            spec.extra,
        )
    try:
        return _PROBES[memory_type](module, spec.extra)
    # Asking a driver for its devices fails as variously (a broken OpenCL ICD, a CUDA driver
    # too old for the runtime); as for the import, the reason is reported, not raised.
    except Exception as error:  # noqa: BLE001
        return LibraryStatus(
            True,
            (),
            (),
            False,
            f"{spec.module} imported, but asking it for its devices failed: {type(error).__name__}: {error}",
            spec.extra,
        )


def _probe_torch(torch: ModuleType, extra: str) -> LibraryStatus:
    count = int(torch.cuda.device_count())
    devices = ("cpu",) + tuple(f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count))
    reason = (
        f"torch {torch.__version__}: {count} CUDA GPU(s) and the CPU"
        if count
        else f"torch {torch.__version__}: no CUDA GPU (torch.cuda.device_count() == 0); runs on the CPU"
    )
    return LibraryStatus(True, devices, tuple(range(count)), True, reason, extra)


def _probe_cupy(cupy: ModuleType, extra: str) -> LibraryStatus:
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError as error:
        return LibraryStatus(
            True,
            (),
            (),
            False,
            f"cupy {cupy.__version__} found no usable CUDA GPU ({error}); cupy needs an NVIDIA GPU and driver",
            extra,
        )
    devices = tuple(f"cuda:{i}" for i in range(count))
    reason = (
        f"cupy {cupy.__version__}: {count} CUDA GPU(s)"
        if count
        else f"cupy {cupy.__version__}: no CUDA GPU; cupy needs an NVIDIA GPU and driver"
    )
    return LibraryStatus(True, devices, tuple(range(count)), False, reason, extra)


def _probe_jax(jax: ModuleType, extra: str) -> LibraryStatus:
    try:
        gpus = list(jax.devices("gpu"))
        note = ""
    except RuntimeError as error:  # jax raises RuntimeError when no GPU backend is present
        gpus = []
        note = f" ({error})"
    devices = ("cpu",) + tuple(f"gpu:{i} {d.device_kind}" for i, d in enumerate(gpus))
    reason = (
        f"jax {jax.__version__}: {len(gpus)} GPU(s) and the CPU"
        if gpus
        else f"jax {jax.__version__}: no GPU backend{note}; runs on the CPU"
    )
    return LibraryStatus(True, devices, tuple(range(len(gpus))), True, reason, extra)


def _probe_tensorflow(tf: ModuleType, extra: str) -> LibraryStatus:
    gpus = list(tf.config.list_physical_devices("GPU"))
    devices = ("cpu",) + tuple(f"GPU:{i}" for i in range(len(gpus)))
    reason = (
        f"tensorflow {tf.__version__}: {len(gpus)} GPU(s) and the CPU"
        if gpus
        else f"tensorflow {tf.__version__}: no GPU visible; runs on the CPU"
    )
    return LibraryStatus(True, devices, tuple(range(len(gpus))), True, reason, extra)


def _probe_pyclesperanto(cle: ModuleType, extra: str) -> LibraryStatus:
    # pyclesperanto warns "No device available" for an empty device type; that
    # is expected for "gpu" on a CPU-only machine, so record instead of print.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        every = list(cle.list_available_devices("all"))
        gpus = list(cle.list_available_devices("gpu")) if every else []
        cpus = list(cle.list_available_devices("cpu")) if every else []
    if not every:
        return LibraryStatus(
            True,
            (),
            (),
            False,
            "pyclesperanto found no OpenCL device: no OpenCL driver is installed; "
            f"install one, e.g. {OPENCL_DRIVER_FIX} (CPU) or your GPU vendor's OpenCL driver",
            extra,
        )
    devices = tuple(f"gpu:{i} {name}" for i, name in enumerate(gpus)) + tuple(f"cpu {name}" for name in cpus)
    if gpus:
        reason = f"pyclesperanto: {len(gpus)} OpenCL GPU(s)" + (f" and {len(cpus)} CPU device(s)" if cpus else "")
    else:
        reason = f"pyclesperanto: no OpenCL GPU; runs on the OpenCL CPU device {cpus[0]!r}" if cpus else (
            "pyclesperanto: OpenCL devices found but none is a GPU or CPU: " + ", ".join(every)
        )
    return LibraryStatus(True, devices, tuple(range(len(gpus))), bool(cpus), reason, extra)


_PROBES: dict[str, Callable[..., LibraryStatus]] = {
    "torch": _probe_torch,
    "cupy": _probe_cupy,
    "jax": _probe_jax,
    "tensorflow": _probe_tensorflow,
    "pyclesperanto": _probe_pyclesperanto,
}
