"""benchmarks/bench_functions.py gives every registered function the inputs it requires.

The benchmark is not run by the suite (it takes minutes on 4 x 512 x 512); this
keeps it from breaking when a function with a required special input joins the
registry (it broke once, on correct_illumination).
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest

from plateflow.library import registry

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_functions.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_functions", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SHAPE = (4, 96, 96)  # the same code on a small stack (4 images: the tiles of assemble_tiles)
    return module


def test_every_numpy_function_runs_with_the_benchmarks_inputs(bench):
    stack = bench.synthetic_stack()
    data = bench.inputs(stack)
    names = [n for n in registry.names(memory_type="numpy") if registry.info(n).plugin is None]
    assert len(names) > 40
    for name in names:
        operation = name.split(".", 1)[1]
        image, specials = bench.arguments(operation, stack, data)
        func = registry.get(name)
        required = [
            p.name for p in list(inspect.signature(func).parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        assert set(required) <= set(specials), f"{name} needs {required}, the benchmark gives {sorted(specials)}"
        result = func(image, **specials)
        first = result[0] if isinstance(result, tuple) else result
        assert isinstance(first, np.ndarray), name
