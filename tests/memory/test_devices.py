"""library_status / gpu_count: what each memory type's library can run on here."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

from plateflow.memory.devices import LibraryStatus, clear_device_cache, gpu_count, library_status
from plateflow.memory.types import LIBRARIES, LibrarySpec

from ._helpers import ON_GPU_MACHINE

pytestmark = pytest.mark.usefixtures("fresh_device_cache")


def fake_module(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    module.__version__ = "0.0-fake"
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def test_numpy_always_runs_on_the_cpu():
    status = library_status("numpy")
    assert status == LibraryStatus(True, ("cpu",), (), True, "numpy runs on the CPU", "")
    assert gpu_count("numpy") == 0


def test_results_are_cached_until_cleared():
    first = library_status("torch")
    assert library_status("torch") is first
    assert library_status("torch") is library_status(LIBRARIES["torch"].memory_type)
    clear_device_cache()
    assert library_status("torch") is not first


def test_unknown_memory_type():
    with pytest.raises(ValueError, match="unknown memory type 'gpu'.*numpy, cupy"):
        library_status("gpu")
    with pytest.raises(ValueError, match="unknown memory type"):
        gpu_count("cuda")


def test_not_installed_is_found_without_importing(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # an import attempt would raise
    status = library_status("tensorflow")
    assert status == LibraryStatus(
        False, (), (), False, "tensorflow is not installed; install it with: pip install 'plateflow[tensorflow]'", "tensorflow"
    )
    assert gpu_count("tensorflow") == 0


def test_pyclesperanto_extra_is_cle(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    status = library_status("pyclesperanto")
    assert status.extra == "cle"
    assert "plateflow[cle]" in status.reason


def test_broken_install_is_reported_not_raised(monkeypatch, tmp_path):
    (tmp_path / "broken_tf_for_test.py").write_text("raise OSError('libcudart.so.12: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(LIBRARIES, "tensorflow", LibrarySpec("tensorflow", "broken_tf_for_test", "tensorflow", "x"))
    status = library_status("tensorflow")
    assert status.installed and not status.runs_on_cpu and status.gpu_ids == ()
    assert "failed to import: OSError: libcudart.so.12" in status.reason


def test_failing_device_probe_is_reported_not_raised(monkeypatch):
    cle = pytest.importorskip("pyclesperanto")

    def broken(device_type="all"):
        raise RuntimeError("clGetPlatformIDs failed: -1001")

    monkeypatch.setattr(cle, "list_available_devices", broken)
    status = library_status("pyclesperanto")
    assert status.installed and not status.runs_on_cpu and status.gpu_ids == ()
    assert "asking it for its devices failed: RuntimeError: clGetPlatformIDs failed: -1001" in status.reason


@pytest.mark.skipif(ON_GPU_MACHINE, reason="checks a machine without a GPU")
def test_torch_and_jax_fall_back_to_the_cpu():
    for memory_type in ("torch", "jax"):
        status = library_status(memory_type)
        if not status.installed:
            continue
        assert status.runs_on_cpu and status.gpu_ids == () and status.devices == ("cpu",)
        assert "no" in status.reason and "CPU" in status.reason


def test_jax_gpu_probe_error_is_in_the_reason(monkeypatch):
    jax = pytest.importorskip("jax")

    def devices(kind=None):
        if kind == "gpu":
            raise RuntimeError("Unknown backend: 'gpu' requested")
        return [object()]

    monkeypatch.setattr(jax, "devices", devices)
    status = library_status("jax")
    assert status.runs_on_cpu and status.gpu_ids == ()
    assert "Unknown backend: 'gpu' requested" in status.reason


def test_pyclesperanto_on_a_cpu_opencl_driver(monkeypatch):
    cle = pytest.importorskip("pyclesperanto")
    lists = {"all": ["pthread-x86 (pocl)"], "cpu": ["pthread-x86 (pocl)"], "gpu": []}
    monkeypatch.setattr(cle, "list_available_devices", lambda device_type="all": lists[device_type])
    status = library_status("pyclesperanto")
    assert status.installed and status.runs_on_cpu
    assert status.gpu_ids == ()
    assert status.devices == ("cpu pthread-x86 (pocl)",)
    assert "no OpenCL GPU" in status.reason


def test_pyclesperanto_with_a_gpu(monkeypatch):
    cle = pytest.importorskip("pyclesperanto")
    lists = {"all": ["NVIDIA H100", "pocl cpu"], "cpu": ["pocl cpu"], "gpu": ["NVIDIA H100"]}
    monkeypatch.setattr(cle, "list_available_devices", lambda device_type="all": lists[device_type])
    status = library_status("pyclesperanto")
    assert status.gpu_ids == (0,) and status.runs_on_cpu
    assert gpu_count("pyclesperanto") == 1


def test_pyclesperanto_without_an_opencl_driver_says_how_to_fix_it(monkeypatch):
    cle = pytest.importorskip("pyclesperanto")
    monkeypatch.setattr(cle, "list_available_devices", lambda device_type="all": [])
    status = library_status("pyclesperanto")
    assert status.installed and not status.runs_on_cpu and status.gpu_ids == ()
    assert "no OpenCL driver" in status.reason
    assert "apt-get install pocl-opencl-icd" in status.reason


def test_real_pyclesperanto_here():
    status = library_status("pyclesperanto")
    if not status.installed:
        pytest.skip(status.reason)
    # with pocl or a GPU driver there is a device; without any, the fix is named
    assert status.devices or "pocl-opencl-icd" in status.reason


def test_cupy_without_cuda_reports_the_runtime_error(monkeypatch):
    class CUDARuntimeError(RuntimeError):
        pass

    def get_device_count():
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    runtime = types.SimpleNamespace(CUDARuntimeError=CUDARuntimeError, getDeviceCount=get_device_count)
    monkeypatch.setitem(sys.modules, "cupy", fake_module("cupy", cuda=types.SimpleNamespace(runtime=runtime)))
    status = library_status("cupy")
    assert status.installed and not status.runs_on_cpu and status.gpu_ids == ()
    assert "cudaErrorNoDevice" in status.reason and "NVIDIA GPU" in status.reason
    assert gpu_count("cupy") == 0


def test_cupy_with_two_gpus(monkeypatch):
    runtime = types.SimpleNamespace(CUDARuntimeError=RuntimeError, getDeviceCount=lambda: 2)
    monkeypatch.setitem(sys.modules, "cupy", fake_module("cupy", cuda=types.SimpleNamespace(runtime=runtime)))
    status = library_status("cupy")
    assert status.gpu_ids == (0, 1) and status.devices == ("cuda:0", "cuda:1")
    assert not status.runs_on_cpu


def test_tensorflow_probe(monkeypatch):
    config = types.SimpleNamespace(list_physical_devices=lambda kind: ["/physical_device:GPU:0"] if kind == "GPU" else [])
    monkeypatch.setitem(sys.modules, "tensorflow", fake_module("tensorflow", config=config))
    status = library_status("tensorflow")
    assert status.gpu_ids == (0,) and status.runs_on_cpu and status.devices == ("cpu", "GPU:0")
