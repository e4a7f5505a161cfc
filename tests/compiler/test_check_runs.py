"""Property: whatever ``check`` passes compiles and runs without a parameter error.

Pipelines of bundled numpy functions (taken from the registry, so new operations
join in) with generated parameter values run on one well of a tiny generated plate.
"""

from __future__ import annotations

import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plateflow import FunctionStep, check
from plateflow.compiler import CompileError, compile_pipeline
from plateflow.config import GlobalConfig
from plateflow.execution.well import run_well
from plateflow.library import registry
from plateflow.library._spec import operation_of
from plateflow.signatures import REQUIRED

# Small values (a 64 x 64 image keeps windows and radii fast), a few off ones, and shapes of tuples.
POOL = [None, True, False, 0, 1, 2, 3, 4, 5, -1, 0.0, 0.05, 0.5, 1.0, 2.5, 50.0, 99.0, 101.0, (1.0, 1.0), (2.0,), (2, 2), (1, 4), "mean"]
VARIABLE = [("site",), ("channel",), ("z_index",), ("site", "channel"), ()]


def _usable() -> list[str]:
    names = []
    for name in registry.names(memory_type="numpy"):
        info = registry.info(name)
        if operation_of(info.func) is None or info.special_inputs or not info.available:
            continue  # consumers need a producer's data: other tests cover the links
        if any(p.default is REQUIRED for p in info.params):
            continue
        names.append(name)
    return names


NAMES = _usable()


def _values_for(param) -> st.SearchStrategy:
    own = list(param.choices or ())
    if typing.get_origin(param.annotation) is typing.Literal:
        own = list(typing.get_args(param.annotation))
    return st.sampled_from(own + POOL) if own else st.sampled_from(POOL)


@st.composite
def steps(draw):
    name = draw(st.sampled_from(NAMES))
    info = registry.info(name)
    chosen = draw(st.lists(st.sampled_from([p for p in info.params] or [None]), max_size=2, unique_by=lambda p: getattr(p, "name", None)))
    kwargs = {p.name: draw(_values_for(p)) for p in chosen if p is not None}
    return FunctionStep(func=(info.func, kwargs), variable_components=draw(st.sampled_from(VARIABLE)), name=name)


@pytest.fixture(scope="module")
def tiny_plate(tmp_path_factory):
    from plateflow.plate import open_plate
    from plateflow.plate.sample import generate_sample_plate

    root = generate_sample_plate(tmp_path_factory.mktemp("plate") / "plate", wells=("A01",), sites=4, channels=2, z_planes=2, size=(64, 64))
    return open_plate(root)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(steps(), min_size=1, max_size=3))
def test_what_check_passes_runs_without_a_parameter_error(tiny_plate, tmp_path_factory, step_list):
    diagnostics = check(step_list, tiny_plate)
    assert all(d.code != "internal-error" for d in diagnostics), diagnostics
    found = [d for d in diagnostics if d.severity == "error"]
    if found:
        with pytest.raises(CompileError):
            compile_pipeline(step_list, tiny_plate, config=GlobalConfig(write_outputs=False), output_root=tmp_path_factory.mktemp("out"))
        return
    result = _run(step_list, tiny_plate, tmp_path_factory)
    if result.ok:
        return
    # A failure the same pipeline with every option at its default has too comes from the data
    # (e.g. a threshold of an all-equal image), not from a value the check let through.
    defaults = [step.copy(func=(step.func[0], {})) for step in step_list]
    baseline = _run(defaults, tiny_plate, tmp_path_factory)
    same_failure = not baseline.ok and baseline.failure.step_index == result.failure.step_index
    assert same_failure, (
        f"check passed {[(s.name, dict(s.func[1]), s.variable_components) for s in step_list]} "
        f"but the run failed on a parameter: {result.failure.error}"
    )


def _run(step_list, plate, tmp_path_factory):
    contexts = compile_pipeline(step_list, plate, config=GlobalConfig(write_outputs=False), output_root=tmp_path_factory.mktemp("out"))
    return run_well(contexts["A01"])
