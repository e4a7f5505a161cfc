"""The function registry: names, metadata, availability, plugins, the listing table."""

from __future__ import annotations

import enum
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from plateflow.library import numpy_functions, registry
from plateflow.memory import numpy as numpy_type
from plateflow.memory.devices import library_status
from plateflow.signatures import REQUIRED

EXAMPLE_PLUGIN = Path(__file__).parent / "example_plugin"

BACKEND_OPERATIONS = {
    "gaussian_filter", "median_filter", "top_hat", "max_projection", "mean_projection",
    "sum_projection", "threshold_otsu", "label",
}


def test_every_bundled_function_is_listed_by_name() -> None:
    listed = registry.names()
    for name in numpy_functions.__all__:
        assert f"numpy.{name}" in listed
    for memory_type in ("torch", "pyclesperanto", "cupy"):
        assert BACKEND_OPERATIONS <= {n.split(".", 1)[1] for n in registry.names(memory_type=memory_type)}
    assert registry.names(memory_type="torch") == [n for n in listed if n.startswith("torch.")]
    assert registry.names(category="projection", memory_type="numpy") == [
        "numpy.best_focus_projection", "numpy.max_projection", "numpy.mean_projection", "numpy.min_projection",
        "numpy.std_projection", "numpy.sum_projection",
    ]
    assert {"normalize", "filter", "background", "projection", "threshold", "segmentation", "measurement",
            "composite", "stitching"} <= set(registry.categories())


def test_get_and_name_of_are_inverse() -> None:
    func = registry.get("numpy.gaussian_filter")
    assert func is numpy_functions.gaussian_filter
    assert registry.name_of(func) == "numpy.gaussian_filter"
    assert registry.name_of(lambda s: s) is None
    with pytest.raises(KeyError, match="did you mean 'numpy.gaussian_filter'"):
        registry.get("numpy.gausian_filter")


def test_info_carries_metadata() -> None:
    item = registry.info("numpy.find_tile_positions")
    assert (item.category, item.input_memory_type, item.output_memory_type) == ("stitching", "numpy", "numpy")
    assert item.special_outputs == ("positions",) and item.special_inputs == () and not item.chain_breaker
    assert [p.name for p in item.params] == ["grid_shape", "overlap"]
    assert item.summary == "Find where the tiles of a grid lie by correlating their overlaps."
    assert "Parameters" in item.doc and item.available and item.unavailable_reason == ""
    assemble = registry.info("numpy.assemble_tiles")
    assert assemble.special_inputs == ("positions",)
    assert assemble.params[0].default is REQUIRED
    top_hat = registry.info("torch.top_hat")
    assert top_hat.params[0].unit == "px" and top_hat.params[0].bounds.min == 1
    assert registry.info("numpy.measure_nuclei").special_outputs == ("object_measurements", "object_counts")


@pytest.mark.parametrize("memory_type", ["torch", "pyclesperanto", "cupy"])
def test_availability_follows_the_library_status(memory_type: str) -> None:
    status = library_status(memory_type)
    item = registry.info(f"{memory_type}.gaussian_filter")
    assert item.available == (status.installed and (status.runs_on_cpu or status.has_gpu))
    if not item.available:
        assert item.unavailable_reason == status.reason and item.unavailable_reason


def test_register_third_party_function() -> None:
    @numpy_type
    def brighten(stack, *, factor: float = 2.0):
        """Multiply intensities."""
        return stack * factor

    name = registry.register(brighten, name="numpy.test_brighten", category="filter")
    assert name == "numpy.test_brighten" and registry.get(name) is brighten
    assert registry.register(brighten, name="numpy.test_brighten") == name  # idempotent
    assert registry.info(name).params[0].default == 2.0
    with pytest.raises(ValueError, match="already registered"):
        registry.register(numpy_type(lambda s: s), name="numpy.test_brighten")
    with pytest.raises(ValueError, match="has no memory type; decorate it"):
        registry.register(lambda s: s)


def test_format_function_table() -> None:
    table = registry.format_function_table(memory_type="numpy", category="threshold")
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "MEMORY", "TYPE", "CATEGORY", "AVAILABLE", "SUMMARY"]
    assert [line.split()[0] for line in lines[1:]] == [
        "numpy.threshold_isodata", "numpy.threshold_li", "numpy.threshold_local", "numpy.threshold_manual",
        "numpy.threshold_mean", "numpy.threshold_otsu", "numpy.threshold_triangle", "numpy.threshold_yen",
    ]
    assert "Otsu threshold" in lines[6] and " yes " in lines[6]


def _install_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_points: str) -> None:
    """Make the example package importable with its entry points, as pip would."""
    dist = tmp_path / "plateflow_example_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plateflow-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_plugin_functions_are_registered_from_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    declared = tomllib.loads((EXAMPLE_PLUGIN / "pyproject.toml").read_text())["project"]["entry-points"]
    lines = "".join(f"{k} = {v}\n" for k, v in declared["plateflow.functions"].items())
    _install_example(tmp_path, monkeypatch, f"[plateflow.functions]\n{lines}")
    added = registry.load_plugins()
    assert {"numpy.invert", "example.invert_named"} <= set(added)
    item = registry.info("numpy.invert")
    assert (item.category, item.input_memory_type, item.plugin) == ("filter", "numpy", "example")
    assert item.params[0].unit == "counts" and item.params[0].doc.startswith("The value that black becomes")
    np.testing.assert_array_equal(registry.get("example.invert_named")(np.zeros((1, 2, 2))), 1.0)


def test_failing_plugin_is_reported_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_example(tmp_path, monkeypatch, "[plateflow.functions]\nbroken = plateflow_no_such_module_xyz\n")
    with pytest.warns(registry.PluginWarning, match=r"plugin broken \(plateflow_no_such_module_xyz\) failed to load"):
        registry.load_plugins()
    assert "numpy.gaussian_filter" in registry.names()


def test_loading_the_registry_imports_no_array_library() -> None:
    """The load time (target < 100 ms) is printed by benchmarks/bench_import.py."""
    code = textwrap.dedent(
        """
        import sys
        import plateflow
        from plateflow.library import registry
        count = len(registry.names())
        # numpy too: the kernels import it when they run (it is half of the 100 ms budget on its own)
        heavy = [m for m in ("numpy", "scipy", "skimage", "torch", "cupy", "jax", "pyclesperanto", "tensorflow") if m in sys.modules]
        print(count, heavy)
        """
    )
    count, heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    assert int(count) >= 45
    assert heavy.strip() == "[]"


def test_other_threads_wait_for_the_whole_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    fresh = registry._Registry()
    monkeypatch.setattr(registry, "_REGISTRY", fresh)
    entered, release = threading.Event(), threading.Event()

    @numpy_type
    def late_plugin_filter(stack):
        return stack

    def slow_plugins() -> list[str]:
        entered.set()
        release.wait(10)
        return [registry._register(late_plugin_filter, name="numpy.late_plugin_filter", category=None, plugin="slow")]

    monkeypatch.setattr(registry, "load_plugins", slow_plugins)
    results: dict[str, list[str]] = {}
    first = threading.Thread(target=lambda: results.setdefault("first", registry.names()))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=lambda: results.setdefault("second", registry.names()))
    second.start()
    second.join(0.3)
    waited = second.is_alive()  # still waiting while the first thread loads the plugins
    release.set()
    first.join(10)
    second.join(10)
    assert waited, "a second thread saw the registry half loaded"
    assert "numpy.late_plugin_filter" in results["second"] and results["second"] == results["first"]


class _Mode(enum.Enum):
    NEAREST = "nearest"
    REFLECT = "reflect"


def _pad(stack, mode: _Mode = _Mode.NEAREST):
    return stack


def test_enum_parameter_check_names_an_unhashable_value() -> None:
    from plateflow.signatures import check_value, describe_parameters

    (mode,) = describe_parameters(_pad)
    assert check_value(mode, "reflect") is None and check_value(mode, "REFLECT") is None
    assert check_value(mode, _Mode.NEAREST) is None
    assert check_value(mode, [0]) == "[0] is not one of the choices: 'nearest', 'reflect'"
    assert check_value(mode, {"a": 1}) == "{'a': 1} is not one of the choices: 'nearest', 'reflect'"
