"""Property tests: check() never raises, and whatever it passes compiles."""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plateflow import FunctionStep, Pipeline, check
from plateflow.compiler import CompileError, compile_pipeline

from .functions import FakePlate, assemble, blur, count, find_positions, pad, project, scale, to_torch, torch_blur, torch_to_numpy, undecorated

FUNCTIONS = [blur, scale, pad, to_torch, torch_blur, torch_to_numpy, find_positions, assemble, count, project, undecorated]
KWARG_NAMES = ["sigma", "sigmaa", "mode", "factor", "width", "positions", "x"]


class ReprFails:
    def __repr__(self):
        raise RuntimeError("no repr")


ODD_VALUES = st.sampled_from([np.zeros((2, 2)), np.zeros(3), np.bool_(True), np.float32(2.0), np.int64(1), ReprFails(), object(), {"a": [1]}, (1, "x"), float("nan"), b"x"])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(-10, 100, allow_nan=False), st.sampled_from(["nearest", "reflect", "wrap", ""]), st.lists(st.integers(0, 3), max_size=3), ODD_VALUES)
COMPONENT_NAMES = ["site", "channel", "z_index", "timepoint", "well", "zindex", "chanel"]
FUNCTIONS.append(functools.partial(blur, sigma=2.0))

single = st.one_of(
    st.sampled_from(FUNCTIONS),
    st.tuples(st.sampled_from(FUNCTIONS), st.dictionaries(st.sampled_from(KWARG_NAMES), VALUES, max_size=3)),
)
chain = st.lists(single, min_size=0, max_size=3)
garbage = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.tuples(st.sampled_from(FUNCTIONS), st.integers()))
pattern = st.one_of(
    single,
    chain,
    st.dictionaries(st.sampled_from(["1", "2", "3", 1]), st.one_of(single, chain), max_size=3),
    garbage,
)


@st.composite
def steps(draw):
    return FunctionStep(
        func=draw(pattern),
        variable_components=tuple(draw(st.lists(st.sampled_from(COMPONENT_NAMES), max_size=3))),
        group_by=draw(st.one_of(st.none(), st.sampled_from(COMPONENT_NAMES), st.lists(st.sampled_from(COMPONENT_NAMES), max_size=2), st.integers())),
        force_disk_output=draw(st.booleans()),
        visualize=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(steps(), max_size=5))
def test_check_never_raises_and_what_it_passes_compiles(tmp_path, step_list):
    plate = FakePlate(root=tmp_path)
    pipeline = Pipeline(step_list)
    without_plate = check(pipeline)
    with_plate = check(pipeline, plate)
    assert all(d.code != "internal-error" for d in without_plate + with_plate), without_plate + with_plate
    errors = [d for d in with_plate if d.severity == "error"]
    if errors:
        try:
            compile_pipeline(pipeline, plate)
        except CompileError as error:
            assert {d.code for d in error.errors} == {d.code for d in errors}
        else:
            raise AssertionError(f"compile accepted a pipeline check rejected: {errors}")
    else:
        contexts = compile_pipeline(pipeline, plate)
        assert set(contexts) == set(plate.wells)
        assert all(len(c.step_plans) == len(step_list) for c in contexts.values())
