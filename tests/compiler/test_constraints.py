"""Every run-time validation of every bundled function is also a check before the run.

The tests enumerate the registry, so operations added later are covered too: each
declared ``Constraint`` (with its example of breaking values) and each bound or
choice of an annotation is rejected by ``check`` on its step and field, and by the
function itself when it runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from plateflow import FunctionStep, check
from plateflow.library import registry
from plateflow.library._spec import Constraint, StackFacts, operation, operation_of
from plateflow.memory import convert
from plateflow.signatures import REQUIRED

from .functions import FakePlate

VALUE_CODES = ("invalid-kwarg-value", "kwargs-conflict", "stack-size-mismatch")


def _bundled() -> list[str]:
    return [name for name in registry.names() if operation_of(registry.get(name)) is not None]


def _rule_cases() -> list:
    cases = []
    for name in _bundled():
        for position, rule in enumerate(operation_of(registry.get(name)).constraints):
            cases.append(pytest.param(name, rule, id=f"{name}-{position}-{'-'.join(rule.fields)}"))
    return cases


def _plate(tmp_path, images: int) -> FakePlate:
    plate = FakePlate(root=tmp_path)
    plate.components = {**plate.components, "site": tuple(str(i + 1) for i in range(images))}
    return plate


def _stack(name: str, images: int):
    info = registry.info(name)
    data = np.random.default_rng(0).random((images, 12, 12)).astype(np.float32)
    return convert(data, "numpy", info.input_memory_type)


def _rejected_at_run_time(name: str, kwargs: dict, images: int) -> None:
    """The function itself refuses ``kwargs``: called on a stack when it needs nothing else, else its validation."""
    func = registry.get(name)
    info = registry.info(name)
    if info.special_inputs or not info.available:
        op = operation_of(func)
        defaults = {p.name: p.default for p in info.params if p.name not in info.special_inputs}
        with pytest.raises(ValueError):
            op.validate({**defaults, **kwargs}, StackFacts(images=images))
        return
    with pytest.raises(ValueError):
        func(_stack(name, images), **kwargs)


def _value_findings(diagnostics):
    return [d for d in diagnostics if d.code in VALUE_CODES]


def test_the_registry_has_rules_to_check():
    # The bundled library declares rules (odd windows, percentile order, one weight per image, tile grids).
    names = {name.split(".", 1)[1] for name, rule in ((c.values[0], c.values[1]) for c in _rule_cases())}
    assert {"median_filter", "normalize_percentile", "composite_channels", "find_tile_positions", "threshold_local"} <= names


@pytest.mark.parametrize("name, rule", _rule_cases())
def test_every_declared_rule_is_rejected_by_check_and_by_the_run(name, rule, tmp_path):
    func = registry.get(name)
    info = registry.info(name)
    images = rule.example_images or 3
    user_kwargs = {k: v for k, v in rule.example.items() if k not in info.special_inputs}
    checkable = [field for field in rule.fields if field not in info.special_inputs]
    if checkable:
        step = FunctionStep(func=(func, user_kwargs), variable_components=("site",))
        found = _value_findings(check([step], _plate(tmp_path, images)))
        assert found, f"check passed {name} with {rule.example} (rule: {rule.message})"
        expected_code = "stack-size-mismatch" if rule.needs_images else ("kwargs-conflict" if len(rule.fields) > 1 else "invalid-kwarg-value")
        first = next(field for field in rule.fields if field in user_kwargs)
        assert (found[0].code, found[0].step_index, found[0].field, found[0].path) == (expected_code, 0, f"kwargs.{first}", ("kwargs", first))
        assert found[0].hint
        if rule.needs_images:
            # Without a plate the stack size is unknown: no false alarm.
            assert _value_findings(check([step])) == []
    _rejected_at_run_time(name, dict(rule.example), images)


def _outside(param):
    """A value outside the param's bounds or choices, or ``None`` when it has neither."""
    if param.choices is not None:
        return 987 if all(isinstance(c, int) for c in param.choices) else "no-such-choice"
    bounds = param.bounds
    if bounds is None:
        return None
    integral = param.annotation is int
    if bounds.max is not None:
        return int(bounds.max) + 1 if integral else float(bounds.max) + 0.5
    if bounds.min is not None:
        return int(bounds.min) - 1 if integral else float(bounds.min) - 0.5
    return None


def _annotation_cases() -> list:
    cases = []
    for name in _bundled():
        for param in registry.info(name).params:
            value = _outside(param)
            if value is not None:
                cases.append(pytest.param(name, param.name, value, id=f"{name}-{param.name}"))
    return cases


@pytest.mark.parametrize("name, param_name, value", _annotation_cases())
def test_every_bound_and_choice_is_rejected_by_check_and_by_the_run(name, param_name, value):
    func = registry.get(name)
    info = registry.info(name)
    required = {p.name: None for p in info.params if p.default is REQUIRED and p.name != param_name and p.name not in info.special_inputs}
    found = _value_findings(check([FunctionStep(func=(func, {param_name: value, **required}))]))
    assert [(d.code, d.field) for d in found][:1] == [("invalid-kwarg-value", f"kwargs.{param_name}")]
    assert param_name in found[0].message and found[0].message.startswith(param_name)
    _rejected_at_run_time(name, {param_name: value}, 4)


def test_values_check_passes_pass_the_run(tmp_path):
    # The other direction on the rules' own examples: the fixed values pass both.
    nf = registry.get
    ok = [
        (nf("numpy.median_filter"), {"size": 5}, 2),
        (nf("numpy.normalize_percentile"), {"low_percentile": 2.0, "high_percentile": 98.0}, 2),
        (nf("numpy.composite_channels"), {"weights": (1.0, 0.5)}, 2),
        (nf("numpy.find_tile_positions"), {"grid_shape": (1, 2)}, 2),
    ]
    for func, kwargs, images in ok:
        step = FunctionStep(func=(func, kwargs), variable_components=("site",))
        assert _value_findings(check([step], _plate(tmp_path, images))) == [], (func, kwargs)
        func(np.random.default_rng(1).random((images, 16, 16)).astype(np.float32), **kwargs)


def test_stack_size_follows_projections(tmp_path):
    # After a max projection over the sites each stack holds one image: one weight fits, two do not.
    project = registry.get("numpy.max_projection")
    composite = registry.get("numpy.composite_channels")
    plate = _plate(tmp_path, 3)
    fits = [FunctionStep(func=project, variable_components=("site",)), FunctionStep(func=(composite, {"weights": (1.0,)}), variable_components=("site",))]
    assert _value_findings(check(fits, plate)) == []
    wrong = [FunctionStep(func=project, variable_components=("site",)), FunctionStep(func=(composite, {"weights": (1.0, 1.0)}), variable_components=("site",))]
    (d,) = _value_findings(check(wrong, plate))
    assert (d.code, d.step_index, d.field) == ("stack-size-mismatch", 1, "kwargs.weights")
    # inside one chain too
    chain = [FunctionStep(func=[project, (composite, {"weights": (1.0, 1.0, 1.0)})], variable_components=("site",))]
    (d,) = _value_findings(check(chain, plate))
    assert (d.code, d.field) == ("stack-size-mismatch", "func[1].kwargs.weights")
    # with channels varying and 2 channels on the plate, 2 weights fit
    per_channel = [FunctionStep(func=(composite, {"weights": (1.0, 2.0)}), variable_components=("channel",))]
    assert _value_findings(check(per_channel, plate)) == []


def test_a_rule_of_a_new_operation_is_checked_without_more_code():
    @operation(
        "test",
        constraints=(
            Constraint(
                lambda kw, facts: kw["low"] < kw["high"],
                fields=("low", "high"),
                message="low={low} must be below high={high}",
                example={"low": 5.0, "high": 1.0},
            ),
        ),
    )
    def band(stack, *, low: float = 1.0, high: float = 2.0):
        """A band."""

    assert band.problems({"low": 1.0, "high": 2.0}) == []
    (problem,) = band.problems({"low": 5.0, "high": 1.0}, StackFacts(images=3))
    assert problem.message == "low=5.0 must be below high=1.0" and problem.fields == ("low", "high")
    with pytest.raises(ValueError, match="constraint names options it does not have"):
        operation("test", constraints=(Constraint(lambda kw, f: True, fields=("nope",), message="", example={}),))(band.spec)
    with pytest.raises(ValueError, match="example_images"):
        Constraint(lambda kw, f: True, fields=("low",), message="", example={}, needs_images=True)


def test_ready_made_rules_for_new_operations(tmp_path):
    from plateflow.library._spec import implement, index_in_stack, one_per_image

    @operation("test", constraints=(index_in_stack("channel"), one_per_image("names", what="names")))
    def pick(stack, *, channel: int = 0, names: tuple[str, ...] | None = None):
        """Pick one image."""

    func = implement(pick, lambda stack, *, channel, names: stack[channel : channel + 1], memory_type="numpy", module=__name__)
    plate = _plate(tmp_path, 2)
    step = FunctionStep(func=(func, {"channel": 2, "names": ("a", "b", "c")}), variable_components=("site",))
    found = _value_findings(check([step], plate))
    assert [(d.code, d.field) for d in found] == [("stack-size-mismatch", "kwargs.channel"), ("stack-size-mismatch", "kwargs.names")]
    assert found[0].message.startswith("channel=2 but the stack has 2 images (0 to 1)")
    assert found[1].message == "names has 3 names but the stack has 2 images; give one per image"
    assert _value_findings(check([FunctionStep(func=(func, {"channel": 1, "names": ("a", "b")}), variable_components=("site",))], plate)) == []
    stack = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="channel=2 but the stack has 2 images"):
        func(stack, channel=2)
    assert func(stack, channel=1, names=("a", "b")).shape == (1, 4, 4)
