"""The classes of mistakes the check catches before a run (issue 14), and the valid pipelines it accepts.

Each test asserts the code, step index, field, path and hint of what it finds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Annotated, Literal, Optional, Union

import numpy as np
import pytest

from plateflow import FunctionStep, Pipeline, check, special_inputs, special_outputs
from plateflow.compiler import compile_pipeline, format_field, place_path
from plateflow.compiler import step_checks
from plateflow.compiler.diagnostics import DiagnosticSink, did_you_mean
from plateflow.memory import numpy, torch
from plateflow.signatures import Bounds, describe_parameters, explain_value

from .functions import FakePlate, blur, errors, found, torch_blur


# -- contract: paths and shared text ------------------------------------------------------


@pytest.mark.parametrize(
    "path, text",
    [
        ((), ""),
        (("kwargs", "sigma"), "kwargs.sigma"),
        (("func",), "func"),
        (("func", 1), "func[1]"),
        (("func", 1, "kwargs", "sigma"), "func[1].kwargs.sigma"),
        (("func", "2"), "func['2']"),
        (("func", "2", 0, "kwargs", "s"), "func['2'][0].kwargs.s"),
        (("variable_components",), "variable_components"),
        (("special_inputs", "positions"), "special_inputs.positions"),
        (("func", 0, "special_inputs", "positions"), "func[0].special_inputs.positions"),
    ],
)
def test_format_field(path, text):
    assert format_field(path) == text


def test_place_path_and_sink_fill_the_field_from_the_path():
    assert [place_path(None, None), place_path(None, 2), place_path("1", None), place_path("1", 0)] == [(), ("func", 2), ("func", "1"), ("func", "1", 0)]
    sink = DiagnosticSink()
    d = sink.add("unknown-kwarg", 0, "Blur", None, "no such parameter", path=("func", "1", 0, "kwargs", "sgima"))
    assert (d.field, d.path) == ("func['1'][0].kwargs.sgima", ("func", "1", 0, "kwargs", "sgima"))
    legacy = sink.add("unknown-kwarg", 0, "Blur", "kwargs.x", "no such parameter")
    assert (legacy.field, legacy.path) == ("kwargs.x", ())


def test_every_diagnostic_of_a_step_carries_its_path():
    diagnostics = check([FunctionStep(func=[(blur, {"sigmaa": 1}), (blur, {"sigma": "x"})], variable_components=("site", "site"))])
    assert {d.code for d in diagnostics} >= {"unknown-kwarg", "invalid-kwarg-value", "duplicate-component"}
    for d in diagnostics:
        assert d.path and format_field(d.path) == d.field, d


def test_text_helpers():
    from plateflow._text import install_hint, short_repr

    assert did_you_mean("sigmaa", ["sigma", "mode"]) == "did you mean 'sigma'?"
    assert did_you_mean("Sigma", ["sigma"]) == "did you mean 'sigma'?"
    assert did_you_mean("zzz", ["sigma"]) == ""
    assert install_hint("torch", "torch") == "pip install 'plateflow[torch]'"
    assert install_hint("cupy-cuda12x") == "pip install cupy-cuda12x"

    class NoRepr:
        def __repr__(self):
            raise RuntimeError("broken")

    assert short_repr(NoRepr()) == "<NoRepr object>"
    assert len(short_repr(list(range(1000)))) == 60


# -- components -------------------------------------------------------------------------------


def test_repeated_component(plate):
    (d,) = found(check([FunctionStep(func=blur, variable_components=("site", "channel", "site"))], plate), "duplicate-component")
    assert (d.step_index, d.field, d.path) == (0, "variable_components", ("variable_components",))
    assert "('site', 'channel')" in d.hint
    assert not [x for x in check([FunctionStep(func=blur, variable_components=("site", "site"))], plate) if x.code == "internal-error"]


def test_well_among_variable_components(plate):
    diagnostics = check([FunctionStep(func=blur), FunctionStep(func=blur, variable_components=("well", "site"))], plate)
    (d,) = found(diagnostics, "well-is-variable")
    assert (d.step_index, d.field) == (1, "variable_components") and "remove 'well'" in d.hint
    assert all(x.code != "internal-error" for x in diagnostics)


@pytest.mark.parametrize("group_by", [["channel"], ("channel", "site")])
def test_group_by_given_as_a_list(plate, group_by):
    diagnostics = check([FunctionStep(func={"1": blur, "2": blur}, group_by=group_by)], plate)
    (d,) = found(diagnostics, "group-by-list")
    assert (d.step_index, d.field, d.path) == (0, "group_by", ("group_by",)) and "group_by='channel'" in d.hint
    assert all(x.code != "internal-error" for x in diagnostics)


def test_components_of_other_types_are_named(plate):
    diagnostics = check([FunctionStep(func=blur, variable_components=5), FunctionStep(func=blur, group_by=3)], plate)
    hits = found(diagnostics, "unknown-component")
    assert [(d.step_index, d.field) for d in hits] == [(0, "variable_components"), (1, "group_by")]
    assert all(x.code != "internal-error" for x in diagnostics)


# -- special data inside one chain ----------------------------------------------------------


@special_outputs("positions")
@numpy
def make_positions(stack):
    return stack, [(0, 0)] * len(stack)


@special_inputs("positions")
@numpy
def use_positions(stack, positions):
    return stack


@special_inputs("positions")
@numpy
def takes_no_positions(stack):
    return stack


@special_inputs("positions")
@numpy
def positions_by_position(stack, positions, /):
    return stack


def test_special_data_made_earlier_in_the_same_chain_is_valid(tmp_path):
    from plateflow.plate.sample import generate_sample_plate

    assert errors(check([FunctionStep(func=[make_positions, use_positions])])) == []
    assert check([FunctionStep(func=[make_positions, use_positions])]) == []  # not even "unused"
    plate = generate_sample_plate(tmp_path / "plate", wells=("A01",), sites=2, channels=1, z_planes=1, size=(64, 64))
    contexts = compile_pipeline([FunctionStep(func=[make_positions, use_positions])], plate, output_root=tmp_path / "out")
    from plateflow.execution.well import run_well

    assert run_well(contexts["A01"]).ok


def test_order_inside_one_chain_gets_a_chain_hint():
    diagnostics = check([FunctionStep(func=[blur, use_positions, make_positions])])
    (d,) = found(diagnostics, "special-input-later")
    assert (d.step_index, d.field, d.path) == (0, "func[1].special_inputs.positions", ("func", 1, "special_inputs", "positions"))
    assert d.message == "use_positions uses 'positions' before make_positions makes it, later in the same chain"
    assert d.hint == "in this step's chain, put make_positions (item 3) before use_positions (item 2)"
    assert [x.code for x in diagnostics].count("special-input-later") == 1


def test_special_input_the_function_cannot_take():
    diagnostics = check([FunctionStep(func=make_positions), FunctionStep(func=takes_no_positions)])
    (d,) = found(diagnostics, "special-input-not-a-parameter")
    assert (d.step_index, d.field, d.path) == (1, "special_inputs.positions", ("special_inputs", "positions"))
    assert "add a keyword parameter 'positions'" in d.hint
    (d,) = found(check([FunctionStep(func=make_positions), FunctionStep(func=[blur, positions_by_position])]), "special-input-not-a-parameter")
    assert (d.step_index, d.field) == (1, "func[1].special_inputs.positions") and "only by position" in d.message


# -- signatures ----------------------------------------------------------------------------------


@numpy
def by_position(stack, sigma=1.0, /, mode="a"):
    return stack


@numpy
def needs_by_position(stack, sigma, /):
    return stack


@numpy
def any_keywords(stack, **options):
    return stack


def test_keyword_for_a_positional_only_parameter():
    (d,) = found(check([FunctionStep(func=(by_position, {"sigma": 2.0, "mode": "b"}))]), "positional-only-kwarg")
    assert (d.step_index, d.field, d.path) == (0, "kwargs.sigma", ("kwargs", "sigma")) and "move it after the /" in d.hint
    assert [p.name for p in describe_parameters(by_position)] == ["mode"]  # forms do not offer it


def test_required_positional_only_parameter():
    (d,) = found(check([FunctionStep(func=blur), FunctionStep(func=[blur, needs_by_position])]), "bad-signature")
    assert (d.step_index, d.field) == (1, "func[1]") and "'sigma'" in d.message and "default" in d.hint


@pytest.mark.parametrize("func", [any_keywords, blur])
def test_stack_given_as_a_keyword(func):
    (d,) = found(check([FunctionStep(func=(func, {"stack": np.zeros((1, 2, 2))}))]), "stack-as-kwarg")
    assert (d.step_index, d.field) == (0, "kwargs.stack") and "remove 'stack'" in d.hint
    assert all(x.code != "unknown-kwarg" for x in check([FunctionStep(func=(func, {"stack": 1}))]))


# -- types ---------------------------------------------------------------------------------------------


@numpy
def typed(
    stack,
    limit: Optional[Annotated[float, Bounds(0, 1)]] = None,
    either: Union[Annotated[int, Bounds(1, 5)], str] = 1,
    connectivity: Literal[1, 2] = 1,
    weights: dict[str, float] | None = None,
    sizes: Sequence[int] = (),
    pair: tuple[int, int] = (1, 1),
    grid: tuple[Annotated[int, Bounds(1, None)], ...] = (),
    count: int = 1,
    flag: bool = False,
    scale: float = 1.0,
):
    return stack


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"limit": 5.0}, "kwargs.limit", "limit must be between 0 and 1, not 5.0"),
        ({"either": 9}, "kwargs.either", "either must be between 1 and 5, not 9"),
        ({"connectivity": True}, "kwargs.connectivity", "connectivity must be one of 1, 2, not True"),
        ({"weights": {"a": "heavy"}}, "kwargs.weights", "weights must be a mapping of texts to numbers, or None, not a mapping"),
        ({"sizes": [1, 2.5]}, "kwargs.sizes", "sizes must be a list of whole numbers, not a list of 2 values"),
        ({"sizes": "abc"}, "kwargs.sizes", "sizes must be a list of whole numbers, not the text 'abc'"),
        ({"pair": (1, "2")}, "kwargs.pair", "pair must be a list of 2 whole numbers, not a list of 2 values"),
        ({"grid": (2, 0)}, "kwargs.grid", "grid item 2 must be at least 1, not 0"),
        ({"count": np.bool_(True)}, "kwargs.count", "count must be a whole number, not True"),
        ({"count": True}, "kwargs.count", "count must be a whole number, not True"),
        ({"flag": 1}, "kwargs.flag", "flag must be True or False, not 1"),
        ({"scale": np.bool_(False)}, "kwargs.scale", "scale must be a number, not False"),
    ],
)
def test_types_are_checked_in_depth(kwargs, field, message):
    (d,) = found(check([FunctionStep(func=(typed, kwargs))]), "invalid-kwarg-value")
    assert (d.step_index, d.field) == (0, field)
    assert d.message.startswith(message), d.message
    assert "typed()" in d.hint  # the code-level detail comes after, in the hint


def test_valid_values_of_every_kind_pass():
    good = {
        "limit": np.float32(0.5),
        "either": "text",
        "connectivity": np.int64(2),
        "weights": {"a": 1, "b": 0.5},
        "sizes": np.array([1, 2, 3]),
        "pair": [3, 4],
        "grid": (2, 3),
        "count": np.int16(4),
        "flag": np.bool_(True),
        "scale": np.float64(2.0),
    }
    assert check([FunctionStep(func=(typed, good))]) == []


def test_an_unresolvable_annotation_switches_off_only_its_own_parameter():
    namespace: dict = {}
    exec(
        "from __future__ import annotations\n"
        "from plateflow.memory import numpy\n"
        "@numpy\n"
        "def f(stack, odd: NoSuchType = 1, sigma: float = 1.0):\n"
        "    return stack\n",
        namespace,
    )
    func = namespace["f"]
    params = {p.name: p for p in describe_parameters(func)}
    assert params["odd"].resolved is False and params["sigma"].resolved is True and params["sigma"].annotation is float
    diagnostics = check([FunctionStep(func=(func, {"odd": object(), "sigma": "big"}))])
    assert [(d.code, d.field) for d in diagnostics] == [("invalid-kwarg-value", "kwargs.sigma")]


def test_explain_value_is_reusable_by_pipeline_files():
    (param,) = [p for p in describe_parameters(blur) if p.name == "mode"]
    problem = explain_value(param, "neares")
    assert problem.message == "mode must be one of 'nearest', 'reflect', not the text 'neares'"
    assert problem.hint.startswith("did you mean 'nearest'?")
    assert problem.detail == "'neares' is not one of the choices: 'nearest', 'reflect'"
    assert explain_value(param, "nearest") is None


# -- callables of every kind -------------------------------------------------------------------------


class Scaler:
    __hash__ = None  # unhashable instances must work too

    @numpy
    def __call__(self, stack, factor: float = 2.0):
        return stack * factor

    @numpy
    def apply(self, stack, factor: float = 2.0):
        return stack * factor

    @staticmethod
    @numpy
    def below(stack, factor: float = 2.0):
        return stack * factor

    @numpy
    @staticmethod
    def above(stack, factor: float = 2.0):
        return stack * factor


class HashableScaler:
    @torch
    def __call__(self, stack, factor: float = 2.0):
        return stack * factor


CALLABLES = [
    pytest.param(functools.partial(blur, sigma=2.0), "blur", "numpy", id="partial"),
    pytest.param(Scaler(), "Scaler", "numpy", id="unhashable-instance"),
    pytest.param(HashableScaler(), "HashableScaler", "torch", id="hashable-instance"),
    pytest.param(Scaler().apply, "apply", "numpy", id="bound-method"),
    pytest.param(Scaler.below, "below", "numpy", id="staticmethod"),
    pytest.param(Scaler.above, "above", "numpy", id="staticmethod-decorated-outside"),
]


@pytest.mark.parametrize("func, step_name, memory_type", CALLABLES)
def test_callables_resolve_to_their_memory_types_parameters_and_names(func, step_name, memory_type):
    step = FunctionStep(func=(func, {"factorr": 1.0, "sigma": "x"} if step_name == "blur" else {"factorr": 1.0}))
    assert step.name == step_name
    diagnostics = check([step])
    assert all(d.code not in ("missing-memory-type", "internal-error") for d in diagnostics)
    (d,) = found(diagnostics, "unknown-kwarg")
    assert d.field == "kwargs.factorr"
    if step_name == "blur":
        (bad,) = found(diagnostics, "invalid-kwarg-value")
        assert bad.field == "kwargs.sigma"
    else:
        assert d.hint == "did you mean 'factor'?"
    # the declared memory type is found: pairing it with the other type is a chain mismatch
    other = torch_blur if memory_type == "numpy" else blur
    (mismatch,) = found(check([FunctionStep(func=[func, other])]), "chain-memory-mismatch")
    assert mismatch.field == "func[1]"
    state = step_checks.check_step(FunctionStep(func=func), 0, DiagnosticSink(), None)
    assert (state.input_memory_type, state.output_memory_type) == (memory_type, memory_type)


def test_partial_of_a_special_input_function_receives_its_input():
    assert errors(check([FunctionStep(func=make_positions), FunctionStep(func=functools.partial(use_positions))])) == []


# -- pipelines of every shape --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda steps: steps[0], id="single-step"),
        pytest.param(lambda steps: tuple(steps), id="tuple"),
        pytest.param(lambda steps: (s for s in steps), id="generator"),
        pytest.param(lambda steps: Pipeline(steps), id="pipeline"),
    ],
)
def test_pipelines_of_every_shape(make):
    steps = [FunctionStep(func=(blur, {"sigmaa": 1.0}))]
    (d,) = check(make(steps))
    assert (d.code, d.step_index, d.field) == ("unknown-kwarg", 0, "kwargs.sigmaa")


def test_a_bare_function_as_pipeline_is_not_a_step():
    (d,) = check(blur)
    assert (d.code, d.step_index) == ("not-a-step", 0) and "FunctionStep(func=" in d.hint


# -- robustness -------------------------------------------------------------------------------------------


class ReprFails:
    def __repr__(self):
        raise RuntimeError("no repr")

    def __eq__(self, other):
        raise RuntimeError("no comparison")

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "value",
    [np.zeros((3, 3)), np.zeros(3), [1, [2, 3]], {"a": np.zeros(2)}, ReprFails(), object(), float("nan"), 10**400, b"bytes", {1, 2}],
    ids=lambda v: type(v).__name__,
)
@pytest.mark.parametrize("name", ["sigma", "mode"])
def test_no_value_of_any_type_yields_internal_error(plate, value, name):
    diagnostics = check([FunctionStep(func=(blur, {name: value})), FunctionStep(func={"1": (blur, {name: value}), "2": blur}, group_by="channel")], plate)
    assert all(d.code != "internal-error" for d in diagnostics), diagnostics
    assert [d.code for d in diagnostics if d.step_index == 0] == ["invalid-kwarg-value"]


def test_an_unreadable_function_in_a_pattern_is_malformed_not_internal():
    diagnostics = check([FunctionStep(func=[blur, ReprFails()]), FunctionStep(func=(blur, {"sigmaa": 1}))])
    assert [(d.code, d.step_index, d.field) for d in diagnostics] == [("malformed-pattern", 0, "func[1]"), ("unknown-kwarg", 1, "kwargs.sigmaa")]


def test_one_step_that_cannot_be_checked_hides_nothing(monkeypatch):
    real = step_checks._check_call

    def fails_on_scale(call, add, images):
        if call.kwargs.get("sigma") == 7.0:
            raise RuntimeError("checker bug")
        return real(call, add, images)

    monkeypatch.setattr(step_checks, "_check_call", fails_on_scale)
    diagnostics = check([FunctionStep(func=(blur, {"sigmaa": 1})), FunctionStep(func=(blur, {"sigma": 7.0})), FunctionStep(func=(blur, {"mdoe": 1}))])
    assert [(d.code, d.step_index) for d in diagnostics] == [("unknown-kwarg", 0), ("internal-error", 1), ("unknown-kwarg", 2)]
    assert "RuntimeError: checker bug" in diagnostics[1].message


# -- messages in the user's words ------------------------------------------------------------------------


def test_chain_mismatch_names_repeated_functions_by_position():
    (d,) = found(check([FunctionStep(func=[blur, blur, torch_blur, torch_blur])]), "chain-memory-mismatch")
    assert d.field == "func[2]"
    assert d.message.startswith("blur (item 2) hands on numpy arrays but torch_blur (item 3) takes torch arrays")
    assert "output_type" not in d.hint and "two steps" in d.hint


def test_chain_mismatch_of_bundled_functions_names_the_other_version():
    from plateflow.library import registry

    if "torch.gaussian_filter" not in registry.names():
        pytest.skip("no torch versions registered")
    (d,) = found(check([FunctionStep(func=[registry.get("numpy.gaussian_filter"), registry.get("torch.top_hat")])]), "chain-memory-mismatch")
    assert "use numpy.top_hat for top_hat" in d.hint or "use torch.gaussian_filter for gaussian_filter" in d.hint
